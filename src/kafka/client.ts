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

/**
 * A Kafka client. Producers answer within KAFKA_ACK_TIMEOUT_MS; consumers are given `requestTimeout`
 * (consumerRequestTimeout): a SyncGroup or an OffsetCommit waits for a replicated write to the offsets topic, and
 * one that times out makes the member rejoin, which a group waits up to a session timeout for.
 */
export function createKafka(config: Config, logger: Logger, requestTimeout = config.KAFKA_ACK_TIMEOUT_MS) {
  return new Kafka({
    clientId: config.KAFKA_CLIENT_ID,
    brokers: config.KAFKA_BROKERS,
    connectionTimeout: 1000,
    requestTimeout,
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

/** What a consumer group's member waits for a broker's answer: as long as Java's consumer (30 s) by default. */
export const consumerRequestTimeout = (config: Config) =>
  Math.max(config.KAFKA_ACK_TIMEOUT_MS, config.KAFKA_SESSION_TIMEOUT_MS);

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
