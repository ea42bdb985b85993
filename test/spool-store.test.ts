import { Database } from "bun:sqlite";
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, statfsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { loadConfig } from "../src/config";
import type { OutgoingRecord } from "../src/kafka/publisher";
import { createLogger } from "../src/log";
import { decodeEntry, type SpoolRow } from "../src/spool/entry";
import { SpoolRefused, SpoolStore } from "../src/spool/store";

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

async function spoolDir() {
  const dir = await mkdtemp(`${tmpdir()}/sluice-spool-store-`);
  dirs.push(dir);
  return dir;
}

function open(dir: string, overrides: Partial<ConstructorParameters<typeof SpoolStore>[0]> = {}) {
  return new SpoolStore({
    dir,
    maxBytes: 1024 * 1024,
    minFreeBytes: 0,
    synchronous: "full",
    logger: createLogger("silent"),
    ...overrides,
  });
}

const record = (key: string | null, n: number, extra: Partial<OutgoingRecord> = {}): OutgoingRecord => ({
  topic: "t.sensors",
  key,
  value: JSON.stringify({ id: `${key}-${n}`, pad: "x".repeat(100) }),
  counts: { kind: "sensors", transport: "http" },
  ...extra,
});

const decoded = (rows: SpoolRow[]) => rows.map((row) => decodeEntry(row));

