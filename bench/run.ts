import { $ } from "bun";
import { benchHttp, type Row } from "./http";
import { ensureWrk, machine, root } from "./lib";
import { benchMqtt } from "./mqtt";
import { benchAggregates, benchSink } from "./storage";

// bun run bench [seconds per measurement]
const seconds = Number(process.argv[2] ?? 10);
const brokers = process.env.KAFKA_BROKERS ?? "127.0.0.1:9092";

await ensureWrk();
await $`bash ${root}/scripts/kafka.sh start`;
const rows: Row[] = [
  ...(await benchHttp(seconds, brokers)),
  ...(await benchMqtt(brokers)),
  ...(await benchSink(brokers)),
  ...(await benchAggregates()),
];

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
await Bun.write(`${root}/bench/results/latest.md`, table);
await Bun.write(`${root}/bench/results/${date.replace(/[: ]/g, "-")}.md`, table);
