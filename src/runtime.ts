import { createApp } from "./app";
import type { Config } from "./config";
import { createIngest } from "./ingest/pipeline";
import { createKafka, ensureTopics } from "./kafka/client";
import { Publisher } from "./kafka/publisher";
import { createLogger, type Logger } from "./log";
import { createMqttIngress } from "./mqtt/ingress";
import type { Probe } from "./routes/health";

/** Builds every client once and wires them into the app; `close` releases them in order. */
export function createRuntime(config: Config, logger: Logger = createLogger(config.LOG_LEVEL)) {
  const kafka = createKafka(config, logger);
  const admin = kafka.admin();
  const publisher = new Publisher(kafka, {
    ackTimeoutMs: config.KAFKA_ACK_TIMEOUT_MS,
    maxBatchBytes: config.KAFKA_MAX_BATCH_BYTES,
    logger,
  });
  const ingest = createIngest({ config, publisher, logger });

  let topicsReady = false;
  let closed = false;
  const prepareTopics = async () => {
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
  };
  const ready = prepareTopics();

  const probes: Probe[] = [
    {
      name: "kafka",
      critical: true,
      check: async () => {
        if (!topicsReady) throw new Error("topics not yet created");
        await admin.describeCluster();
      },
    },
  ];
  const mqtt =
    config.ROLES.includes("gateway") && config.MQTT_CONNECTIONS > 0
      ? createMqttIngress({ config, ingest, publisher, logger })
      : undefined;
  if (mqtt) probes.push({ name: "mqtt", critical: true, check: mqtt.check });
  const app = createApp({ config, logger, ingest, probes });

  return {
    app,
    config,
    logger,
    publisher,
    ingest,
    mqtt,
    /** Resolves once the topics exist. */
    ready,
    async close() {
      closed = true;
      await mqtt?.close();
      await publisher.close();
      await admin.disconnect().catch(() => {});
    },
  };
}

export type Runtime = ReturnType<typeof createRuntime>;
