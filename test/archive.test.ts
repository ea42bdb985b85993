import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { Kafka, logLevel } from "kafkajs";
import { createDestination, type Destination } from "../src/archive/destination";
import { parseKey } from "../src/archive/layout";
import { kinds } from "../src/kinds";
import type { Runtime } from "../src/runtime";
import {
  authHeader,
  brokers,
  eventually,
  post,
  runSluice,
  startGatewayProcess,
  startRuntime,
} from "./helpers";
import { startS3, type TestS3 } from "./s3";

let s3: TestS3;
let destination: Destination;
let runtime: Runtime;
let duck: DuckDBConnection;
let folder: string;
let archiveOnly: Runtime | undefined;
let archiveEnv: Record<string, string>;
const cleanups: (() => Promise<unknown>)[] = [];

const hour = 3_600_000;
const now = Date.now();
/** Three event hours: two this day, one the day before, so that files land in three hour folders. */
const moments = [now - 2 * hour, now - hour, now - 26 * hour].map((time) => new Date(time));
const hourFolder = (time: Date) =>
  `dt=${time.toISOString().slice(0, 10)}/hour=${time.toISOString().slice(11, 13)}`;

beforeAll(async () => {
  s3 = await startS3();
  cleanups.push(() => s3.remove());
  folder = await mkdtemp(`${tmpdir()}/sluice-archive-test-`);
  cleanups.push(() => rm(folder, { recursive: true, force: true }));
  archiveEnv = {
    ARCHIVE_URL: `s3://${s3.bucket}/bronze`,
    S3_ENDPOINT: s3.endpoint,
    S3_REGION: s3.region,
    AWS_ACCESS_KEY_ID: s3.accessKeyId,
    AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
    ARCHIVE_FLUSH_SECONDS: "1",
  };
  runtime = await startRuntime({ ...archiveEnv, ROLES: "gateway,sink,archive" });
  cleanups.push(() => runtime.close());
  destination = createDestination(runtime.config);
  const instance = await DuckDBInstance.create(":memory:");
  duck = await instance.connect();
}, 120_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
}, 60_000);

/** Every archive file of a folder, downloaded, for DuckDB to read as one hive-partitioned table. */
async function download(name: string) {
  const keys = await destination.list(`${name}/`);
  const local = `${folder}/${crypto.randomUUID()}`;
  for (const key of keys) {
    await Bun.write(`${local}/${key}`, await destination.get(key));
  }
  return { keys, glob: `${local}/${name}/*/*/*.parquet` };
}

async function query(sql: string) {
  return (await duck.runAndReadAll(sql)).getRowObjectsJson() as Record<string, string | number | null>[];
}

const posted = new Map<string, string[]>();

async function postEveryKind(tag: string) {
  for (const kind of kinds) {
    const bodies = moments.map((at, index) => ({
      ...kind.example(at),
      id: `${tag}-${kind.name}-${index}`,
      [kind.sourceField]: `${tag}-${kind.name}-source`,
    }));
    const response = await post(runtime, `/v1/${kind.name}/${kind.resource}`, bodies);
    expect(response.status, kind.name).toBe(202);
    posted.set(kind.name, [...(posted.get(kind.name) ?? []), ...bodies.map((body) => body.id)]);
  }
}

