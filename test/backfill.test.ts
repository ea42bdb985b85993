import { afterAll, beforeAll, expect, spyOn, test } from "bun:test";
import { en, Faker } from "@faker-js/faker";
import postgres from "postgres";
import { createKey } from "../src/auth/keys";
import { kinds } from "../src/kinds";
import type { Runtime } from "../src/runtime";
import { BACKFILL_SEED, backfillId, backfillTimes } from "../src/simulators/backfill";
import { fleetsOf, parseSimulateArgs, simulate } from "../src/simulators/run";
import { restartCounter, trafficSimulator } from "../src/simulators/traffic";
import { eventually, freePort, post, startRuntime, testKey } from "./helpers";

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

const env = (apiKey = testKey) => ({ SLUICE_URL: server.url.href, API_KEY: apiKey });
const sink = () => runtime.sink as NonNullable<Runtime["sink"]>;
/** Waits until the sink has taken `records` more than it had at `since`. */
const settled = (since: number, records: number) =>
  eventually(() => sink().stats.records >= since + records, 30_000);

const MINUTE = 60_000;
const DAY = 1440 * MINUTE;
// Midday UTC of the latest day it is past 13:35 UTC: the shops of Casablanca, Rabat and Marrakesh are open.
const noon = Math.floor((Date.now() - 95 * MINUTE - 720 * MINUTE) / DAY) * DAY + 720 * MINUTE;

/** A device's rows with `ts` in [from, to]. */
async function rows(kind: string, sourceId: string, from: number, to: number) {
  return sql.unsafe(
    `select ts, data, flags from ${kind}_records where source_id = $1 and ts >= $2 and ts <= $3 order by ts`,
    [sourceId, new Date(from), new Date(to)],
  );
}

/** Posts the kind's example record for the source at each moment, without ids, as a live run sends them. */
async function postLive(kindName: string, sourceId: string, moments: number[]) {
  const kind = kinds.find((candidate) => candidate.name === kindName) as (typeof kinds)[number];
  const body = moments.map((at) => ({ ...kind.example(new Date(at)), [kind.sourceField]: sourceId }));
  const response = await post(runtime, `/v1/${kind.name}/${kind.resource}`, body);
  expect(response.status).toBe(202);
}

