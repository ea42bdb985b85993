import type { Config } from "../config";
import { KafkaUnavailable, type OutgoingRecord, type Publisher } from "../kafka/publisher";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import type { CorruptEntry } from "./entry";
import { createForwarder } from "./forwarder";
import { laneOf, SpooledLanes } from "./lanes";
import { SpoolRefused, SpoolStore } from "./store";

export interface SpoolDeps {
  config: Pick<Config, "SPOOL_MAX_BYTES" | "SPOOL_MIN_FREE_BYTES" | "SPOOL_SYNC"> & { SPOOL_DIR: string };
  publisher: Pick<Publisher, "publish">;
  logger: Logger;
  metrics: Metrics;
  /** The dead letter standing in for a spool entry that cannot be trusted. */
  deadLetter: (entry: CorruptEntry) => OutgoingRecord;
}

/**
 * The Publisher's shape with the spool behind it: records Kafka does not acknowledge within
 * KAFKA_ACK_TIMEOUT_MS are committed to the spool instead, and `publish` says how many were. A forwarder
 * sends the spool on once Kafka is back. A call goes to Kafka or to the spool as a whole.
 */
export function createSpoolingPublisher(deps: SpoolDeps) {
  const { config, publisher, logger, metrics } = deps;
  const store = new SpoolStore({
    dir: config.SPOOL_DIR,
    maxBytes: config.SPOOL_MAX_BYTES,
    minFreeBytes: config.SPOOL_MIN_FREE_BYTES,
    synchronous: config.SPOOL_SYNC,
    logger,
  });
  const lanes = new SpooledLanes();
  for (const { topic, key, records } of store.countsByKey()) lanes.add(laneOf(topic, key), records);
  if (store.depth.records > 0)
    logger.info("spool found records to forward", { records: store.depth.records });
  metrics.spool.depth = store.depth;
  metrics.spool.maxBytes = config.SPOOL_MAX_BYTES;

  // Set when Kafka did not acknowledge, cleared when the forwarder gets through: meanwhile no caller waits
  // KAFKA_ACK_TIMEOUT_MS for a Kafka that is not there.
  let kafkaDown = false;
  const forwarder = createForwarder({
    store,
    publisher,
    lanes,
    deadLetter: deps.deadLetter,
    logger,
    metrics,
    onKafkaReachable: () => {
      kafkaDown = false;
    },
  });

  // Direct sends not yet settled: a record that skips Kafka waits for them, so that one of them that fails
  // is spooled ahead of it, as it arrived ahead of it.
  const sending = new Set<Promise<void>>();

  /** Commits records whose keys the spool counts already. */
  async function commit(records: OutgoingRecord[]) {
    try {
      await store.append(records);
    } catch (error) {
      lanes.removeRecords(records);
      const reason = error instanceof SpoolRefused ? error.reason : "write-failed";
      metrics.spoolRefused.inc({ reason }, records.length);
      throw error;
    }
    metrics.spoolSpooled.inc(records.length);
    forwarder.wake();
    return { spooled: records.length };
  }

  async function send(records: OutgoingRecord[]) {
    const sent = publisher.publish(records);
    sending.add(sent);
    sent.then(
      () => sending.delete(sent),
      () => sending.delete(sent),
    );
    try {
      await sent;
      return { spooled: 0 };
    } catch (error) {
      if (!(error instanceof KafkaUnavailable) || store.isClosed) throw error;
      if (!kafkaDown) logger.warn("Kafka did not acknowledge; spooling", { error: error.message });
      kafkaDown = true;
      lanes.addRecords(records);
      return commit(records);
    }
  }

  return {
    /** Resolves once Kafka (spooled: 0) or the spool has every record; rejects with KafkaUnavailable otherwise. */
    async publish(records: OutgoingRecord[]): Promise<{ spooled: number }> {
      if (records.length === 0) return { spooled: 0 };
      if (!kafkaDown && !lanes.holdsAny(records)) return send(records);
      // Counted at once, so that a record arriving meanwhile for the same key queues behind these.
      lanes.addRecords(records);
      if (sending.size > 0) await Promise.allSettled([...sending]);
      return commit(records);
    },
    /** Starts forwarding (once the topics exist). */
    start: () => forwarder.start(),
    /** Readiness: fails while the spool has no room. */
    async check() {
      const problem = store.roomProblem();
      if (problem) throw new Error(problem);
    },
    details: () => ({
      records: store.depth.records,
      bytes: store.depth.bytes,
      maxBytes: config.SPOOL_MAX_BYTES,
      oldestAgeSeconds: store.depth.oldestAt === undefined ? 0 : (Date.now() - store.depth.oldestAt) / 1000,
    }),
    /** Lets the batch being forwarded finish (briefly), commits what is pending and closes the file. */
    async close() {
      await forwarder.stop(2000);
      store.close();
    },
  };
}
