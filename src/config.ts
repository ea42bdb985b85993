import { hostname } from "node:os";
import { z } from "zod";

const int = (fallback: number, min = 0) => z.coerce.number().int().min(min).default(fallback);
const list = (fallback: string) =>
  z
    .string()
    .default(fallback)
    .transform((value) =>
      value
        .split(",")
        .map((item) => item.trim())
        .filter(Boolean),
    );

/** Every environment variable Sluice reads. `.env.example` documents each one with its default. */
export const configSchema = z.object({
  PORT: int(8080, 0).pipe(z.number().max(65535)),
  HOST: z.string().default("0.0.0.0"),
  /** Gateway processes sharing PORT; the first also runs the other roles. */
  WORKERS: int(1, 1).pipe(z.number().max(64)),
  /** Empty: gateway and sink, and connectors when CONNECTORS_FILE is set. */
  ROLES: list("").pipe(z.array(z.enum(["gateway", "sink", "connectors", "archive"]))),
  CONNECTORS_FILE: z.string().optional(),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error", "silent"]).default("info"),

  KAFKA_BROKERS: list("127.0.0.1:9092").pipe(z.array(z.string().regex(/^[^:\s]+:\d+$/)).min(1)),
  KAFKA_CLIENT_ID: z.string().min(1).default("sluice"),
  KAFKA_TOPIC_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .default("sluice"),
  KAFKA_PARTITIONS: int(3, 1),
  KAFKA_REPLICATION_FACTOR: int(1, 1),
  KAFKA_ACK_TIMEOUT_MS: int(5000, 100),
  KAFKA_MAX_BATCH_BYTES: int(900_000, 1024),
  /** How long a crashed sink or archive keeps its partitions before the group gives them to another member. */
  KAFKA_SESSION_TIMEOUT_MS: int(30_000, 6000),

  /** Empty: no spool; records Kafka does not acknowledge are refused (503, PUBACK withheld). */
  SPOOL_DIR: z.string().optional(),
  SPOOL_MAX_BYTES: int(1024 * 1024 * 1024, 1024),
  SPOOL_MIN_FREE_BYTES: int(100 * 1024 * 1024, 0),
  SPOOL_SYNC: z.enum(["full", "normal"]).default("full"),

  MAX_BODY_BYTES: int(1_048_576, 1),
  MAX_BATCH_ITEMS: int(5000, 1),
  TS_MAX_FUTURE_SECONDS: int(300),
  TS_MAX_AGE_DAYS: int(30),
  RETRY_AFTER_SECONDS: int(5, 1),

  API_KEYS: list(""),
  KEY_CACHE_SECONDS: int(5, 0),
  RATE_LIMIT_PER_SECOND: int(1000, 1),
  RATE_LIMIT_BURST: z.coerce.number().int().min(1).optional(),
  CORS_ORIGINS: list("").pipe(
    z.array(z.string().regex(/^(\*|https?:\/\/[^/\s]+)$/, "an origin such as https://ops.example.com, or *")),
  ),

  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, "a postgres:// URL")
    .default("postgres://postgres@127.0.0.1:5432/sluice"),
  DATABASE_POOL_SIZE: int(10, 1),
  REDIS_URL: z
    .string()
    .regex(/^rediss?:\/\//, "a redis:// URL")
    .default("redis://127.0.0.1:6379/0"),
  REDIS_KEY_PREFIX: z.string().min(1).default("sluice"),
  RETENTION_DAYS: int(30, 1),
  ROLLUP_RETENTION_DAYS: int(400, 1),
  AGGREGATE_MAX_BUCKETS: int(5000, 1),
  /** A bucket counts as closed (cacheable) once it ended this long ago. */
  CACHE_CLOSED_AFTER_SECONDS: int(120, 0),
  CACHE_TTL_SECONDS: int(86_400, 1),

  /** Empty: no archive. */
  ARCHIVE_URL: z
    .string()
    .regex(
      /^(file:\/\/\/\S*|s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/\S*)?)$/,
      "file:///path or s3://bucket/prefix",
    )
    .optional(),
  ARCHIVE_MAX_FILE_BYTES: int(64 * 1024 * 1024, 1024),
  ARCHIVE_FLUSH_SECONDS: int(300, 1),
  ARCHIVE_COMPRESSION: z.enum(["zstd", "snappy"]).default("zstd"),
  /** Threads encoding Parquet files while the archive's consumer reads on. */
  ARCHIVE_ENCODER_THREADS: int(Math.min(4, navigator.hardwareConcurrency), 1),
  S3_ENDPOINT: z.url().optional(),
  S3_REGION: z.string().min(1).default("us-east-1"),
  AWS_ACCESS_KEY_ID: z.string().optional(),
  AWS_SECRET_ACCESS_KEY: z.string().optional(),
  AWS_SESSION_TOKEN: z.string().optional(),

  MQTT_URL: z
    .string()
    .regex(/^(mqtts?|wss?):\/\/[^\s]+$/, "an mqtt://, mqtts://, ws:// or wss:// URL")
    .default("mqtt://127.0.0.1:1883"),
  MQTT_USERNAME: z.string().optional(),
  MQTT_PASSWORD: z.string().optional(),
  MQTT_CLIENT_ID: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,40}$/)
    .default(
      `sluice-${hostname()
        .replace(/[^A-Za-z0-9._-]/g, "-")
        .slice(0, 32)}`,
    ),
  MQTT_TOPIC_PREFIX: z
    .string()
    .regex(/^[^#+\s]+$/, "no wildcards or spaces")
    .default("sluice/v1"),
  MQTT_SHARED_GROUP: z
    .string()
    .regex(/^[A-Za-z0-9._-]+$/)
    .default("sluice"),
  MQTT_CONNECTIONS: int(64),
  MQTT_SESSION_EXPIRY_SECONDS: int(604_800),
  MQTT_CA_FILE: z.string().optional(),
  MQTT_CERT_FILE: z.string().optional(),
  MQTT_KEY_FILE: z.string().optional(),
  MQTT_REJECT_UNAUTHORIZED: z.stringbool().default(true),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {}

/** Parses the environment once; a bad value stops the start with the variable's name. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const blanksRemoved = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ""));
  const result = configSchema.safeParse(blanksRemoved);
  if (result.success) {
    const config = result.data;
    if (config.ROLES.length === 0) {
      config.ROLES = ["gateway", "sink"];
      if (config.CONNECTORS_FILE) config.ROLES.push("connectors");
      if (config.ARCHIVE_URL) config.ROLES.push("archive");
    }
    if (config.ROLES.includes("archive") && !config.ARCHIVE_URL) {
      throw new ConfigError("invalid configuration:\n  ARCHIVE_URL: ROLES includes archive, which needs it");
    }
    // Each worker would need a spool of its own, and a source's records could then wait in one worker's
    // spool while its next ones went past them to Kafka through another.
    if (config.SPOOL_DIR && config.WORKERS > 1) {
      throw new ConfigError(
        "invalid configuration:\n  SPOOL_DIR: a spool belongs to one process; use WORKERS=1 with it",
      );
    }
    return config;
  }
  const lines = result.error.issues.map((issue) => `  ${issue.path.join(".")}: ${issue.message}`);
  throw new ConfigError(`invalid configuration:\n${lines.join("\n")}`);
}
