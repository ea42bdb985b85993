import { KafkaUnavailable, type OutgoingRecord, type Publisher } from "../kafka/publisher";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import { type CorruptEntry, decodeEntry } from "./entry";
import { laneOf, type SpooledLanes } from "./lanes";
import type { SpoolStore } from "./store";

const BATCH_RECORDS = 10_000;
const BATCH_BYTES = 4 * 1024 * 1024;
const MIN_BACKOFF_MS = 200;
const MAX_BACKOFF_MS = 2000;

export interface ForwarderDeps {
  store: SpoolStore;
  publisher: Pick<Publisher, "publish">;
  lanes: SpooledLanes;
  /** The dead letter standing in for an entry the spool cannot trust. */
  deadLetter: (entry: CorruptEntry) => OutgoingRecord;
  logger: Logger;
  metrics: Metrics;
  /** Kafka acknowledged a batch, or there was nothing to send. */
  onKafkaReachable: () => void;
}

/**
 * Sends the spool to Kafka oldest first, one batch at a time, and deletes a batch only once Kafka has
 * acknowledged all of it. The spool's order is arrival order, so each key's records reach Kafka in theirs.
 */
export function createForwarder(deps: ForwarderDeps) {
  const { store, publisher, lanes, logger, metrics } = deps;
  let stopped = false;
  let running: Promise<void> | undefined;
  let wake: (() => void) | undefined;
  const nap = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  function recordsOf(rows: ReturnType<SpoolStore["oldest"]>) {
    const corrupt: CorruptEntry[] = [];
    const records = rows.map((row) => {
      const entry = decodeEntry(row);
      if ("record" in entry) return entry.record;
      corrupt.push(entry.corrupt);
      return deps.deadLetter(entry.corrupt);
    });
    return { records, corrupt };
  }

  async function forward() {
    let failures = 0;
    while (!stopped) {
      const rows = store.oldest(BATCH_RECORDS, BATCH_BYTES);
      const last = rows.at(-1);
      if (!last) {
        if (!store.hasPending()) deps.onKafkaReachable();
        await nap(60_000);
        continue;
      }
      const { records, corrupt } = recordsOf(rows);
      try {
        await publisher.publish(records);
      } catch (error) {
        if (!(error instanceof KafkaUnavailable))
          logger.error("spool forwarding failed", { error: String(error) });
        else if (failures === 0) logger.warn("Kafka unavailable; the spool waits", { error: error.message });
        metrics.spoolForwardFailures.inc();
        await nap(Math.min(MIN_BACKOFF_MS * 2 ** failures++, MAX_BACKOFF_MS));
        continue;
      }
      // Closed while the batch was out: it is sent again after the restart (at least once).
      if (store.isClosed) return;
      store.deleteThrough(last.seq, rows);
      for (const row of rows) lanes.remove(laneOf(row.topic, row.key));
      metrics.spoolForwarded.inc(rows.length - corrupt.length);
      for (const entry of corrupt) {
        metrics.spoolCorruptEntries.inc();
        logger.error("spool entry dead-lettered", { seq: entry.seq, problem: entry.problem });
      }
      if (failures > 0) logger.info("Kafka back; forwarding the spool", { records: store.depth.records });
      failures = 0;
      deps.onKafkaReachable();
    }
  }

  return {
    start() {
      running ??= forward().catch((error: Error) =>
        logger.error("spool forwarder stopped", { error: error.message }),
      );
    },
    /** New records are in the spool. */
    wake: () => wake?.(),
    /** Stops after the batch in flight, waiting for it at most `timeoutMs`. */
    async stop(timeoutMs: number) {
      stopped = true;
      wake?.();
      if (running) await Promise.race([running, Bun.sleep(timeoutMs)]);
    },
  };
}
