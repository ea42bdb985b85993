import { Kafka, logLevel } from "kafkajs";
import postgres from "postgres";
import { loadConfig } from "../src/config";
import { migrateDatabase } from "../src/db/client";
import { allTopics, ensureTopics, kindTopic } from "../src/kafka/client";
import { createLogger } from "../src/log";
import { createRuntime } from "../src/runtime";
import type { Row } from "./http";

const ROWS = 100_000;
const SOURCES = 100;
const quiet = createLogger("warn");

async function freshDatabase(name: string) {
  const admin = postgres("postgres://postgres@127.0.0.1:5432/postgres", { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.end();
  const url = `postgres://postgres@127.0.0.1:5432/${name}`;
  await migrateDatabase(url, quiet);
  return url;
}

function envelopes(count: number) {
  const now = Date.now();
  const receivedAt = new Date(now).toISOString();
  return Array.from({ length: count }, (_, i) => {
    const sourceId = `bench-${i % SOURCES}`;
    return {
      id: Bun.randomUUIDv7(),
      kind: "sensors",
      sourceId,
      ts: new Date(now - 3_600_000 + Math.floor((i / count) * 3_600_000)).toISOString(),
      receivedAt,
      via: "http",
      data: { temperature: 15 + (i % 20), humidity: 40 + (i % 30), pm25: i % 50 },
    };
  });
}

/** Sink rows/s from Kafka into PostgreSQL (with roll-ups), against COPY of the same rows into the same table. */
export async function benchSink(brokers: string): Promise<Row[]> {
  const prefix = `bench-sink-${Date.now()}`;
  const config = loadConfig({
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: prefix,
    REDIS_KEY_PREFIX: prefix,
    ROLES: "sink",
    LOG_LEVEL: "warn",
    DATABASE_URL: await freshDatabase("sluice_bench_sink"),
  });
  const records = envelopes(ROWS);

  // Baseline first, on the fresh database: the same rows through COPY into a copy of the records table,
  // indexes included, no roll-ups.
  const sql = postgres(config.DATABASE_URL, { max: 1, onnotice: () => {} });
  await sql`create table copy_target (like sensors_records including all)`;
  const lines = records
    .map((r) => [r.id, r.sourceId, r.ts, r.receivedAt, r.via, JSON.stringify(r.data), "{}"].join("\t"))
    .join("\n");
  const copyStarted = performance.now();
  const stream =
    await sql`copy copy_target (id, source_id, ts, received_at, via, data, flags) from stdin`.writable();
  await new Promise<void>((resolve, reject) => {
    stream.on("finish", resolve).on("error", reject);
    stream.end(`${lines}\n`);
  });
  const copySeconds = (performance.now() - copyStarted) / 1000;
  const [{ count }] = (await sql`select count(*)::int as count from copy_target`) as unknown as [
    { count: number },
  ];
  await sql.end();
  if (count !== ROWS) throw new Error(`COPY stored ${count} rows`);

  const kafka = new Kafka({ clientId: "bench", brokers: [brokers], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, config);
  const producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < records.length; i += 5000) {
    const messages = records.slice(i, i + 5000).map((r) => ({ key: r.sourceId, value: JSON.stringify(r) }));
    await producer.send({ topic: kindTopic(prefix, "sensors"), messages, acks: -1 });
  }
  await producer.disconnect();

  const runtime = createRuntime(config, quiet);
  await runtime.ready;
  while ((runtime.sink?.stats.records ?? 0) < ROWS) await Bun.sleep(20);
  // From the first batch on: joining the consumer group is a one-off, not throughput.
  const sinkSeconds = (performance.now() - (runtime.sink?.stats.firstBatchAt ?? 0)) / 1000;
  await runtime.close();
  await admin.deleteTopics({ topics: allTopics(prefix) }).catch(() => {});
  await admin.disconnect();

  return [
    {
      name: `Sink, ${ROWS} sensor records from Kafka into PostgreSQL (rows/s)`,
      sluice: `${Math.round(ROWS / sinkSeconds)} (insert, dedupe on id, 1m/1h/1d roll-ups, offset commits)`,
      baseline: `${Math.round(ROWS / copySeconds)} COPY into the same table`,
      ratio: copySeconds / sinkSeconds,
      goal: "≥ 0.5",
    },
  ];
}

function percentile(samples: number[], p: number) {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

/** Aggregate query latency over 30 days of minute roll-ups for 100 sources, uncached and cached. */
export async function benchAggregates(): Promise<Row[]> {
  // Named for its layout: the rows are written in time order, as the sink writes them (v2; v1 was source by source).
  const database = "sluice_bench_rollups_v2";
  const url = `postgres://postgres@127.0.0.1:5432/${database}`;
  const sql = postgres("postgres://postgres@127.0.0.1:5432/postgres", { max: 1, onnotice: () => {} });
  await sql`drop database if exists sluice_bench_rollups`;
  const [exists] = await sql`select 1 from pg_database where datname = ${database}`;
  await sql.end();
  const end = Math.floor(Date.now() / 86_400_000) * 86_400_000; // the start of today (UTC)
  const start = end - 30 * 86_400_000;
  if (!exists) {
    await migrateDatabase(url, quiet);
    const db = postgres(url, { max: 1, onnotice: () => {} });
    // Minute rows as the sink would write them (one reading a minute), and the hour and day rows they add up to.
    for (const [width, step] of [
      ["1m", "1 minute"],
      ["1h", "1 hour"],
      ["1d", "1 day"],
    ] as const) {
      const perBucket = width === "1m" ? 1 : width === "1h" ? 60 : 1440;
      await db.unsafe(`
        insert into sensors_rollups (source_id, width, bucket_start, quality, count,
          temperature_count, temperature_sum, temperature_min, temperature_max,
          humidity_count, humidity_sum, humidity_min, humidity_max)
        select 'bench-' || s, '${width}', t, 'ok', ${perBucket},
          ${perBucket}, ${perBucket} * (15 + 10 * sin(extract(epoch from t) / 13751)), 5, 25,
          ${perBucket}, ${perBucket} * 50.0, 30, 70
        from generate_series(0, ${SOURCES - 1}) s,
          generate_series(to_timestamp(${start / 1000}), to_timestamp(${end / 1000}) - interval '${step}', interval '${step}') t
        order by t, s`);
    }
    await db.unsafe("analyze sensors_rollups");
    await db.end();
  }

  const iso = (ms: number) => new Date(ms).toISOString();
  const queries = [
    `bucket=1h&from=${iso(end - 7 * 86_400_000)}&to=${iso(end)}`,
    `bucket=1d&from=${iso(start)}&to=${iso(end)}`,
    `bucket=1m&from=${iso(end - 86_400_000)}&to=${iso(end)}&deviceId=bench-7`,
    `bucket=15m&from=${iso(end - 2 * 86_400_000)}&to=${iso(end)}&deviceId=bench-42`,
    `bucket=1h&from=${iso(start)}&to=${iso(end)}&deviceId=bench-3&metrics=temperature`,
    `bucket=1d&from=${iso(start)}&to=${iso(end)}&groupBy=source&metrics=temperature`,
  ].map((query) => `/v1/sensors/aggregates?${query}`);

  const measure = async (redisUrl: string, rounds: number, warm: boolean) => {
    const prefix = "bench-agg";
    const config = loadConfig({
      ROLES: "gateway",
      MQTT_CONNECTIONS: "0",
      DATABASE_URL: url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: `${prefix}-${Date.now()}`,
      API_KEYS: "sk_bench_key",
      RATE_LIMIT_PER_SECOND: "100000000",
      KAFKA_TOPIC_PREFIX: prefix,
      LOG_LEVEL: "error",
    });
    const runtime = createRuntime(config, createLogger("error"));
    await runtime.ready; // its Kafka topics created: start-up is not what is measured
    const samples: number[] = [];
    if (warm) {
      for (const path of queries)
        await runtime.app.request(path, { headers: { authorization: "Bearer sk_bench_key" } });
    }
    for (let round = 0; round < rounds; round++) {
      for (const path of queries) {
        const started = performance.now();
        const response = await runtime.app.request(path, {
          headers: { authorization: "Bearer sk_bench_key" },
        });
        await response.arrayBuffer();
        samples.push(performance.now() - started);
        if (response.status !== 200) throw new Error(`${path}: ${response.status}`);
      }
    }
    await runtime.close();
    return samples;
  };
  // Redis on a closed port: every answer comes from PostgreSQL.
  const uncached = await measure("redis://127.0.0.1:1/0", 20, true);
  const cached = await measure("redis://127.0.0.1:6379/0", 100, true);
  const describe = (samples: number[]) =>
    `p50 ${percentile(samples, 50).toFixed(1)} ms, p99 ${percentile(samples, 99).toFixed(1)} ms`;
  return [
    {
      name: `Aggregates over 30 days of minute roll-ups, ${SOURCES} sources, ${queries.length} query shapes`,
      sluice: `uncached ${describe(uncached)}; cached ${describe(cached)}`,
      baseline: "—",
      ratio: Number.NaN,
      goal: "p99 ≤ 50 ms uncached, ≤ 5 ms cached",
    },
  ];
}

if (import.meta.main) {
  console.log(await benchSink(process.env.KAFKA_BROKERS ?? "127.0.0.1:9092"));
  console.log(await benchAggregates());
}
