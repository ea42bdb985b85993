import { type Admin, Kafka, logLevel } from "kafkajs";
import type { Config } from "../config";
import { kinds } from "../kinds";
import type { Logger } from "../log";

export function kindTopic(prefix: string, kindName: string) {
  return `${prefix}.${kindName}`;
}

export function deadLetterTopic(prefix: string) {
  return `${prefix}.deadletter`;
}

export function allTopics(prefix: string) {
  return [...kinds.map((kind) => kindTopic(prefix, kind.name)), deadLetterTopic(prefix)];
}

const kafkaLevels = { [logLevel.ERROR]: "error", [logLevel.WARN]: "warn", [logLevel.INFO]: "info" } as const;

export function createKafka(config: Config, logger: Logger) {
  return new Kafka({
    clientId: config.KAFKA_CLIENT_ID,
    brokers: config.KAFKA_BROKERS,
    connectionTimeout: 1000,
    requestTimeout: config.KAFKA_ACK_TIMEOUT_MS,
    // Fail fast and let the caller decide: an HTTP client is better served by a 503 than by minutes of retries.
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ namespace, level, log: { message, ...extra } }) => {
        // Sluice replaces a producer after any failed send instead of retrying forever, which keeps EoS.
        if (message.startsWith("Limiting retries for the idempotent producer")) return;
        const name = kafkaLevels[level as keyof typeof kafkaLevels] ?? "debug";
        logger[name](`kafka: ${message}`, { namespace, ...extra });
      },
  });
}

/** Creates the topics that are missing; the broker's auto-creation is never relied on. */
export async function ensureTopics(admin: Admin, config: Config) {
  const existing = new Set(await admin.listTopics());
  const missing = allTopics(config.KAFKA_TOPIC_PREFIX).filter((topic) => !existing.has(topic));
  if (missing.length === 0) return [];
  await admin.createTopics({
    waitForLeaders: true,
    topics: missing.map((topic) => ({
      topic,
      numPartitions: config.KAFKA_PARTITIONS,
      replicationFactor: config.KAFKA_REPLICATION_FACTOR,
    })),
  });
  return missing;
}

export function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: Timer | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
