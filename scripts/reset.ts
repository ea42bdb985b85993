// Empties what the demo of scripts/up.sh stored: the database of DATABASE_URL (dropped; start migrates it
// again), the Redis keys under REDIS_KEY_PREFIX and the Kafka topics under KAFKA_TOPIC_PREFIX.
import Redis from "ioredis";
import { Kafka, logLevel } from "kafkajs";
import postgres from "postgres";
import { loadConfig } from "../src/config";
import { allTopics } from "../src/kafka/client";

const config = loadConfig(process.env);

const url = new URL(config.DATABASE_URL);
const database = decodeURIComponent(url.pathname.slice(1));
url.pathname = "/postgres";
const admin = postgres(url.toString(), { max: 1, onnotice: () => {} });
await admin.unsafe(`drop database if exists "${database.replaceAll('"', '""')}" with (force)`);
await admin.end();

const redis = new Redis(config.REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
await redis.connect();
let removed = 0;
for await (const keys of redis.scanStream({ match: `${config.REDIS_KEY_PREFIX}:*`, count: 1000 })) {
  if (keys.length > 0) removed += await redis.unlink(...(keys as string[]));
}
redis.disconnect();

const kafka = new Kafka({ brokers: config.KAFKA_BROKERS, logLevel: logLevel.NOTHING });
const kafkaAdmin = kafka.admin();
await kafkaAdmin.connect();
const existing = new Set(await kafkaAdmin.listTopics());
const topics = allTopics(config.KAFKA_TOPIC_PREFIX).filter((topic) => existing.has(topic));
if (topics.length > 0) await kafkaAdmin.deleteTopics({ topics, timeout: 30_000 });
await kafkaAdmin.disconnect();

console.log(
  `reset: dropped database ${database}, ${removed} Redis keys under ${config.REDIS_KEY_PREFIX}:, ` +
    `topics ${topics.join(", ") || "(none)"}`,
);
