import { afterAll, beforeAll, expect, test } from "bun:test";
import postgres from "postgres";
import { kinds } from "../src/kinds";
import type { Runtime } from "../src/runtime";
import { BACKFILL_SEED, backfillId, backfillTimes } from "../src/simulators/backfill";
import { parseSimulateArgs, simulate } from "../src/simulators/run";
import { eventually, freePort, startRuntime, testKey } from "./helpers";

let runtime: Runtime;
let server: ReturnType<typeof Bun.serve>;
let sql: postgres.Sql;

beforeAll(async () => {
  runtime = await startRuntime();
  server = Bun.serve({ port: await freePort(), hostname: "127.0.0.1", fetch: runtime.app.fetch });
  sql = postgres(runtime.config.DATABASE_URL, { max: 1, onnotice: () => {} });
}, 30_000);

afterAll(async () => {
  await sql.end();
  await server.stop(true);
  await runtime.close();
}, 30_000);

/** Rows stored per kind, and the distinct (source, ts) pairs among them. */
async function stored() {
  const counts: Record<string, { rows: number; pairs: number }> = {};
  for (const kind of kinds) {
    const [row] = await sql.unsafe(
      `select count(*)::int as rows, count(distinct (source_id, ts))::int as pairs from ${kind.name}_records`,
    );
    counts[kind.name] = { rows: row?.rows ?? 0, pairs: row?.pairs ?? 0 };
  }
  return counts;
}

const env = () => ({ SLUICE_URL: server.url.href, API_KEY: testKey });

test("a backfill run again stores every record once: same devices, same moments, same ids", async () => {
  // No live records: at 0.1 a second none is due within the 0.5 s the live part lasts.
  const options = parseSimulateArgs(["--kind", "all", "--devices", "4", "--backfill", "3h", "--rate", "0.1"]);
  const run = (until: number) => simulate({ ...options, durationSeconds: 0.5, backfillUntil: until }, env());
  const sink = runtime.sink as NonNullable<Runtime["sink"]>;
  const settled = (records: number) => eventually(() => sink.stats.records >= records, 30_000);
  const until = Date.now() - 3_600_000;

  const first = await run(until);
  expect(first.errors).toBe(0);
  // Every kind's devices at its interval: sensors every 5 minutes, flights 10, traffic 15, weather 30.
  expect(first.acknowledged).toBeGreaterThanOrEqual(4 * (35 + 17 + 11 + 5));
  await settled(first.acknowledged);
  const before = await stored();
  for (const kind of kinds) expect(before[kind.name]?.pairs).toBe(before[kind.name]?.rows);
  // (A flight's unchanged status, scheduled with nothing new, is one record however often it is read.)
  expect(Object.values(before).reduce((sum, kind) => sum + kind.rows, 0)).toBe(sink.stats.inserted);

  // The same run again: nothing new.
  const second = await run(until);
  expect(second.errors).toBe(0);
  expect(second.acknowledged).toBe(first.acknowledged);
  await settled(first.acknowledged + second.acknowledged);
  expect(await stored()).toEqual(before);

  // Half an hour later: only the moments the first run could not have had are new.
  const later = until + 30 * 60_000;
  const third = await run(later);
  expect(third.errors).toBe(0);
  await settled(first.acknowledged + second.acknowledged + third.acknowledged);
  const after = await stored();
  for (const kind of kinds) {
    const every = { sensors: 5, traffic: 15, weather: 30, flights: 10 }[kind.name];
    const known = new Set(backfillTimes(every, 3 * 3_600_000, until));
    const added = backfillTimes(every, 3 * 3_600_000, later).filter((at) => !known.has(at)).length;
    expect(added).toBeGreaterThan(0);
    const [was, is] = [before[kind.name], after[kind.name]] as { rows: number; pairs: number }[];
    expect(is?.pairs).toBe(is?.rows);
    if (kind.name === "flights")
      expect(is?.rows).toBeWithin((was?.rows ?? 0) + 1, (was?.rows ?? 0) + 4 * added + 1);
    else expect(is?.rows).toBe((was?.rows ?? 0) + 4 * added);
  }
}, 120_000);

test("backfill moments lie on the kind's UTC grid, and ids come from kind, source and time", () => {
  const now = Date.UTC(2026, 10, 22, 8, 7, 30);
  const times = backfillTimes(15, 3_600_000, now);
  expect(times.map((at) => new Date(at).toISOString().slice(11, 16))).toEqual([
    "07:15",
    "07:30",
    "07:45",
    "08:00",
  ]);
  // A rerun within the same interval has the same moments.
  expect(backfillTimes(15, 3_600_000, now + 5 * 60_000)).toEqual(times);
  const id = backfillId("traffic", "paris-store-004", times[0] as number);
  expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  expect(backfillId("traffic", "paris-store-004", times[0] as number)).toBe(id);
  expect(backfillId("traffic", "paris-store-004", times[1] as number)).not.toBe(id);
  expect(backfillId("sensors", "paris-store-004", times[0] as number)).not.toBe(id);
  expect(BACKFILL_SEED).toBeNumber();
});
