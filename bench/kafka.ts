// Batched HTTP records/s through the gateway (WORKERS=1 and 2) against Kafka's own Java producer
// (ProducerPerformance from kafka-tools, acks=all, idempotent, records of the envelope's size) and the bare kafkajs
// producer, on one broker and then on a three-broker cluster (replication factor 3, min ISR 2), in one run.
// bun run bench/kafka.ts [seconds per measurement]
import { $ } from "bun";
import { type Admin, Kafka, logLevel, Partitioners } from "kafkajs";
import { validateItem } from "../src/ingest/validate";
import { sensors } from "../src/kinds/sensors";
import { privateCluster } from "../test/cluster";
import { BENCH_KEY } from "./http";
import { benchAdmin, deleteTopics, ensureWrk, machine, root, serve, wrk } from "./lib";

const seconds = Number(process.argv[2] ?? 10);
const BATCH = 500;
const GATEWAY_PORT = 18095;
const PREFIX = "bench-kafka";
const JAVA_TOPIC = "bench-kafka-java";
const LOAD_BELOW = 2;
const LOAD_WAIT_MS = Number(process.env.BENCH_LOAD_WAIT_S ?? 120) * 1000;

const ts = Date.now();
const readings = Array.from({ length: BATCH }, (_, i) => ({
  deviceId: `bench-${i % 1000}`,
  ts,
  temperature: 20 + (i % 10),
  humidity: 40 + (i % 20),
}));
// The envelopes the gateway writes for these readings, built by its own validation: their size is the Java records'.
const receivedAt = new Date();
const context = { via: "http" as const, receivedAt, receivedAtIso: receivedAt.toISOString() };
const envelopes = readings.map((value) => {
  const result = validateItem(sensors, { value }, { ...context, maxFutureMs: 60_000, maxAgeMs: 86_400_000 });
  if (!("envelope" in result)) throw new Error(`invalid reading: ${JSON.stringify(result.errors)}`);
  return result.envelope;
});
const values = envelopes.map((envelope) => JSON.stringify(envelope));
const recordSize = Math.round(
  values.reduce((sum, value) => sum + Buffer.byteLength(value), 0) / values.length,
);

function load1() {
  return Number((require("node:fs").readFileSync("/proc/loadavg", "utf8") as string).split(" ")[0]);
}

/** Waits (up to LOAD_WAIT_MS) until the 1-minute load average is below LOAD_BELOW; returns the load it starts at. */
async function settle() {
  await $`sync`;
  const deadline = Date.now() + LOAD_WAIT_MS;
  await Bun.sleep(2000);
  while (load1() >= LOAD_BELOW && Date.now() < deadline) await Bun.sleep(2000);
  return load1();
}

interface Measurement {
  name: string;
  rate: number;
  detail: string;
  load: number;
}

