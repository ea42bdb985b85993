import { readFileSync } from "node:fs";
import mqtt, { type IClientOptions } from "mqtt";
import type { Config } from "../config";
import { decodePayload, Refused } from "../ingest/decode";
import type { Ingest } from "../ingest/pipeline";
import { KafkaUnavailable, type OutgoingRecord } from "../kafka/publisher";
import { findKind, type Kind } from "../kinds";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import { createSessionPool, type Session, type SessionRegistry } from "./sessions";

const MIN_RECONNECT_MS = 1000;
const MAX_RECONNECT_MS = 30_000;

/** `<prefix>/<kind>/<sourceId>` into its parts, or why it is not such a topic. */
export function parseTopic(
  topic: string,
  prefix: string,
): { kind: Kind; sourceId: string } | { error: string } {
  const rest = topic.startsWith(`${prefix}/`) ? topic.slice(prefix.length + 1).split("/") : [];
  const [kindName, sourceId] = rest;
  if (rest.length !== 2 || !kindName || !sourceId)
    return { error: `topic is not ${prefix}/<kind>/<sourceId>` };
  const kind = findKind(kindName);
  if (!kind) return { error: `unknown kind '${kindName}' in the topic` };
  return { kind, sourceId };
}

function clientOptions(config: Config, clientId: string): IClientOptions {
  const file = (path: string | undefined) => (path ? readFileSync(path) : undefined);
  return {
    clientId,
    username: config.MQTT_USERNAME,
    password: config.MQTT_PASSWORD,
    protocolVersion: 5,
    // A persistent session: what the broker has not had a PUBACK for is redelivered after a restart.
    clean: false,
    properties: { sessionExpiryInterval: config.MQTT_SESSION_EXPIRY_SECONDS, receiveMaximum: 100 },
    reconnectPeriod: MIN_RECONNECT_MS,
    connectTimeout: 10_000,
    resubscribe: false,
    ca: file(config.MQTT_CA_FILE),
    cert: file(config.MQTT_CERT_FILE),
    key: file(config.MQTT_KEY_FILE),
    rejectUnauthorized: config.MQTT_REJECT_UNAUTHORIZED,
  };
}

/**
 * The MQTT side of the gateway: a pool of connections in one shared subscription. A QoS 1 message is
 * acknowledged (PUBACK) only once its records, or its dead letter, are in Kafka (or committed to the spool);
 * while neither can take them the ack is withheld and the publish retried, and on shutdown the broker keeps
 * what was not acked. Sessions of gateways that are gone are taken over and drained (./sessions.ts).
 */
