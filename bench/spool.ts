// The spool: records/s a gateway takes while Kafka is down (every record committed to the spool) against the
// same load with Kafka up, and how fast the spool drains once Kafka is back.
// bun run bench/spool.ts [seconds per measurement]
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { privateBroker } from "../test/helpers";
import { BENCH_KEY } from "./http";
import { ensureWrk, machine, root, serve, type WrkResult, wrk } from "./lib";

const seconds = Number(process.argv[2] ?? 10);
const PAIRS = 3;
const BATCH = 500;
const GATEWAY_PORT = 18090;

async function spoolDepth() {
  const text = await (await fetch(`http://127.0.0.1:${GATEWAY_PORT}/metrics`)).text();
  const value = (name: string) => Number(text.match(new RegExp(`^${name} (\\S+)$`, "m"))?.[1] ?? Number.NaN);
  return { records: value("sluice_spool_records"), bytes: value("sluice_spool_bytes") };
}

/** Waits until the spool is empty; the drain rate is taken from its first forwarded batch to empty. */
async function drain() {
  const started = performance.now();
  const { records, bytes } = await spoolDepth();
  let firstDrop: number | undefined;
  let atFirstDrop = records;
  for (;;) {
    const depth = await spoolDepth();
    if (firstDrop === undefined && depth.records < records) {
      firstDrop = performance.now();
      atFirstDrop = depth.records;
    }
    if (depth.records === 0) break;
    await Bun.sleep(50);
  }
  const ended = performance.now();
  const draining = firstDrop === undefined ? 0 : (ended - firstDrop) / 1000;
  return {
    records,
    bytes,
    toEmptySeconds: (ended - started) / 1000,
    recordsPerSecond: draining > 0 ? atFirstDrop / draining : Number.NaN,
  };
}

const ts = Date.now();
const bodyFile = `/tmp/sluice-bench-spool-batch-${BATCH}.json`;
await Bun.write(
  bodyFile,
  JSON.stringify(
    Array.from({ length: BATCH }, (_, i) => ({
      deviceId: `bench-${i % 1000}`,
      ts,
      temperature: 20,
      humidity: 40,
    })),
  ),
);
const shapes = {
  single: { script: "single.lua", connections: 64, records: 1, env: { BENCH_TS: String(ts), BENCH_KEY } },
  batch: { script: "batch.lua", connections: 16, records: BATCH, env: { BENCH_BODY: bodyFile, BENCH_KEY } },
};
type Shape = keyof typeof shapes;
const load = (shape: Shape) =>
  wrk({
    url: `http://127.0.0.1:${GATEWAY_PORT}`,
    script: `${import.meta.dir}/wrk/${shapes[shape].script}`,
    connections: shapes[shape].connections,
    seconds,
    env: shapes[shape].env,
  });
const refusedNothing = (run: WrkResult) => {
  if (run.non2xx + run.errors > 0)
    throw new Error(`${run.non2xx} non-2xx answers, ${run.errors} socket errors`);
  return run;
};

await ensureWrk();
// The machine is shared: its load, before and after, says how far to trust the run.
const loadBefore = loadavg()[0]?.toFixed(1);
const broker = await privateBroker();
const dir = await mkdtemp(`${tmpdir()}/sluice-bench-spool-`);
const env = {
  KAFKA_BROKERS: broker.brokers,
  KAFKA_TOPIC_PREFIX: "bench-spool",
  ROLES: "gateway",
  MQTT_CONNECTIONS: "0",
  API_KEYS: BENCH_KEY,
  RATE_LIMIT_PER_SECOND: "100000000",
  SPOOL_DIR: dir,
};
const gateway = await serve(["src/main.ts", "start"], env, GATEWAY_PORT, "/readyz");
const rows: string[] = [];
try {
  await load("single"); // warm-up: JIT, producer connections, topic metadata
  for (const shape of ["single", "batch"] as Shape[]) {
    const pairs: {
      up: WrkResult;
      down: WrkResult;
      ratio: number;
      drain: Awaited<ReturnType<typeof drain>>;
    }[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const up = refusedNothing(await load(shape));
      await broker.stop();
      // The first request after the stop waits KAFKA_ACK_TIMEOUT_MS, then the gateway spools at once.
      await fetch(`http://127.0.0.1:${GATEWAY_PORT}/v1/sensors/readings`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${BENCH_KEY}` },
        body: JSON.stringify({ deviceId: "bench-warm", ts, temperature: 20 }),
      });
      const down = refusedNothing(await load(shape));
      await broker.start();
      const drained = await drain();
      pairs.push({ up, down, ratio: down.requestsPerSecond / up.requestsPerSecond, drain: drained });
    }
    pairs.sort((a, b) => a.ratio - b.ratio);
    const middle = pairs[Math.floor(PAIRS / 2)] as (typeof pairs)[number];
    const perRequest = shapes[shape].records;
    const rate = (run: WrkResult) => Math.round(run.requestsPerSecond * perRequest);
    const what =
      shape === "single"
        ? "HTTP single reading, 64 connections (records/s)"
        : `HTTP batches of ${BATCH}, 16 connections (records/s)`;
    rows.push(
      `| ${what} with Kafka down, spooled (SPOOL_SYNC=full), middle of ${PAIRS} pairs (ratios ${pairs.map((p) => p.ratio.toFixed(2)).join(", ")}) | ${rate(middle.down)} (p99 ${middle.down.p99Ms.toFixed(2)} ms) | ${rate(middle.up)} with Kafka up (p99 ${middle.up.p99Ms.toFixed(2)} ms) | ${middle.ratio.toFixed(2)} | ≥ 0.8 |`,
    );
    const drains = pairs.map((p) => p.drain);
    rows.push(
      `| Drain when Kafka is back, after the ${what.split(" (")[0]} runs, no load (records/s) | ${drains.map((d) => Math.round(d.recordsPerSecond)).join(", ")} (${drains.map((d) => `${d.records} records, ${(d.bytes / 2 ** 20).toFixed(0)} MiB, empty ${d.toEmptySeconds.toFixed(1)} s after the broker's start`).join("; ")}) | — | — | — |`,
    );
  }
} finally {
  await gateway.stop();
  await broker.remove();
  await rm(dir, { recursive: true, force: true });
}

const date = new Date().toISOString().slice(0, 16).replace("T", " ");
const table = [
  `Measured ${date} UTC on ${machine()}, with \`bun run bench/spool.ts ${seconds}\`; Kafka (a broker of its own, stopped and started), gateway and wrk on one machine; load average ${loadBefore} before, ${loadavg()[0]?.toFixed(1)} after.`,
  "",
  "| benchmark | Sluice | baseline (same run) | ratio | goal |",
  "| --- | --- | --- | --- | --- |",
  ...rows,
  "",
].join("\n");
console.log(`\n${table}`);
await Bun.write(`${root}/bench/results/${date.replace(/[: ]/g, "-")}-spool.md`, table);