describe("the spool's SQLite store", () => {
  test("records come back in arrival order, headers and counts intact, after the file is closed and opened", async () => {
    const dir = await spoolDir();
    const store = open(dir);
    await Promise.all([
      store.append([record("a", 0), record("b", 0)]),
      store.append([record("a", 1, { headers: { trace: "1" } })]),
    ]);
    await store.append([record(null, 0, { counts: { kind: "sensors", transport: "mqtt", reason: "x" } })]);
    expect(store.depth.records).toBe(4);
    store.close();

    const reopened = open(dir);
    expect(reopened.depth.records).toBe(4);
    expect(reopened.depth.bytes).toBeGreaterThan(400);
    expect(reopened.depth.oldestAt).toBeLessThanOrEqual(Date.now());
    expect(reopened.countsByKey().sort((x, y) => x.key.localeCompare(y.key))).toEqual([
      { topic: "t.sensors", key: "a", records: 2 },
      { topic: "t.sensors", key: "b", records: 1 },
    ]);
    const entries = decoded(reopened.oldest(100, 1_000_000));
    expect(
      entries.map((entry) => ("record" in entry ? JSON.parse(entry.record.value).id : "corrupt")),
    ).toEqual(["a-0", "b-0", "a-1", "null-0"]);
    expect(entries[2]).toMatchObject({ record: { headers: { trace: "1" } } });
    expect(entries[3]).toMatchObject({ record: { key: null, counts: { transport: "mqtt", reason: "x" } } });

    const rows = reopened.oldest(2, 1_000_000);
    reopened.deleteThrough(rows.at(-1)?.seq ?? 0, rows);
    expect(reopened.depth.records).toBe(2);
    expect(decoded(reopened.oldest(100, 1_000_000)).map((e) => e.seq)).toEqual(
      entries.slice(2).map((e) => e.seq),
    );
    reopened.close();
  });

  test("oldest() stops at the byte limit but always returns at least one row", async () => {
    const store = open(await spoolDir());
    await store.append([record("a", 0), record("a", 1), record("a", 2)]);
    expect(store.oldest(10, 1).length).toBe(1);
    expect(store.oldest(10, 300).length).toBe(2);
    expect(store.oldest(2, 1_000_000).length).toBe(2);
    store.close();
  });

  test("what does not fit is refused as full, counted nowhere, and fits again once the spool is drained", async () => {
    const store = open(await spoolDir(), { maxBytes: 1000 });
    await store.append([record("a", 0), record("a", 1), record("a", 2), record("a", 3)]);
    expect(store.roomProblem()).toBeUndefined();
    const refused = await store
      .append(Array.from({ length: 4 }, (_, i) => record("a", 4 + i)))
      .catch((e) => e);
    expect(refused).toBeInstanceOf(SpoolRefused);
    expect(refused.reason).toBe("full");
    expect(store.depth.records).toBe(4);
    expect(store.roomProblem()).toMatch(/full/);
    const rows = store.oldest(100, 1_000_000);
    store.deleteThrough(rows.at(-1)?.seq ?? 0, rows);
    expect(store.depth).toEqual({ records: 0, bytes: 0, oldestAt: undefined });
    expect(store.roomProblem()).toBeUndefined();
    await store.append(Array.from({ length: 4 }, (_, i) => record("a", 4 + i)));
    store.close();
  });

  test("a disk with less than SPOOL_MIN_FREE_BYTES free refuses as low-disk", async () => {
    const dir = await spoolDir();
    const { bavail, bsize } = statfsSync(dir);
    const store = open(dir, { minFreeBytes: bavail * bsize * 2 });
    const refused = await store.append([record("a", 0)]).catch((e) => e);
    expect(refused).toBeInstanceOf(SpoolRefused);
    expect(refused.reason).toBe("low-disk");
    expect(refused.message).toMatch(/SPOOL_MIN_FREE_BYTES/);
    expect(store.depth.records).toBe(0);
    expect(store.roomProblem()).toMatch(/SPOOL_MIN_FREE_BYTES/);
    store.close();
  });

  test("a value changed on disk fails its checksum; a missing topic or value is named", async () => {
    const dir = await spoolDir();
    const store = open(dir);
    await store.append([record("a", 0), record("a", 1), record("a", 2), record("a", 3)]);
    store.close();
    const db = new Database(`${dir}/spool.db`);
    db.run("update spooled set value = replace(value, 'a-1', 'a-7') where seq = 2");
    db.run("update spooled set topic = null where seq = 3");
    db.run("update spooled set value = x'00ff' where seq = 4");
    db.close();
    const reopened = open(dir);
    const entries = decoded(reopened.oldest(10, 1_000_000));
    expect("record" in (entries[0] as object)).toBe(true);
    expect(entries.slice(1).map((entry) => ("corrupt" in entry ? entry.corrupt.problem : "ok"))).toEqual([
      expect.stringMatching(/checksum/),
      expect.stringMatching(/without a topic/),
      expect.stringMatching(/without a value/),
    ]);
    expect(entries[1]).toMatchObject({ corrupt: { key: "a", kind: "sensors", transport: "http" } });
    expect(
      "corrupt" in (entries[1] as object) &&
        JSON.parse((entries[1] as { corrupt: { raw: string } }).corrupt.raw),
    ).toMatchObject({ id: "a-7" });
    reopened.close();
  });

  test("a file SQLite cannot read is set aside and an empty spool starts", async () => {
    const dir = await spoolDir();
    await Bun.write(`${dir}/spool.db`, "this is not a database ".repeat(500));
    const store = open(dir);
    expect(store.depth.records).toBe(0);
    await store.append([record("a", 0)]);
    expect(readdirSync(dir).some((name) => name.startsWith("spool.db.damaged-"))).toBe(true);
    store.close();
  });

  test("one process per spool: a second one is refused with the reason", async () => {
    const dir = await spoolDir();
    const store = open(dir);
    const second = Bun.spawn(
      [
        "bun",
        "-e",
        `import { SpoolStore } from "${import.meta.dir}/../src/spool/store";
         import { createLogger } from "${import.meta.dir}/../src/log";
         try { new SpoolStore({ dir: "${dir}", maxBytes: 1e6, minFreeBytes: 0, synchronous: "full", logger: createLogger("silent") }); console.log("opened"); }
         catch (error) { console.log(error.message); }`,
      ],
      { stdout: "pipe", stderr: "inherit" },
    );
    expect(await new Response(second.stdout).text()).toMatch(/in use by another process/);
    store.close();
    expect(existsSync(`${dir}/spool.db`)).toBe(true);
  });
});

describe("the spool's configuration", () => {
  test("off unless SPOOL_DIR is set; bounds and sync mode parsed; one process per spool", () => {
    expect(loadConfig({}).SPOOL_DIR).toBeUndefined();
    expect(
      loadConfig({ SPOOL_DIR: "/var/lib/sluice/spool", SPOOL_MAX_BYTES: "1048576", SPOOL_SYNC: "normal" }),
    ).toMatchObject({
      SPOOL_DIR: "/var/lib/sluice/spool",
      SPOOL_MAX_BYTES: 1048576,
      SPOOL_MIN_FREE_BYTES: 104857600,
      SPOOL_SYNC: "normal",
    });
    expect(() => loadConfig({ SPOOL_SYNC: "sometimes" })).toThrow(/SPOOL_SYNC/);
    expect(() => loadConfig({ SPOOL_DIR: "/var/lib/sluice/spool", WORKERS: "2" })).toThrow(
      /SPOOL_DIR: a spool belongs to one process/,
    );
  });
});