export function createMqttIngress(deps: {
  config: Config;
  ingest: Ingest;
  logger: Logger;
  metrics: Metrics;
  sessions?: SessionRegistry;
}) {
  const { config, ingest, logger, metrics } = deps;
  const prefix = config.MQTT_TOPIC_PREFIX;
  const subscription = `$share/${config.MQTT_SHARED_GROUP}/${prefix}/#`;
  const limits = { maxBodyBytes: config.MAX_BODY_BYTES, maxBatchItems: config.MAX_BATCH_ITEMS };
  const inFlight = new Set<Promise<unknown>>();
  let stopping = false;
  const stats = { received: 0, acknowledged: 0, deadLettered: 0, kafkaRetries: 0, spooled: 0 };

  /** What the message becomes in Kafka: its records and dead letters, or the dead letter of the whole message. */
  function toRecords(topic: string, payload: Buffer): OutgoingRecord[] {
    const target = parseTopic(topic, prefix);
    const options = { via: "mqtt" as const, origin: topic };
    if ("error" in target) {
      stats.deadLettered++;
      return [ingest.refusal(undefined, "unknown-kind", target.error, payload.toString("utf8"), options)];
    }
    const withSource = { ...options, sourceId: target.sourceId };
    try {
      const items = decodePayload(payload, "application/json", target.kind, limits);
      const prepared = ingest.prepare(target.kind, items, withSource);
      stats.deadLettered += prepared.rejections.length;
      return prepared.outgoing;
    } catch (error) {
      if (!(error instanceof Refused)) throw error;
      stats.deadLettered++;
      return [ingest.refusal(target.kind, error.reason, error.message, error.raw, withSource)];
    }
  }

  /** Resolves true once the message is in Kafka or the spool, false when it must stay unacknowledged (shutting down, QoS 0 lost). */
  async function deliver(topic: string, payload: Buffer, qos: number): Promise<boolean> {
    stats.received++;
    const records = toRecords(topic, payload);
    for (let attempt = 0; ; attempt++) {
      try {
        if ((await ingest.deliver(records)).spooled > 0) stats.spooled++;
        return true;
      } catch (error) {
        if (!(error instanceof KafkaUnavailable)) throw error;
        if (stopping || qos === 0) return false;
        stats.kafkaRetries++;
        if (attempt === 0)
          logger.warn("Kafka unavailable; holding the MQTT ack", { topic, error: error.message });
        await Bun.sleep(Math.min(250 * 2 ** attempt, 5000));
      }
    }
  }

  function track<T>(work: Promise<T>) {
    inFlight.add(work);
    work.finally(() => inFlight.delete(work)).catch(() => {});
    return work;
  }

  function countConnections() {
    const clients = pool.all();
    const connected = clients.filter((client) => client.connected).length;
    metrics.mqttConnections.set({ state: "connected" }, connected);
    metrics.mqttConnections.set({ state: "disconnected" }, clients.length - connected);
  }

  /** A connection of the pool; one taking over a gone gateway's session neither subscribes nor reconnects. */
  function open(clientId: string, takenOver: boolean): Session {
    // The connection keeps reading while messages wait for Kafka (mqtt.js is patched for that, up to the
    // receive maximum); their PUBACKs go out in the order the messages came, as MQTT requires.
    let previousAck = Promise.resolve();
    let unacknowledged = 0;
    let lastMessageAt = performance.now();
    const client = mqtt.connect(config.MQTT_URL, {
      ...clientOptions(config, clientId),
      ...(takenOver ? { reconnectPeriod: 0 } : {}),
      customHandleAcks: (topic, message, packet, done) => {
        // While stopping, leave new messages unacknowledged: the broker redelivers them after the restart.
        if (stopping) return;
        if (packet.dup) metrics.mqttRedelivered.inc();
        unacknowledged++;
        lastMessageAt = performance.now();
        const delivered = track(deliver(topic, message, packet.qos));
        const acked = previousAck
          .then(() => delivered)
          .then((inKafka) => {
            if (!inKafka) return;
            stats.acknowledged++;
            unacknowledged--;
            done(0);
          })
          .catch((error: Error) => logger.error("MQTT message failed", { topic, error: error.message }));
        previousAck = acked;
      },
    });
    client.on("message", (topic, message, packet) => {
      if (packet.qos !== 0) return;
      track(deliver(topic, message, 0)).catch((error: Error) =>
        logger.error("MQTT message failed", { topic, error: error.message }),
      );
    });
    client.on("connect", (connack) => {
      client.options.reconnectPeriod = takenOver ? 0 : MIN_RECONNECT_MS;
      countConnections();
      logger.info("MQTT connected", { clientId, sessionPresent: connack.sessionPresent });
      if (takenOver) return;
      client.subscribe(subscription, { qos: 1 }, (error) => {
        if (error) logger.error("MQTT subscribe failed", { subscription, error: error.message });
      });
    });
    client.on("close", () => {
      countConnections();
      if (takenOver) return;
      const period = client.options.reconnectPeriod ?? MIN_RECONNECT_MS;
      client.options.reconnectPeriod = Math.min(period * 2, MAX_RECONNECT_MS);
    });
    client.on("error", (error) => logger.warn("MQTT error", { clientId, error: error.message }));
    return { client, unacknowledged: () => unacknowledged, lastMessageAt: () => lastMessageAt };
  }

  const pool = createSessionPool({
    clientIds: Array.from({ length: config.MQTT_CONNECTIONS }, (_, i) => `${config.MQTT_CLIENT_ID}-${i}`),
    registry: deps.sessions,
    open,
    subscription,
    logger,
    metrics,
  });

  return {
    stats,
    subscription,
    connected: () => pool.own().filter((client) => client.connected).length === pool.size,
    /** Readiness: every connection of the pool is up. */
    async check() {
      const down = pool.size - pool.own().filter((client) => client.connected).length;
      if (down > 0) throw new Error(`${down} of ${pool.size} MQTT connections down`);
    },
    /** Stops taking messages, lets those being written to Kafka finish (and be acked), then disconnects. */
    async close(timeoutMs = 5000) {
      stopping = true;
      await Promise.race([Promise.allSettled([...inFlight]), Bun.sleep(timeoutMs)]);
      await pool.close((client) =>
        Promise.race([client.endAsync(false), Bun.sleep(1000).then(() => client.endAsync(true))])
          .then(() => {})
          .catch(() => {}),
      );
    },
  };
}

export type MqttIngress = ReturnType<typeof createMqttIngress>;