describe("the archive role", () => {
  test("every kind's records land as Parquet per event hour, typed columns, read back by DuckDB", async () => {
    await postEveryKind("first");
    const bad = await post(runtime, "/v1/sensors/readings", {
      deviceId: "bad-1",
      ts: new Date().toISOString(),
    });
    expect(bad.status).toBe(422);
    // Refused today, valid once the window is widened: replayed from the dead letters below.
    const ahead = {
      id: "ahead-1",
      deviceId: "ahead-1",
      ts: new Date(now + hour).toISOString(),
      temperature: 3,
    };
    expect((await post(runtime, "/v1/sensors/readings", ahead)).status).toBe(422);
    const expected = kinds.length * moments.length;
    await eventually(() => runtime.archiver && runtime.archiver.stats.rows >= expected + 2, 30_000);

    for (const kind of kinds) {
      const { keys, glob } = await download(kind.name);
      for (const key of keys) expect(parseKey(key), key).toBeDefined();
      const folders = new Set(keys.map((key) => key.split("/").slice(1, 3).join("/")));
      expect([...folders].sort()).toEqual(moments.map(hourFolder).sort());
      const rows = await query(
        `select id, "sourceId", epoch_us(ts) as us, dt, hour, typeof(ts) as type from read_parquet('${glob}', hive_partitioning = true) order by id`,
      );
      expect(rows.map((row) => row.id)).toEqual([...(posted.get(kind.name) ?? [])].sort());
      for (const row of rows) {
        const at = moments[Number(String(row.id).split("-").at(-1))] as Date;
        expect(String(row.us)).toBe(String(BigInt(Date.parse(String(kind.example(at).ts))) * 1000n));
        expect(row.type).toBe("TIMESTAMP WITH TIME ZONE");
        expect(`dt=${row.dt}/hour=${String(row.hour).padStart(2, "0")}`).toBe(hourFolder(at));
      }
    }
    const { glob } = await download("deadletter");
    const letters = await query(`select kind, reason, errors, raw from read_parquet('${glob}')`);
    const letter = letters.find((row) => String(row.raw).includes("bad-1"));
    expect(letter).toMatchObject({ kind: "sensors", reason: "invalid-record" });
    expect(String(letter?.errors)).toContain("at least one metric");
  }, 60_000);

  test("reading the topics again from the start writes no new file and no row twice", async () => {
    const before = await destination.list("");
    const archiver = runtime.archiver;
    if (!archiver) throw new Error("no archiver");
    await archiver.stop();
    const admin = new Kafka({ brokers: brokers.split(","), logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    // Without its committed offsets, the group reads every topic from the start again.
    await admin.deleteGroups([`${runtime.config.KAFKA_TOPIC_PREFIX}-archive`]);
    await admin.disconnect();
    const again = await startRuntime({
      ...archiveEnv,
      ROLES: "archive",
      KAFKA_TOPIC_PREFIX: runtime.config.KAFKA_TOPIC_PREFIX,
      DATABASE_URL: runtime.config.DATABASE_URL,
    });
    cleanups.push(() => again.close());
    archiveOnly = again;
    const total = kinds.length * moments.length + 2;
    await eventually(() => (again.archiver?.stats.skipped ?? 0) >= total, 30_000);
    await Bun.sleep(1500);
    expect(await destination.list("")).toEqual(before);
    expect(again.archiver?.stats.rows).toBe(0);
  }, 60_000);

  test("storage down: the archive waits and retries while ingestion goes on, then catches up", async () => {
    const archiver = archiveOnly?.archiver;
    if (!archiver) throw new Error("no archiver");
    await s3.stop();
    const failures = archiver.stats.uploadFailures;
    await postEveryKind("outage");
    await eventually(() => archiver.stats.uploadFailures > failures, 20_000);
    await s3.start();
    await eventually(async () => {
      const { glob } = await download("sensors");
      const rows = await query(`select count(*) as n from read_parquet('${glob}') where id like 'outage-%'`);
      return Number(rows[0]?.n) === moments.length;
    }, 60_000);
  }, 120_000);

  test("a new database rebuilt by replay from the archive has the same aggregates, at every width", async () => {
    const from = new Date(now - 3 * 24 * hour).toISOString();
    const range = `from=${from}&to=${new Date(now + 2 * hour).toISOString()}`;
    const read = async (target: Runtime, path: string) =>
      (await target.app.request(path, { headers: authHeader })).json() as Promise<{ items: unknown[] }>;
    // Every roll-up width, per source and all together.
    const shapes = ["1m", "1h", "1d"].flatMap((bucket) => [
      `bucket=${bucket}&groupBy=source`,
      `bucket=${bucket}`,
    ]);
    const aggregatesOf = (target: Runtime) =>
      Promise.all(
        kinds.flatMap((kind) =>
          shapes.map((shape) => read(target, `/v1/${kind.name}/aggregates?${shape}&${range}`)),
        ),
      );
    await eventually(async () => {
      const pages = await Promise.all(
        kinds.map((kind) => read(runtime, `/v1/${kind.name}/${kind.resource}?${range}&limit=1000`)),
      );
      return pages.every((page) => page.items.length === 2 * moments.length);
    });
    const before = await aggregatesOf(runtime);
    const filesBefore = await destination.list("");
    // The old sink leaves its group to the new database's; the topics stay as they are.
    await runtime.sink?.stop();

    const rebuilt = await startRuntime({ KAFKA_TOPIC_PREFIX: runtime.config.KAFKA_TOPIC_PREFIX });
    cleanups.push(() => rebuilt.close());
    const replay = (...args: string[]) =>
      runSluice(["replay", ...args], {
        ...archiveEnv,
        KAFKA_BROKERS: brokers,
        KAFKA_TOPIC_PREFIX: runtime.config.KAFKA_TOPIC_PREFIX,
        TS_MAX_FUTURE_SECONDS: "7200",
        LOG_LEVEL: "warn",
      });
    const records = await replay("--kind", "all", "--since", from);
    expect(records.stderr).toContain(" files, ");
    expect([records.code, records.stdout]).toEqual([
      0,
      `replayed ${kinds.length * 2 * moments.length} records\n`,
    ]);
    await eventually(
      async () => JSON.stringify(await aggregatesOf(rebuilt)) === JSON.stringify(before),
      30_000,
    );

    // The dead letter refused for its time goes through validation again, and is stored once however often.
    const first = await replay("--kind", "sensors", "--since", from, "--dead-letters");
    expect([first.code, first.stdout]).toEqual([
      0,
      "replayed 1 dead letters valid now; 1 still refused, back in the dead-letter topic\n",
    ]);
    // Again: the one still refused may be archived twice by now (refused anew); the valid one is the same.
    const second = await replay("--kind", "sensors", "--since", from, "--dead-letters");
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^replayed 1 dead letters valid now; [12] still refused/);
    const stored = async () => (await read(rebuilt, "/v1/sensors/readings?deviceId=ahead-1")).items.length;
    await eventually(async () => (await stored()) === 1);
    await Bun.sleep(2000);
    expect(await stored()).toBe(1);
    // What replay took from the archive is not archived again: only the dead letters' outcomes are new.
    const added = (await destination.list("")).filter((key) => !filesBefore.includes(key));
    expect(added.every((key) => key.startsWith("sensors/") || key.startsWith("deadletter/"))).toBe(true);
  }, 120_000);
});

describe("the archive in a folder (file://)", () => {
  test("files renamed into place whole, read by DuckDB where they lie, counted by the metrics", async () => {
    const bronze = `${folder}/bronze-${crypto.randomUUID()}`;
    const local = await startRuntime({
      ROLES: "gateway,archive",
      ARCHIVE_URL: `file://${bronze}`,
      ARCHIVE_FLUSH_SECONDS: "1",
    });
    cleanups.push(() => local.close());
    const readings = moments.map((at, index) => ({
      id: `folder-${index}`,
      deviceId: "folder-1",
      ts: at.toISOString(),
      pm25: index,
    }));
    expect((await post(local, "/v1/sensors/readings", readings)).status).toBe(202);
    await eventually(() => (local.archiver?.stats.rows ?? 0) >= readings.length, 30_000);
    const files = [...new Bun.Glob("**/*").scanSync({ cwd: bronze, onlyFiles: true })].sort();
    expect(files.filter((file) => !parseKey(file))).toEqual([]);
    expect(files).toHaveLength(moments.length);
    const rows = await query(
      `select id, pm25, typeof(pm25) as type from read_parquet('${bronze}/sensors/*/*/*.parquet', hive_partitioning = true) order by id`,
    );
    expect(rows).toEqual(readings.map(({ id, pm25 }) => ({ id, pm25, type: "DOUBLE" })));
    const metrics = await (await local.app.request("/metrics")).text();
    const value = (line: string) => Number(metrics.match(new RegExp(`^${line} (\\S+)$`, "m"))?.[1]);
    expect(value('sluice_archive_files_total\\{folder="sensors"\\}')).toBe(moments.length);
    expect(value('sluice_archive_rows_total\\{folder="sensors"\\}')).toBe(readings.length);
    expect(value('sluice_archive_bytes_total\\{folder="sensors"\\}')).toBeGreaterThan(1000);
    const lag = [
      ...metrics.matchAll(/^sluice_archive_lag_records\{topic="[^"]+\.sensors",partition="\d+"\} (\d+)$/gm),
    ];
    expect(lag.length).toBeGreaterThan(0);
    expect(lag.map((match) => Number(match[1]))).toEqual(lag.map(() => 0));
  }, 60_000);
});

describe("the archive killed with SIGKILL", () => {
  test("leaves no partial object and loses no record", async () => {
    const gateway = await startRuntime({ ROLES: "gateway" });
    cleanups.push(() => gateway.close());
    const env = {
      ...archiveEnv,
      ARCHIVE_URL: `s3://${s3.bucket}/killed`,
      ROLES: "archive",
      KAFKA_BROKERS: brokers,
      KAFKA_TOPIC_PREFIX: gateway.config.KAFKA_TOPIC_PREFIX,
      // A killed member keeps its partitions this long.
      KAFKA_SESSION_TIMEOUT_MS: "6000",
    };
    const ids: string[] = [];
    const send = async (round: number) => {
      const batch = Array.from({ length: 50 }, (_, index) => ({
        id: `kill-${round}-${index}`,
        deviceId: `kill-${index % 7}`,
        ts: new Date(now - (index % 3) * hour).toISOString(),
        temperature: index,
      }));
      expect((await post(gateway, "/v1/sensors/readings", batch)).status).toBe(202);
      ids.push(...batch.map((record) => record.id));
    };
    for (let life = 0; life < 3; life++) {
      const archive = await startGatewayProcess(env);
      for (let round = 0; round < 8; round++) {
        await send(life * 100 + round);
        await Bun.sleep(150 + Math.random() * 200);
      }
      archive.proc.kill("SIGKILL");
      await archive.proc.exited;
    }
    const last = await startGatewayProcess(env);
    cleanups.push(async () => {
      last.proc.kill("SIGTERM");
      await last.proc.exited;
    });
    const killed = createDestination(runtime.config, env.ARCHIVE_URL);
    let strays: string[] = [];
    await eventually(async () => {
      const keys = await killed.list("sensors/");
      // s3proxy's filesystem store lists an upload in progress under a temporary name (real S3 does not): such a
      // stray must be gone by the time everything is archived, or it is a partial object left behind.
      strays = keys.filter((key) => !parseKey(key));
      if (strays.length > 0) return false;
      const local = `${folder}/${crypto.randomUUID()}`;
      for (const key of keys) await Bun.write(`${local}/${key}`, await killed.get(key));
      const rows = await query(`select id from read_parquet('${local}/sensors/*/*/*.parquet') order by id`);
      const archived = rows.map((row) => String(row.id));
      if (archived.length > ids.length) throw new Error(`${archived.length - ids.length} rows twice`);
      return JSON.stringify(archived) === JSON.stringify([...ids].sort());
    }, 60_000).catch((error: Error) => {
      throw strays.length > 0 ? new Error(`not archive files: ${strays.join(", ")}`) : error;
    });
  }, 180_000);
});