/** ProducerPerformance's final line: "N records sent, R records/sec (M MB/sec), A ms avg latency, ...". */
async function javaProducer(brokers: string, topic: string, records: number, props: string[]) {
  const output =
    await $`java -Xmx512m -cp ${`${root}/.cache/kafka/jars/*`} -Dlog4j.configuration=file:${root}/scripts/kafka/log4j.properties org.apache.kafka.tools.ProducerPerformance --topic ${topic} --num-records ${records} --record-size ${recordSize} --throughput -1 --producer-props bootstrap.servers=${brokers} acks=all enable.idempotence=true ${props}`.text();
  const last = output.trim().split("\n").at(-1) ?? "";
  const match = last.match(
    /(\d+) records sent, ([\d.]+) records\/sec .*?([\d.]+) ms avg latency.*?(\d+) ms 99th/,
  );
  if (!match) throw new Error(`ProducerPerformance said: ${output.slice(-500)}`);
  return { rate: Number(match[2]), avgMs: Number(match[3]), p99Ms: Number(match[4]), last };
}

/** Creates a topic of 3 partitions and waits until the metadata gives each a leader. */
async function createTopic(admin: Admin, topic: string, replicationFactor: number) {
  // kafkajs may fail the request on a new cluster's stale metadata after the topic is created: look for it below.
  await admin.createTopics({ topics: [{ topic, numPartitions: 3, replicationFactor }] }).catch((error) => {
    console.error(`createTopics ${topic}: ${error}`);
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await admin
      .fetchTopicMetadata({ topics: [topic] })
      .then(({ topics }) => topics[0]?.partitions.every(({ leader }) => leader >= 0) === true)
      .catch(() => false);
    if (ready) return;
    if (Date.now() > deadline) throw new Error(`topic ${topic} has no leaders after 30 s`);
    await Bun.sleep(250);
  }
}

/** Kafka 4's default linger (3.9's is 0) and batches of 256 KiB: the Java client as one would tune it for throughput. */
const TUNED = ["linger.ms=5", "batch.size=262144"];

/** A warm-up run of ProducerPerformance sizes the measured run to last about `seconds`. */
async function measureJava(
  brokers: string,
  replicationFactor: number,
  props: string[] = [],
): Promise<Measurement> {
  const admin = await benchAdmin(brokers);
  // A topic of its own: one deleted and created again under the same name confuses a new cluster's metadata.
  const topic = `${JAVA_TOPIC}-${crypto.randomUUID().slice(0, 8)}`;
  await createTopic(admin, topic, replicationFactor);
  try {
    const warm = await javaProducer(brokers, topic, 300_000, props);
    const records = Math.max(300_000, Math.round(warm.rate * seconds));
    const load = await settle();
    const started = performance.now();
    const run = await javaProducer(brokers, topic, records, props);
    const wall = (performance.now() - started) / 1000;
    return {
      name: `Java ProducerPerformance (kafka-tools 3.9.1), ${props.length > 0 ? props.join(" ") : "default batch.size and linger.ms"}`,
      rate: run.rate,
      detail: `${records} records in ${wall.toFixed(1)} s with JVM start; avg ${run.avgMs} ms, p99 ${run.p99Ms} ms`,
      load,
    };
  } finally {
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
  }
}

async function measureGateway(
  brokers: string,
  replicationFactor: number,
  workers: number,
): Promise<Measurement> {
  const env = {
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: PREFIX,
    KAFKA_REPLICATION_FACTOR: String(replicationFactor),
    WORKERS: String(workers),
    ROLES: "gateway",
    MQTT_CONNECTIONS: "0",
    API_KEYS: BENCH_KEY,
    RATE_LIMIT_PER_SECOND: "100000000",
  };
  const bodyFile = `/tmp/sluice-bench-kafka-batch-${BATCH}.json`;
  await Bun.write(bodyFile, JSON.stringify(readings));
  const gateway = await serve(["src/main.ts", "start"], env, GATEWAY_PORT, "/readyz");
  const batched = (duration: number) =>
    wrk({
      url: `http://127.0.0.1:${GATEWAY_PORT}`,
      script: `${import.meta.dir}/wrk/batch.lua`,
      connections: 16,
      seconds: duration,
      env: { BENCH_BODY: bodyFile, BENCH_KEY },
    });
  try {
    // Warm-up: every worker started, JIT, producers connected, metadata known.
    await Bun.sleep(workers > 1 ? 3000 : 0);
    await batched(3);
    const load = await settle();
    const run = await batched(seconds);
    if (run.non2xx + run.errors > 0)
      throw new Error(`${run.non2xx} non-2xx answers, ${run.errors} socket errors`);
    return {
      name: `Sluice gateway, WORKERS=${workers}, HTTP batches of ${BATCH}, 16 connections (wrk)`,
      rate: run.requestsPerSecond * BATCH,
      detail: `p50 ${run.p50Ms} ms, p99 ${run.p99Ms} ms per request of ${BATCH}`,
      load,
    };
  } finally {
    await gateway.stop();
    await deleteTopics(brokers, PREFIX);
  }
}

/** bench/http.ts's baseline: the same envelopes from one idempotent kafkajs producer, acks=all, 500 per send. */
async function measureBare(brokers: string, replicationFactor: number): Promise<Measurement> {
  const topic = `${PREFIX}.sensors`;
  const kafka = new Kafka({
    clientId: "bench-bare",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  await createTopic(admin, topic, replicationFactor);
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const messages = envelopes.map((envelope, i) => ({ key: envelope.sourceId, value: values[i] as string }));
  try {
    await producer.send({ topic, messages, acks: -1 });
    const load = await settle();
    let sent = 0;
    const started = performance.now();
    const deadline = started + seconds * 1000;
    while (performance.now() < deadline) {
      await producer.send({ topic, messages, acks: -1 });
      sent += messages.length;
    }
    return {
      name: `bare kafkajs producer, idempotent, ${BATCH} per send, one send at a time`,
      rate: sent / ((performance.now() - started) / 1000),
      detail: "",
      load,
    };
  } finally {
    await producer.disconnect();
    await admin.deleteTopics({ topics: [topic] }).catch(() => {});
    await admin.disconnect();
  }
}

async function measureAll(brokers: string, replicationFactor: number) {
  const results: Measurement[] = [];
  for (const measure of [
    () => measureJava(brokers, replicationFactor),
    () => measureJava(brokers, replicationFactor, TUNED),
    () => measureGateway(brokers, replicationFactor, 1),
    () => measureGateway(brokers, replicationFactor, 2),
    () => measureBare(brokers, replicationFactor),
  ]) {
    // A measurement that fails (a gateway that exits, a cluster not ready) is recorded as such, not the run lost.
    const result = await measure().catch(
      (error): Measurement => ({
        name: "failed",
        rate: Number.NaN,
        detail: String(error).slice(0, 200),
        load: load1(),
      }),
    );
    console.error(`${result.name}: ${Math.round(result.rate)} records/s (load ${result.load})`);
    results.push(result);
  }
  return results;
}

await ensureWrk();
await $`bash ${root}/scripts/kafka.sh start`; // fetches kafka-tools too when the pom changed
const loadBefore = load1();
const single = "127.0.0.1:9092";
console.error(`envelope ${recordSize} bytes; one broker (${single})`);
const one = await measureAll(single, 1);
console.error("three brokers (privateCluster)");
const cluster = await privateCluster();
let three: Measurement[];
try {
  three = await measureAll(cluster.brokers, 3);
} finally {
  await cluster.remove();
}

const date = new Date().toISOString().slice(0, 16).replace("T", " ");
const rows = (label: string, results: Measurement[]) => {
  const java = results[0]?.rate ?? Number.NaN;
  return results.map(
    (r) =>
      `| ${label} | ${r.name} | ${Math.round(r.rate)} | ${(r.rate / java).toFixed(2)} | ${r.load.toFixed(2)} | ${r.detail} |`,
  );
};
const table = [
  `Measured ${date} UTC on ${machine()}, with \`bun run bench/kafka.ts ${seconds}\`; Kafka, gateway and load generators on one machine; envelope ${recordSize} bytes (the JSON Sluice writes for a sensor reading of bench/http.ts), ${seconds} s per measurement, each started once the 1-minute load average was below ${LOAD_BELOW} or after ${LOAD_WAIT_MS / 60_000} minutes of waiting (load ${loadBefore.toFixed(2)} at the start, ${load1().toFixed(2)} at the end).`,
  "",
  "One broker: the shared 127.0.0.1:9092 (replication factor 1). Three brokers: a cluster of the run's own from `scripts/kafka.sh` with `KAFKA_NODES=3` (test/cluster.ts's privateCluster(), replication factor 3, min.insync.replicas 2). Every topic has 3 partitions; every producer uses acks=all and idempotence. ProducerPerformance is run as",
  "",
  `\`java -cp ".cache/kafka/jars/*" org.apache.kafka.tools.ProducerPerformance --topic ${JAVA_TOPIC}-… --num-records N --record-size ${recordSize} --throughput -1 --producer-props bootstrap.servers=… acks=all enable.idempotence=true\``,
  "",
  "with N sized by a warm-up run to last about the measurement's seconds; its records/s is its final line's (null keys, random bytes; JVM start-up excluded by the tool).",
  "",
  "| brokers | measurement | records/s | ratio to Java with its defaults (same brokers) | load (1 min) | detail |",
  "| --- | --- | --- | --- | --- | --- |",
  ...rows("1", one),
  ...rows("3", three),
  "",
  `Three brokers against one, same measurement: ${one.map((r, i) => `${r.name.split(",")[0]}${r.name.includes("WORKERS") ? ` ${r.name.match(/WORKERS=\d/)?.[0]}` : ""} ${((three[i]?.rate ?? Number.NaN) / r.rate).toFixed(2)}`).join("; ")}.`,
  "",
].join("\n");
console.log(`\n${table}`);
await Bun.write(`${root}/bench/results/${date.replace(/[: ]/g, "-")}-kafka.md`, table);
