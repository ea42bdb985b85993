// bun run bench:soak [minutes]: the gateway (and sink) under half of its measured maximum for minutes, in
// 10-second slices: throughput, p99 and the process's memory in each, to show they stay flat.
import { $ } from "bun";
import { BENCH_KEY } from "./http";
import { ensureWrk, machine, root, serve, wrk } from "./lib";

const minutes = Number(process.argv[2] ?? 3);
const brokers = process.env.KAFKA_BROKERS ?? "127.0.0.1:9092";
const PORT = 18090;
const CONNECTIONS = 32;

await ensureWrk();
await $`bash ${root}/scripts/kafka.sh start`;
const gateway = await serve(
  ["src/main.ts", "start"],
  {
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: "soak",
    REDIS_KEY_PREFIX: "soak",
    DATABASE_URL: "postgres://postgres@127.0.0.1:5432/sluice_soak",
    MQTT_CONNECTIONS: "0",
    API_KEYS: BENCH_KEY,
    RATE_LIMIT_PER_SECOND: "100000000",
  },
  PORT,
  "/readyz",
);
const rss = async () => {
  const status = await Bun.file(`/proc/${gateway.proc.pid}/status`).text();
  return Math.round(Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0) / 1024);
};
const url = `http://127.0.0.1:${PORT}`;
const env = { BENCH_TS: String(Date.now()), BENCH_KEY };
const slice = (delayMs: number, seconds: number) =>
  wrk({
    url,
    script: `${import.meta.dir}/wrk/single.lua`,
    connections: CONNECTIONS,
    seconds,
    env: { ...env, BENCH_DELAY_MS: String(delayMs) },
  });

try {
  await slice(0, 5); // warm-up
  const maximum = (await slice(0, 10)).requestsPerSecond;
  const target = maximum / 2;
  const delayMs = Math.max(1, Math.round((CONNECTIONS * 1000) / target));
  const rows: string[] = [];
  const samples: { rate: number; p99: number; rss: number }[] = [];
  const slices = Math.max(1, Math.round((minutes * 60) / 10));
  for (let i = 0; i < slices; i++) {
    const result = await slice(delayMs, 10);
    const sample = { rate: result.requestsPerSecond, p99: result.p99Ms, rss: await rss() };
    samples.push(sample);
    const errors = result.non2xx + result.errors;
    rows.push(
      `| ${(i + 1) * 10} s | ${Math.round(sample.rate)} | ${sample.p99} ms | ${sample.rss} MiB | ${errors} |`,
    );
    console.log(rows.at(-1));
  }
  const rates = samples.map((s) => s.rate);
  const mean = rates.reduce((a, b) => a + b, 0) / rates.length;
  const spread = Math.sqrt(rates.reduce((a, b) => a + (b - mean) ** 2, 0) / rates.length) / mean;
  const firstHalf = samples.slice(0, Math.ceil(samples.length / 2));
  const secondHalf = samples.slice(Math.ceil(samples.length / 2));
  const average = (list: typeof samples, pick: (s: (typeof samples)[number]) => number) =>
    list.reduce((a, s) => a + pick(s), 0) / Math.max(1, list.length);
  const date = new Date().toISOString().slice(0, 16).replace("T", " ");
  const report = [
    `Soak, ${date} UTC on ${machine()}, with \`bun run bench:soak ${minutes}\`: ${CONNECTIONS} connections, each pausing`,
    `${delayMs} ms between requests, aimed at half of the measured maximum (${Math.round(maximum)} req/s → ${Math.round(target)} req/s; each`,
    "request's own latency comes on top of its pause), single readings, gateway and sink in one process.",
    "",
    `Throughput ${Math.round(mean)} req/s (spread ${(spread * 100).toFixed(1)} %); p99 first half ${average(firstHalf, (s) => s.p99).toFixed(1)} ms,`,
    `second half ${average(secondHalf, (s) => s.p99).toFixed(1)} ms; memory ${samples[0]?.rss} MiB → ${samples.at(-1)?.rss} MiB.`,
    "",
    "| after | req/s | p99 | gateway RSS | non-2xx + errors |",
    "| --- | --- | --- | --- | --- |",
    ...rows,
    "",
  ].join("\n");
  console.log(`\n${report}`);
  await Bun.write(`${root}/bench/results/soak-latest.md`, report);
} finally {
  await gateway.stop();
}
