import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { type Batch, Batcher } from "../src/import/batch";
import { csvSplitter } from "../src/import/csv";
import { readSource } from "../src/import/source";
import { BENCH_KEY, type Row } from "./http";
import { deleteTopics, root, serve } from "./lib";

const GATEWAY_PORT = 18083;
const CONCURRENCY = 4;
const BATCH = 1000;
const PAIRS = 3;
/** The large file for the memory measurement; BENCH_IMPORT_GIB makes it smaller for a quick look. */
const LARGE_BYTES = Number(process.env.BENCH_IMPORT_GIB ?? 2) * 2 ** 30;
const HEADER =
  "deviceId,ts,temperature,humidity,pm25,pm10,co2,battery,location.lat,location.lon,location.city\n";
const MiB = 2 ** 20;

/** Sensor readings as a fleet's export would hold them: 500 devices, a reading each 10 ms, in time order. */
async function writeCsv(path: string, limit: { rows?: number; bytes?: number }) {
  const writer = Bun.file(path).writer();
  writer.write(HEADER);
  let rows = 0;
  let bytes = HEADER.length;
  const start = Date.now() - 3_600_000;
  const cities = ["Casablanca", "Rabat", '"Marrakesh, Medina"', "Paris", "Lyon"];
  while (
    rows < (limit.rows ?? Number.POSITIVE_INFINITY) &&
    bytes < (limit.bytes ?? Number.POSITIVE_INFINITY)
  ) {
    let chunk = "";
    for (let i = 0; i < 1000; i++, rows++) {
      const n = rows % 500;
      chunk +=
        `sensor-${String(n).padStart(4, "0")},${new Date(start + (rows % 360_000) * 10).toISOString()},` +
        `${(15 + (rows % 200) / 10).toFixed(1)},${40 + (rows % 50)},${(rows % 90) + 0.5},${rows % 120},` +
        `${420 + (rows % 900)},${100 - (n % 60)},33.${5700 + n},-7.${5800 + n},${cities[n % 5]}\n`;
    }
    writer.write(chunk);
    bytes += Buffer.byteLength(chunk);
  }
  await writer.end();
  return { rows, bytes };
}

/** The file cut into the very bodies the import sends, with the import's own splitter and batcher. */
async function bodiesOf(path: string) {
  const bodies: Batch[] = [];
  const batcher = new Batcher({
    maxRecords: BATCH,
    maxBytes: 1_048_576,
    onBatch: (batch) => bodies.push(batch),
    onRefuse: () => {},
  });
  const splitter = csvSplitter(
    {
      header: (b) => batcher.setHeader(b),
      record: (b, s, e, l) => batcher.add(b, s, e, l),
      refuse: () => {},
    },
    1_048_576,
  );
  const signal = new AbortController().signal;
  for await (const event of readSource({ path, follow: false, idleMs: 500, signal }))
    if (event.type === "data") splitter.push(event.bytes);
  splitter.end();
  batcher.flush();
  return bodies;
}

/** The baseline: a bare fetch loop with the same requests in flight, posting the same bodies. */
async function postAll(url: string, bodies: Batch[]) {
  let next = 0;
  let accepted = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < bodies.length) {
      const batch = bodies[next++] as Batch;
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "text/csv", authorization: `Bearer ${BENCH_KEY}` },
        body: batch.body,
      });
      if (response.status !== 202) throw new Error(`baseline: ${response.status} ${await response.text()}`);
      accepted += ((await response.json()) as { accepted: number }).accepted;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return accepted / ((performance.now() - started) / 1000);
}

/** `bun src/main.ts import`, as a user runs it: its own rate, the wall clock, and its peak RSS. */
async function runImport(path: string, url: string) {
  const started = performance.now();
  const proc = Bun.spawn(
    ["bun", "src/main.ts", "import", path, "--kind", "sensors", "--batch", String(BATCH)],
    {
      cwd: root,
      env: { ...process.env, SLUICE_URL: url, API_KEY: BENCH_KEY },
      stdout: "pipe",
      stderr: "inherit",
    },
  );
  const rss: { at: number; rss: number; peak: number }[] = [];
  const sampler = setInterval(async () => {
    const status = await Bun.file(`/proc/${proc.pid}/status`)
      .text()
      .catch(() => "");
    const kib = (name: string) => Number(status.match(new RegExp(`${name}:\\s+(\\d+)`))?.[1] ?? 0) * 1024;
    if (status) rss.push({ at: performance.now() - started, rss: kib("VmRSS"), peak: kib("VmHWM") });
  }, 250);
  const [code, stdout] = await Promise.all([proc.exited, new Response(proc.stdout).text()]);
  clearInterval(sampler);
  const seconds = (performance.now() - started) / 1000;
  const summary = stdout.match(
    /(\d+) records sent, (\d+) accepted, (\d+) refused, ([\d.]+) s, (\d+) records\/s/,
  );
  if (code !== 0 || !summary) throw new Error(`import exited ${code}: ${stdout.slice(-500)}`);
  return {
    accepted: Number(summary[2]),
    rate: Number(summary[5]),
    wallRate: Number(summary[2]) / seconds,
    peak: Math.max(0, ...rss.map((sample) => sample.peak)),
    rss,
    seconds,
  };
}

