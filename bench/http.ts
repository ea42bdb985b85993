import { Kafka, logLevel, Partitioners } from "kafkajs";
import { deleteTopics, serve, type WrkResult, wrk } from "./lib";

const GATEWAY_PORT = 18080;
const BARE_PORT = 18081;
const BATCH = 500;
const PAIRS = 3;
export const BENCH_KEY = "sk_bench_key";

function readings(count: number, ts: number) {
  return Array.from({ length: count }, (_, i) => ({
    deviceId: `bench-${i % 1000}`,
    ts,
    temperature: 20 + (i % 10),
    humidity: 40 + (i % 20),
  }));
}

export interface Row {
  name: string;
  sluice: string;
  baseline: string;
  ratio: number;
  goal: string;
}

/** Single-reading POSTs and 500-reading batches through the gateway, each beside its bare baseline. */
export async function benchHttp(seconds: number, brokers: string): Promise<Row[]> {
  const ts = Date.now();
  // The gateway role alone: the sink is measured on its own.
  const env = {
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: "bench",
    ROLES: "gateway",
    MQTT_CONNECTIONS: "0",
    API_KEYS: BENCH_KEY,
    // The key check and the Redis rate-limit round trip are measured; the limit itself is out of reach.
    RATE_LIMIT_PER_SECOND: "100000000",
  };
  const bodyFile = `/tmp/sluice-bench-batch-${BATCH}.json`;
  await Bun.write(bodyFile, JSON.stringify(readings(BATCH, ts)));

  const bare = await serve(["bench/bare-server.ts"], {}, BARE_PORT, "/");
  const gateway = await serve(["src/main.ts", "start"], env, GATEWAY_PORT, "/readyz");
  const single = (port: number) =>
    wrk({
      url: `http://127.0.0.1:${port}`,
      script: `${import.meta.dir}/wrk/single.lua`,
      connections: 64,
      seconds,
      env: { BENCH_TS: String(ts), BENCH_KEY },
    });
  const batched = (port: number) =>
    wrk({
      url: `http://127.0.0.1:${port}`,
      script: `${import.meta.dir}/wrk/batch.lua`,
      connections: 16,
      seconds,
      env: { BENCH_BODY: bodyFile, BENCH_KEY },
    });
  try {
    await single(GATEWAY_PORT); // warm-up: JIT, producer connection, topic metadata
    // The neighbours' load changes within minutes: pairs measured one after the other, and the middle pair kept.
    const pairs: { bare: WrkResult; gateway: WrkResult; ratio: number }[] = [];
    for (let i = 0; i < PAIRS; i++) {
      const bare = await single(BARE_PORT);
      const gateway = await single(GATEWAY_PORT);
      pairs.push({ bare, gateway, ratio: gateway.requestsPerSecond / bare.requestsPerSecond });
    }
    pairs.sort((a, b) => a.ratio - b.ratio);
    const middle = pairs[Math.floor(PAIRS / 2)] as (typeof pairs)[number];
    const { bare: bareSingle, gateway: gatewaySingle } = middle;
    const ratios = pairs.map(({ ratio }) => ratio.toFixed(2));
    const gatewayBatched = await batched(GATEWAY_PORT);
    const bareProducer = await bareProducerRate(brokers, seconds, ts);
    const batchedRate = gatewayBatched.requestsPerSecond * BATCH;
    // A run in which the gateway refused requests measures refusals, not ingestion: never record one.
    for (const run of [...pairs.map(({ gateway }) => gateway), gatewayBatched]) {
      if (run.non2xx + run.errors > 0)
        throw new Error(`${run.non2xx} non-2xx answers, ${run.errors} socket errors`);
    }
    return [
      {
        name: `HTTP single reading, 64 connections (req/s), middle of ${PAIRS} pairs (ratios ${ratios.join(", ")})`,
        sluice: `${Math.round(gatewaySingle.requestsPerSecond)} (p50 ${gatewaySingle.p50Ms} ms, p99 ${gatewaySingle.p99Ms} ms)`,
        baseline: `${Math.round(bareSingle.requestsPerSecond)} bare Bun.serve (p99 ${bareSingle.p99Ms} ms)`,
        ratio: gatewaySingle.requestsPerSecond / bareSingle.requestsPerSecond,
        goal: "≥ 0.30, p99 ≤ 25 ms",
      },
      {
        name: `HTTP batches of ${BATCH}, 16 connections (records/s)`,
        sluice: `${Math.round(batchedRate)} (p99 ${gatewayBatched.p99Ms} ms)`,
        baseline: `${Math.round(bareProducer)} bare kafkajs producer, ${BATCH} per send`,
        ratio: batchedRate / bareProducer,
        goal: "≥ 0.8",
      },
    ];
  } finally {
    await gateway.stop();
    await bare.stop();
    await deleteTopics(brokers, "bench");
  }
}

/** The same envelopes the gateway would write, sent by an idempotent producer with acks=all, one batch after another. */
async function bareProducerRate(brokers: string, seconds: number, ts: number) {
  const kafka = new Kafka({
    clientId: "bench-bare",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING,
  });
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    createPartitioner: Partitioners.DefaultPartitioner,
  });
  await producer.connect();
  const receivedAt = new Date().toISOString();
  const messages = readings(BATCH, ts).map(({ deviceId, ts, ...data }) => ({
    key: deviceId,
    value: JSON.stringify({
      id: Bun.randomUUIDv7(),
      kind: "sensors",
      sourceId: deviceId,
      ts: new Date(ts).toISOString(),
      receivedAt,
      via: "http",
      data,
    }),
  }));
  let sent = 0;
  const deadline = performance.now() + seconds * 1000;
  const started = performance.now();
  while (performance.now() < deadline) {
    await producer.send({ topic: "bench.sensors", messages, acks: -1 });
    sent += messages.length;
  }
  const rate = sent / ((performance.now() - started) / 1000);
  await producer.disconnect();
  return rate;
}
