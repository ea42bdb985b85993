import { sql } from "drizzle-orm";
import { createApp } from "./app";
import { createArchiver } from "./archive/archiver";
import { createDestination } from "./archive/destination";
import { createAuthenticator } from "./auth/keys";
import { createCache } from "./cache/redis";
import type { Config } from "./config";
import type { ConnectorConfig } from "./connectors/config";
import { createConnectors } from "./connectors/runner";
import { createDb } from "./db/client";
import { createIngest } from "./ingest/pipeline";
import { consumerRequestTimeout, createKafka, ensureTopics } from "./kafka/client";
import { Publisher } from "./kafka/publisher";
import { findKind } from "./kinds";
import { createLogger, type Logger } from "./log";
import { createMetrics } from "./metrics";
import { createMqttIngress } from "./mqtt/ingress";
import { mqttScope, sessionRegistry } from "./mqtt/sessions";
import { createAggregates } from "./query/aggregates";
import { createRecords } from "./query/records";
import { viaValues } from "./record";
import type { Probe } from "./routes/health";
import { startRetention } from "./sink/retention";
import { createSink, type SinkHooks } from "./sink/sink";
import { createSpoolingPublisher } from "./spool/spool";

/** Builds every client once, wires them into the roles named in ROLES; `close` releases them in order. */
export function createRuntime(
  config: Config,
  logger: Logger = createLogger(config.LOG_LEVEL),
  options: { sinkHooks?: SinkHooks; connectors?: ConnectorConfig[] } = {},
) {
  const roles = new Set(config.ROLES);
  const kafka = createKafka(config, logger);
  const consumerKafka = createKafka(config, logger, consumerRequestTimeout(config));
  const admin = kafka.admin();
  const metrics = createMetrics();
  const publisher = new Publisher(kafka, {
    ackTimeoutMs: config.KAFKA_ACK_TIMEOUT_MS,
    maxBatchBytes: config.KAFKA_MAX_BATCH_BYTES,
    logger,
    metrics,
  });
  const { SPOOL_DIR } = config;
  // Only the roles that take records in spool them; a sink-only process leaves the directory to the gateway.
  const spool =
    SPOOL_DIR && (roles.has("gateway") || roles.has("connectors"))
      ? createSpoolingPublisher({
          config: { ...config, SPOOL_DIR },
          publisher,
          logger,
          metrics,
          deadLetter: (entry) =>
            ingest.refusal(findKind(entry.kind ?? ""), "corrupt-spool-entry", entry.problem, entry.raw, {
              via: viaValues.find((via) => via === entry.transport) ?? "http",
              sourceId: entry.key ?? undefined,
              origin: `spool entry ${entry.seq}`,
            }),
        })
      : undefined;
  const ingest = createIngest({ config, publisher: spool ?? publisher, logger });
  const { db, client: postgres } = createDb(config.DATABASE_URL, config.DATABASE_POOL_SIZE);
  const cache = createCache(config.REDIS_URL, config.REDIS_KEY_PREFIX, logger, metrics);
  const records = createRecords({ db, cache });
  const aggregates = createAggregates({ db, cache, config });
  const sink = roles.has("sink")
    ? createSink({ config, kafka: consumerKafka, db, cache, logger, metrics, hooks: options.sinkHooks })
    : undefined;
  const archiver = roles.has("archive")
    ? createArchiver({
        config,
        kafka: consumerKafka,
        destination: createDestination(config),
        logger,
        metrics,
      })
    : undefined;
  const retention = roles.has("sink") ? startRetention({ config, db, logger }) : undefined;
  const connectors = roles.has("connectors")
    ? createConnectors({
        connectors: options.connectors ?? [],
        db,
        databaseUrl: config.DATABASE_URL,
        ingest,
        logger,
        metrics,
      })
    : undefined;
  const mqtt =
    roles.has("gateway") && config.MQTT_CONNECTIONS > 0
      ? createMqttIngress({
          config,
          ingest,
          logger,
          metrics,
          sessions: sessionRegistry(config.DATABASE_URL, postgres, mqttScope(config)),
        })
      : undefined;

  let topicsReady = false;
  let closed = false;
  const prepare = async () => {
    while (!topicsReady && !closed) {
      try {
        await admin.connect();
        const created = await ensureTopics(admin, config);
        if (created.length > 0) logger.info("created Kafka topics", { topics: created });
        topicsReady = true;
      } catch (error) {
        logger.warn("Kafka not ready, retrying", { error: (error as Error).message });
        await Bun.sleep(2000);
      }
    }
    // The spool first, then the rest: records spooled before a restart are on their way before new work starts.
    if (spool && !closed) spool.start();
    // Connectors need the topics, not the sink, whose joining its group can take a rebalance.
    if (connectors && !closed) connectors.start();
    // Right after the topics are created, a broker of a cluster may not know them yet: joining is tried again.
    for (const role of [archiver, sink]) {
      while (role && !closed) {
        try {
          await role.start();
          break;
        } catch (error) {
          logger.warn("could not join the consumer group yet, retrying", { error: (error as Error).message });
          await role.consumer.disconnect().catch(() => {});
          await Bun.sleep(2000);
        }
      }
    }
  };
  const ready = prepare();

  const probes: Probe[] = [
    {
      name: "kafka",
      // With a spool, a gateway without Kafka still takes records: it is ready while the spool has room.
      critical: !spool,
      check: async () => {
        if (!topicsReady) throw new Error("topics not yet created");
        await admin.describeCluster();
      },
    },
  ];
  // An archive-only process uses neither.
  if ([...roles].some((role) => role !== "archive")) {
    probes.push(
      { name: "postgres", critical: true, check: () => db.execute(sql`select 1`) },
      { name: "redis", critical: false, check: () => cache.ping() },
    );
  }
  if (mqtt) probes.push({ name: "mqtt", critical: true, check: mqtt.check });
  if (spool) probes.push({ name: "spool", critical: true, check: spool.check, details: spool.details });
  const authenticate = createAuthenticator({
    db,
    staticKeys: config.API_KEYS,
    cacheMs: config.KEY_CACHE_SECONDS * 1000,
  });
  const app = createApp({
    config,
    logger,
    ingest,
    records,
    aggregates,
    connectors,
    authenticate,
    cache,
    metrics,
    probes,
  });

  return {
    app,
    config,
    logger,
    publisher,
    spool,
    ingest,
    mqtt,
    sink,
    archiver,
    connectors,
    metrics,
    db,
    cache,
    retention,
    /** Resolves once the topics exist and the sink and the archive have joined their groups. */
    ready,
    async close() {
      closed = true;
      retention?.stop();
      await connectors?.stop();
      await mqtt?.close();
      await sink?.stop();
      await archiver?.stop();
      await spool?.close();
      await publisher.close();
      await admin.disconnect().catch(() => {});
      await cache.close();
      await postgres.end({ timeout: 5 });
    },
  };
}

export type Runtime = ReturnType<typeof createRuntime>;
