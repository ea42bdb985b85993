import { $ } from "bun";
import { benchHttp, type Row } from "./http";
import { ensureWrk, machine, root } from "./lib";
import { benchMqtt } from "./mqtt";
import { benchAggregates, benchSink } from "./storage";

// bun run bench [seconds per measurement] [benchmark names]
const seconds = Number(process.argv[2] ?? 10);
const brokers = process.env.KAFKA_BROKERS ?? "127.0.0.1:9092";

await ensureWrk();
await $`bash ${root}/scripts/kafka.sh start`;
// Further arguments pick benchmarks by name (http, mqtt, sink, aggregates); the default is all of them.
const chosen = process.argv.slice(3);
const benches: [string, () => Promise<Row[]>][] = [
  ["http", () => benchHttp(seconds, brokers)],
  ["mqtt", () => benchMqtt(brokers)],
  ["sink", () => benchSink(brokers)],
  ["aggregates", () => benchAggregates()],
  ["import", async () => (await import("./import")).benchImport(seconds, brokers)],
];
const rows: Row[] = [];
for (const [name, run] of benches) {
  if (chosen.length > 0 && !chosen.includes(name)) continue;
  // Each starts on a settled machine: the HTTP run leaves a gigabyte of Kafka log for the kernel to write back.
  await $`sync`;
  await Bun.sleep(3000);
  rows.push(...(await run()));
}

const date = new Date().toISOString().slice(0, 16).replace("T", " ");
const table = [
  `Measured ${date} UTC on ${machine()}, with \`bun run bench ${seconds}\`; Kafka, gateway and load generator on one machine.`,
  "",
  "| benchmark | Sluice | baseline (same run) | ratio | goal |",
  "| --- | --- | --- | --- | --- |",
  ...rows.map(
    (row) =>
      `| ${row.name} | ${row.sluice} | ${row.baseline} | ${Number.isNaN(row.ratio) ? "—" : row.ratio.toFixed(2)} | ${row.goal} |`,
  ),
  "",
].join("\n");
console.log(`\n${table}`);
const stamp = date.replace(/[: ]/g, "-");
// Only a run of every benchmark becomes the latest; a partial one is kept under its names.
if (chosen.length === 0) await Bun.write(`${root}/bench/results/latest.md`, table);
await Bun.write(`${root}/bench/results/${[stamp, ...chosen].join("-")}.md`, table);