test("a backfill run again stores every record once: same devices, same moments, same ids", async () => {
  // No live records: at 0.1 a second none is due within the 0.5 s the live part lasts.
  const options = parseSimulateArgs(["--kind", "all", "--devices", "4", "--backfill", "3h", "--rate", "0.1"]);
  const run = (until: number) => simulate({ ...options, durationSeconds: 0.5, backfillUntil: until }, env());
  const until = Date.now() - 3_600_000;

  const first = await run(until);
  expect(first.errors).toBe(0);
  // Every kind's devices at its interval: sensors every 5 minutes, flights 10, traffic 15, weather 30.
  expect(first.acknowledged).toBeGreaterThanOrEqual(4 * (35 + 17 + 11 + 5));
  await settled(0, first.acknowledged);
  const before = await stored();
  // One reading per device and moment. Not for flights: a status's ts is its own (a scheduled one's is its
  // estimated departure), so a scheduled and an active status of one flight can share a moment.
  const readings = kinds.filter((kind) => kind.name !== "flights");
  for (const kind of readings) expect(before[kind.name]?.pairs).toBe(before[kind.name]?.rows);
  // (A flight's unchanged status, scheduled with nothing new, is one record however often it is read.)
  expect(Object.values(before).reduce((sum, kind) => sum + kind.rows, 0)).toBe(sink().stats.inserted);

  // The same run again: every device's newest record is its last moment, so nothing is sent but the statuses of
  // landed flights, which are stored at their arrival, before the moment they are read at; their ids come from
  // their content, so nothing new is stored.
  const second = await run(until);
  expect(second.errors).toBe(0);
  expect(second.sent).toBeLessThan(first.sent / 10);
  await settled(0, first.acknowledged + second.acknowledged);
  expect(await stored()).toEqual(before);

  // Half an hour later: only the moments the first run could not have had are new.
  const later = until + 30 * 60_000;
  const third = await run(later);
  expect(third.errors).toBe(0);
  await settled(0, first.acknowledged + second.acknowledged + third.acknowledged);
  const after = await stored();
  for (const kind of kinds) {
    const every = { sensors: 5, traffic: 15, weather: 30, flights: 10 }[kind.name];
    const known = new Set(backfillTimes(every, 3 * 3_600_000, until));
    const added = backfillTimes(every, 3 * 3_600_000, later).filter((at) => !known.has(at)).length;
    expect(added).toBeGreaterThan(0);
    const [was, is] = [before[kind.name], after[kind.name]] as { rows: number; pairs: number }[];
    if (kind.name !== "flights") expect(is?.pairs).toBe(is?.rows);
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

test("a backfill resumes after each device's newest record: a live run's gap is filled and nothing twice", async () => {
  const args = [
    "--kind",
    "sensors,traffic,weather",
    "--devices",
    "3",
    "--first-device",
    "11",
    "--backfill",
    "2h",
  ];
  const options = { ...parseSimulateArgs([...args, "--rate", "0.1"]), durationSeconds: 0.5 };
  const seeded = new Faker({ locale: [en] });
  seeded.seed(BACKFILL_SEED);
  const fleets = fleetsOf(options, seeded);
  const start = sink().stats.records;
  const first = await simulate({ ...options, backfillUntil: noon }, env());
  expect(first.errors).toBe(0);
  await settled(start, first.acknowledged);

  // A live run from noon, each device stopping at its own moment; its records are off the grid, with ids of
  // their own.
  const liveMoments = (k: number) =>
    Array.from({ length: 5 + 2 * k }, (_, j) => noon + 137_000 + j * 4 * MINUTE);
  const newest = (k: number) => liveMoments(k).at(-1) as number;
  let posted = 0;
  for (const { simulator, devices } of fleets) {
    for (const [k, device] of devices.entries()) {
      await postLive(simulator.kind, device.sourceId, liveMoments(k));
      posted += liveMoments(k).length;
    }
  }
  await settled(start, first.acknowledged + posted);
  const before = new Map<string, number>();
  for (const { simulator, devices } of fleets) {
    for (const [k, device] of devices.entries()) {
      before.set(device.sourceId, (await rows(simulator.kind, device.sourceId, 0, newest(k))).length);
    }
  }

  const until = noon + 90 * MINUTE;
  const second = await simulate({ ...options, backfillUntil: until }, env());
  expect(second.errors).toBe(0);
  await settled(start, first.acknowledged + posted + second.acknowledged);
  let expected = 0;
  for (const { simulator, devices } of fleets) {
    for (const [k, device] of devices.entries()) {
      const { kind } = simulator;
      const gap = backfillTimes(simulator.backfillEveryMinutes, 2 * 3_600_000, until).filter(
        (at) => at > newest(k),
      );
      expect(gap.length).toBeGreaterThan(0);
      expected += gap.length;
      // Nothing up to the device's newest record is added; after it, its moments on the grid.
      expect((await rows(kind, device.sourceId, 0, newest(k))).length).toBe(
        before.get(device.sourceId) ?? -1,
      );
      const added = await rows(kind, device.sourceId, newest(k) + 1, until);
      expect(added.map((row) => row.ts.getTime())).toEqual(gap);
      if (kind !== "traffic" || added[0]?.flags.length) continue;
      // A store's first count after its last live one covers the time since that one, not the whole interval.
      const counted = (from: number, to: number) => {
        const state = restartCounter(device.state as Parameters<typeof restartCounter>[0]);
        const store = { ...device, state: { ...state, glitchesPerHour: 0 } };
        trafficSimulator.reading(store, new Date(from), seeded);
        return trafficSimulator.reading(store, new Date(to), seeded).visitorsIn as number;
      };
      const [moment] = gap as [number];
      const since = counted(newest(k), moment);
      expect(since).toBeLessThan(counted(moment - simulator.backfillEveryMinutes * MINUTE, moment));
      // (What is left over of a visitor from the counts before is carried into this one.)
      expect((added[0]?.data.visitorsIn as number) - since).toBeWithin(0, 2);
    }
  }
  expect(second.sent).toBe(expected);
}, 120_000);

test("a key without read scope: the backfill writes its whole window, and says so in one line", async () => {
  const { key } = await createKey(runtime.db, ["ingest:*"], "ingest only");
  const options = parseSimulateArgs(["--kind", "sensors", "--devices", "2", "--first-device", "21"]);
  const seeded = new Faker({ locale: [en] });
  seeded.seed(BACKFILL_SEED);
  const [fleet] = fleetsOf(options, seeded);
  const start = sink().stats.records;
  const devices = fleet?.devices ?? [];
  for (const device of devices) await postLive("sensors", device.sourceId, [noon + 17 * MINUTE + 13_000]);
  await settled(start, devices.length);
  const errors = spyOn(console, "error").mockImplementation(() => {});
  const until = noon + 30 * MINUTE;
  let summary: Awaited<ReturnType<typeof simulate>>;
  try {
    summary = await simulate(
      { ...options, backfillMs: 3_600_000, backfillUntil: until, durationSeconds: 0.5, rate: 0.1 },
      env(key),
    );
    expect(errors.mock.calls.map((call) => String(call[0]))).toEqual([
      expect.stringMatching(/^backfill: .*GET \/v1\/sensors\/latest.*403.*whole window/),
    ]);
  } finally {
    errors.mockRestore();
  }
  expect(summary.errors).toBe(0);
  await settled(start, devices.length + summary.acknowledged);
  const grid = backfillTimes(5, 3_600_000, until);
  for (const device of devices) {
    expect((await rows("sensors", device.sourceId, until - 3_600_000, until)).length).toBe(grid.length + 1);
  }
}, 60_000);
