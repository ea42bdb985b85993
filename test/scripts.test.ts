import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import Redis from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import postgres from "postgres";
import { allTopics } from "../src/kafka/client";
import { brokers, freePort, post, startRuntime, testDatabase } from "./helpers";

const root = `${import.meta.dir}/..`;
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
}, 30_000);

describe("scripts/up.sh", () => {
  test("prints the key on a line of its own, and every example it prints carries it", async () => {
    const script = await Bun.file(`${root}/scripts/up.sh`).text();
    const banner = script.slice(script.indexOf("cat <<MSG"), script.indexOf("\nMSG\n"));
    expect(banner).toMatch(/\n\$API_KEY\n/);
    const curls = banner.split("\n").filter((line) => line.includes("curl "));
    expect(curls.length).toBeGreaterThan(3);
    for (const line of curls) expect(line).toContain("curl -s $auth ");
    expect(script).toContain(`auth="-H 'authorization: Bearer $API_KEY'"`);
  });
});

describe("scripts/services.sh", () => {
  test("starts Redis where REDIS_URL points when nothing listens there, and leaves a running one alone", async () => {
    const port = await freePort();
    const cache = await mkdtemp(`${tmpdir()}/sluice-services-`);
    cleanups.push(() => rm(cache, { recursive: true, force: true }));
    const ensure = () =>
      Bun.spawnSync(["bash", "-c", "source scripts/services.sh && ensure_redis"], {
        cwd: root,
        env: { ...process.env, REDIS_URL: `redis://127.0.0.1:${port}/0`, SLUICE_CACHE: cache },
        stderr: "pipe",
      });
    const first = ensure();
    expect(first.exitCode).toBe(0);
    expect(first.stderr.toString()).toContain(`starting Redis on 127.0.0.1:${port}`);
    cleanups.push(async () => {
      const pid = (await Bun.file(`${cache}/redis-${port}/redis.pid`).text()).trim();
      process.kill(Number(pid));
    });
    const redis = new Redis(`redis://127.0.0.1:${port}/0`, { maxRetriesPerRequest: 1 });
    expect(await redis.ping()).toBe("PONG");
    redis.disconnect();
    const second = ensure();
    expect([second.exitCode, second.stderr.toString()]).toEqual([0, ""]);
  });
});

describe("scripts/reset.ts", () => {
  test("drops the database and removes the Redis keys and Kafka topics under its prefixes, nothing else", async () => {
    const database = await testDatabase();
    cleanups.push(() => database.drop());
    const runtime = await startRuntime({ DATABASE_URL: database.url });
    cleanups.push(() => runtime.close());
    const { KAFKA_TOPIC_PREFIX: prefix, REDIS_KEY_PREFIX: keyPrefix } = runtime.config;
    const body = { deviceId: "reset-1", ts: new Date().toISOString(), temperature: 20 };
    expect((await post(runtime, "/v1/sensors/readings", body)).status).toBe(202);
    const redis = new Redis(runtime.config.REDIS_URL);
    cleanups.push(async () => redis.disconnect());
    await redis.set(`${keyPrefix}:reset-marker`, "1");
    await redis.set(`other-${keyPrefix}:kept`, "1");
    cleanups.push(() => redis.del(`other-${keyPrefix}:kept`));
    await runtime.close();

    const reset = Bun.spawnSync(["bun", "scripts/reset.ts"], {
      cwd: root,
      env: {
        ...process.env,
        DATABASE_URL: database.url,
        KAFKA_BROKERS: brokers,
        KAFKA_TOPIC_PREFIX: prefix,
        REDIS_KEY_PREFIX: keyPrefix,
      },
      stdout: "pipe",
      stderr: "pipe",
    });
    expect(reset.stderr.toString()).toBe("");
    expect(reset.exitCode).toBe(0);
    expect(reset.stdout.toString()).toContain(`dropped database ${database.name}`);

    const admin = postgres("postgres://postgres@127.0.0.1:5432/postgres", { max: 1, onnotice: () => {} });
    const rows = await admin`select 1 from pg_database where datname = ${database.name}`;
    await admin.end();
    expect(rows.length).toBe(0);
    expect(await redis.keys(`${keyPrefix}:*`)).toEqual([]);
    expect(await redis.get(`other-${keyPrefix}:kept`)).toBe("1");
    const kafkaAdmin = new Kafka({ brokers: brokers.split(","), logLevel: logLevel.NOTHING }).admin();
    await kafkaAdmin.connect();
    const left = (await kafkaAdmin.listTopics()).filter((topic) => allTopics(prefix).includes(topic));
    await kafkaAdmin.disconnect();
    expect(left).toEqual([]);
  }, 60_000);
});
