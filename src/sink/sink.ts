import type { EachBatchPayload, Kafka } from "kafkajs";
import type { Cache } from "../cache/redis";
import type { Config } from "../config";
import { type Db, databaseError, isUnavailable } from "../db/client";
import { writeBatch } from "../db/store";
import { kindTopic, withTimeout } from "../kafka/client";
import { type Kind, kinds } from "../kinds";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import { envelopeSchema, type StoredRecord } from "../record";
import { createQualityCheck } from "./quality";

export interface SinkHooks {
  /** Runs after a batch is stored and before its offsets are committed (tests crash the sink here). */
  afterWrite?: (kind: Kind, inserted: number) => Promise<void> | void;
}

/**
 * The sink role: a consumer group reading the kind topics. Each batch is written in one transaction
 * (idempotent on id, roll-ups from the rows actually inserted) and only then are its offsets committed,
 * so a crash anywhere replays the batch and the replay changes nothing. Each partition's next batch is
 * fetched and decoded while one is being written. While PostgreSQL is down the batch is retried with
 * backoff, keeping the group membership alive; nothing is skipped.
 */
export function createSink(deps: {
  config: Config;
  kafka: Kafka;
  db: Db;
  cache: Cache;
  logger: Logger;
  metrics: Metrics;
  hooks?: SinkHooks;
}) {
  const { config, db, cache, logger, metrics, hooks } = deps;
  const byTopic = new Map(kinds.map((kind) => [kindTopic(config.KAFKA_TOPIC_PREFIX, kind.name), kind]));
  const consumer = deps.kafka.consumer({
    groupId: `${config.KAFKA_TOPIC_PREFIX}-sink`,
    sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
    heartbeatInterval: Math.min(3000, config.KAFKA_SESSION_TIMEOUT_MS / 3),
    maxWaitTimeInMs: 200,
    maxBytesPerPartition: 4 * 1024 * 1024,
    retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 5000 },
  });
  const flagsOf = createQualityCheck();
  const commitTimeoutMs = config.KAFKA_SESSION_TIMEOUT_MS / 3;
  const stats = {
    batches: 0,
    records: 0,
    inserted: 0,
    skipped: 0,
    writeRetries: 0,
    lastWriteMs: 0,
    /** performance.now() when the first batch arrived. */
    firstBatchAt: 0,
  };

  /** Kinds whose cached answers stored records have made stale, until Redis has been told. */
  const unbumped = new Set<string>();
  let stopping = false;
  const active = new Set<Promise<unknown>>();
  /**
   * Per partition, the last batch handed to the writer, and the attempt it belongs to: when a batch cannot be
   * stored, the batches queued behind it are dropped and the partition is read again from that batch.
   */
  const chains = new Map<string, { tail: Promise<boolean>; attempt: number }>();

  function track<T>(work: Promise<T>) {
    active.add(work);
    return work.finally(() => active.delete(work));
  }

  function readRecords(kind: Kind, batch: EachBatchPayload["batch"]) {
    const records: StoredRecord[] = [];
    for (const message of batch.messages) {
      let value: unknown;
      try {
        value = JSON.parse(message.value?.toString() ?? "");
      } catch {}
      const parsed = envelopeSchema.safeParse(value);
      if (parsed.success) records.push({ ...parsed.data, flags: flagsOf(kind, parsed.data) });
      else {
        stats.skipped++;
        logger.error("skipped a record that is not a Sluice envelope", {
          topic: batch.topic,
          offset: message.offset,
        });
      }
    }
    return records;
  }

  /** Writes a batch (retrying while PostgreSQL is down), then commits its offsets. False when it gave up. */
  async function store(kind: Kind, records: StoredRecord[], payload: EachBatchPayload): Promise<boolean> {
    const { batch, heartbeat, isRunning } = payload;
    let inserted = 0;
    for (let attempt = 0; ; attempt++) {
      if (stopping || !isRunning()) return false;
      const started = performance.now();
      try {
        inserted = await writeBatch(db, kind, records);
        stats.lastWriteMs = performance.now() - started;
        metrics.sinkTransactionSeconds.observe(stats.lastWriteMs / 1000);
        break;
      } catch (error) {
        stats.writeRetries++;
        const message = databaseError(error);
        if (attempt === 0 || attempt % 20 === 0) {
          logger[isUnavailable(error) ? "warn" : "error"]("sink write failed; retrying", {
            kind: kind.name,
            error: message,
          });
        }
        await heartbeat().catch(() => {});
        await Bun.sleep(Math.min(200 * 2 ** attempt, 5000));
      }
    }
    await hooks?.afterWrite?.(kind, inserted);
    // Cached answers these records made stale are invalidated before anyone is told the records are stored.
    const cacheable = Date.now() - config.CACHE_CLOSED_AFTER_SECONDS * 1000;
    if (records.some((record) => Date.parse(record.ts) < cacheable)) unbumped.add(kind.name);
    // A bump lost while Redis was unreachable is tried again with every batch until Redis takes it.
    for (const name of unbumped) if ((await cache.bumpGeneration(name)) !== undefined) unbumped.delete(name);
    await cache.setLatest(kind.name, records);
    // kafkajs retries a failed commit for up to a minute inside this batch, and a member whose batch does not
    // return cannot rejoin the group the failure asked for. Commits are cumulative: the next batch's covers
    // this one, and records read again after a crash are stored once.
    const offset = String(BigInt(batch.lastOffset()) + 1n);
    await withTimeout(
      consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset }]),
      commitTimeoutMs,
      `no answer within ${commitTimeoutMs} ms`,
    ).catch((error: Error) =>
      logger.warn("sink could not commit offsets; the next batch's commit covers them", {
        topic: batch.topic,
        partition: batch.partition,
        offset,
        error: error.message,
      }),
    );
    stats.batches++;
    stats.records += records.length;
    stats.inserted += inserted;
    metrics.sinkRows.inc({ kind: kind.name }, inserted);
    const lag = Number(BigInt(batch.highWatermark) - BigInt(batch.lastOffset()) - 1n);
    metrics.sinkLag.set({ topic: batch.topic, partition: String(batch.partition) }, Math.max(0, lag));
    await heartbeat().catch(() => {});
    return true;
  }

  /**
   * Hands a batch to its partition's writer and returns once the batch before it is stored, so that Kafka
   * fetches the next batch while this one is written. Offsets are committed in order, each only after its
   * batch and every one before it are stored; a batch that cannot be (an error, or the consumer stopped)
   * drops those queued behind it and the partition is read again from it, so nothing is skipped.
   */
  async function handleBatch(payload: EachBatchPayload) {
    const { batch } = payload;
    const kind = byTopic.get(batch.topic);
    if (stopping || !kind || batch.messages.length === 0) return;
    stats.firstBatchAt ||= performance.now();
    const records = readRecords(kind, batch);
    const slot = `${batch.topic}:${batch.partition}`;
    const { tail: previous, attempt } = chains.get(slot) ?? { tail: Promise.resolve(true), attempt: 0 };
    const stored = previous.then(async (before) => {
      if (!before || chains.get(slot)?.attempt !== attempt) return false;
      try {
        if (await store(kind, records, payload)) return true;
      } catch (error) {
        logger.error("sink could not store a batch; reading it again", {
          topic: batch.topic,
          partition: batch.partition,
          error: databaseError(error),
        });
      }
      if (!stopping) {
        chains.set(slot, { tail: Promise.resolve(true), attempt: attempt + 1 });
        try {
          consumer.seek({
            topic: batch.topic,
            partition: batch.partition,
            offset: batch.firstOffset() ?? "0",
          });
        } catch {} // not running: it reads from the committed offsets when it starts again
      }
      return false;
    });
    chains.set(slot, { tail: stored, attempt });
    void track(stored);
    payload.resolveOffset(batch.lastOffset());
    await previous;
  }

  return {
    stats,
    consumer,
    async start() {
      await consumer.connect();
      await consumer.subscribe({ topics: [...byTopic.keys()], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 3,
        eachBatch: (payload) => track(handleBatch(payload)),
      });
    },
    /**
     * Takes no new batch, lets the one being written finish and commit its offsets (kafkajs's disconnect
     * alone does not wait for it), then leaves the group. Anything not committed is replayed by the next owner.
     */
    async stop(timeoutMs = 8000) {
      stopping = true;
      await Promise.race([Promise.allSettled([...active]), Bun.sleep(timeoutMs)]);
      await consumer.disconnect();
    },
  };
}

export type Sink = ReturnType<typeof createSink>;