/** The import command against a bare fetch loop posting the same batches, and its memory on a 2 GiB file. */
export async function benchImport(seconds: number, brokers: string): Promise<Row[]> {
  const prefix = `bench-import-${Date.now()}`;
  const env = {
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: prefix,
    ROLES: "gateway",
    MQTT_CONNECTIONS: "0",
    API_KEYS: BENCH_KEY,
    RATE_LIMIT_PER_SECOND: "100000000",
  };
  const dir = await mkdtemp(`${tmpdir()}/sluice-bench-import-`);
  const gateway = await serve(["src/main.ts", "start"], env, GATEWAY_PORT, "/readyz");
  const base = `http://127.0.0.1:${GATEWAY_PORT}`;
  const url = `${base}/v1/sensors/readings`;
  try {
    // Sized from a warm-up (JIT, producer, topic metadata) so that each run lasts about `seconds`.
    const warm = `${dir}/warm.csv`;
    await writeCsv(warm, { rows: 50_000 });
    const warmRate = await postAll(url, await bodiesOf(warm));
    const path = `${dir}/readings.csv`;
    const file = await writeCsv(path, { rows: Math.max(50_000, Math.round(warmRate * seconds)) });
    const bodies = await bodiesOf(path);
    const pairs: { bare: number; imported: Awaited<ReturnType<typeof runImport>>; ratio: number }[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const bare = await postAll(url, bodies);
      const imported = await runImport(path, base);
      if (imported.accepted !== file.rows) throw new Error(`${imported.accepted} of ${file.rows} accepted`);
      pairs.push({ bare, imported, ratio: imported.rate / bare });
    }
    pairs.sort((a, b) => a.ratio - b.ratio);
    const middle = pairs[Math.floor(PAIRS / 2)] as (typeof pairs)[number];
    const ratios = pairs.map(({ ratio }) => ratio.toFixed(2)).join(", ");
    bodies.length = 0;

    const large = `${dir}/large.csv`;
    const big = await writeCsv(large, { bytes: LARGE_BYTES });
    const run = await runImport(large, base);
    await rm(large, { force: true });
    if (run.accepted !== big.rows) throw new Error(`${run.accepted} of ${big.rows} accepted`);
    const at = (share: number) => run.rss.find((sample) => sample.at >= run.seconds * 1000 * share)?.rss ?? 0;
    const rowBytes = Math.round(file.bytes / file.rows);
    return [
      {
        name:
          `Import of a CSV file, ${file.rows} rows of ~${rowBytes} B, batches of ${BATCH}, ${CONCURRENCY} in ` +
          `flight (records/s), middle of ${PAIRS} pairs (ratios ${ratios})`,
        sluice: `${Math.round(middle.imported.rate)} (${Math.round(middle.imported.wallRate)} on the wall clock, process start included)`,
        baseline: `${Math.round(middle.bare)} bare fetch loop posting the same bodies`,
        ratio: middle.ratio,
        goal: "≥ 0.9",
      },
      {
        name: `Import of a ${(big.bytes / 2 ** 30).toFixed(1)} GiB CSV (${big.rows} rows): peak RSS of the import process`,
        sluice:
          `${(run.peak / MiB).toFixed(0)} MiB (RSS ${(at(0.1) / MiB).toFixed(0)} MiB at 10 %, ` +
          `${(at(0.9) / MiB).toFixed(0)} MiB at 90 %; ${Math.round(run.rate)} records/s, ${run.seconds.toFixed(0)} s)`,
        baseline: "—",
        ratio: Number.NaN,
        goal: "≤ 150 MiB",
      },
    ];
  } finally {
    await gateway.stop();
    await rm(dir, { recursive: true, force: true });
    await deleteTopics(brokers, prefix);
  }
}
