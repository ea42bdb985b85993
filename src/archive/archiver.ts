import type { EachBatchPayload, Kafka } from "kafkajs";
import type { Config } from "../config";
import type { DeadLetter } from "../ingest/pipeline";
import { deadLetterTopic, kindTopic } from "../kafka/client";
import { type Kind, kinds } from "../kinds";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import type { Envelope } from "../record";
import type { Destination } from "./destination";
import { type ArchivedFile, deadLetterFolder, hourPath, objectKey, parseKey, replayedHeader } from "./layout";
import { deadLetterParquet, kindParquet } from "./parquet";
import { archivedRecord } from "./records";

/** What one topic is archived as: a kind's records, or the dead letters. */
type Target = { folder: string; kind: Kind } | { folder: string; kind?: undefined };

/** One partition's records read but not yet in a completed file, by hour. */
interface Pending {
  topic: string;
  partition: number;
  /** Per hour, its records and the offsets of the first and the last. */
  hours: Map<string, { rows: (Envelope | DeadLetter)[]; first: number; last: number }>;
  bytes: number;
  openedAt: number;
  /** The last offset read: the commit after the next flush is the one after it. */
  // Offsets as numbers: exact up to 2^53, and a BigInt per record cost the archive a twentieth of its time.
  lastOffset?: number;
  committed?: number;
  highWatermark?: number;
}

/**
 * The archive role: a consumer group of its own over every kind topic and the dead-letter topic, writing each
 * partition's records as Parquet files per hour of event time. A partition's offsets are committed only after
 * every file holding its records is complete, so a crash re-reads them; records a completed file already holds
 * (its name says which offsets) are skipped, so re-reading, or replaying from the start, writes no row twice.
 * While the storage is down the partition waits and retries; nothing is skipped.
 */
export function createArchiver(deps: {
  config: Config;
  kafka: Kafka;
  destination: Destination;
  logger: Logger;
  metrics: Metrics;
}) {
  const { config, destination, logger, metrics } = deps;
  const prefix = config.KAFKA_TOPIC_PREFIX;
  const targets = new Map<string, Target>([
    ...kinds.map((kind): [string, Target] => [kindTopic(prefix, kind.name), { folder: kind.name, kind }]),
    [deadLetterTopic(prefix), { folder: deadLetterFolder }],
  ]);
  const consumer = deps.kafka.consumer({
    groupId: `${prefix}-archive`,
    sessionTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
    rebalanceTimeout: config.KAFKA_SESSION_TIMEOUT_MS,
    heartbeatInterval: Math.min(3000, config.KAFKA_SESSION_TIMEOUT_MS / 3),
    maxWaitTimeInMs: 500,
    maxBytesPerPartition: 8 * 1024 * 1024,
    retry: { retries: 10, initialRetryTime: 300, maxRetryTime: 5000 },
  });
  const stats = { files: 0, rows: 0, skipped: 0, uploadFailures: 0 };
  const pending = new Map<string, Pending>();
  const locks = new Map<string, Promise<unknown>>();
  /** Per `<folder>/<hour>`, the offsets completed files hold, by partition: the listing, or its promise. */
  const archived = new Map<string, ArchivedFile[] | Promise<ArchivedFile[]>>();
  let heartbeat: () => Promise<void> = async () => {};
  let stopping = false;

  /** Runs work for one partition after the work queued before it. */
  function withSlot<T>(slot: string, work: () => Promise<T>): Promise<T> {
    const done = (locks.get(slot) ?? Promise.resolve()).then(work);
    const settled = done.catch(() => {});
    locks.set(slot, settled);
    void settled.then(() => locks.get(slot) === settled && locks.delete(slot));
    return done;
  }

  function filesOf(folder: string, hour: string) {
    const key = `${folder}/${hour}`;
    let files = archived.get(key);
    if (!files) {
      if (archived.size > 10_000) archived.clear();
      const listing = () => destination.list(`${key}/`);
      const listed = retrying(folder, `list ${key}/`, listing).then((keys) => {
        const parsed = keys.flatMap((name) => parseKey(name) ?? []);
        if (archived.get(key) === listed) archived.set(key, parsed);
        return parsed;
      });
      listed.catch(() => archived.delete(key));
      archived.set(key, listed);
      files = listed;
    }
    return files;
  }

  /** Places each record of the batch; it waits only for an hour whose files it has not listed yet. */
  async function read(target: Target, state: Pending, partition: number, batch: EachBatchPayload["batch"]) {
    for (const message of batch.messages) {
      const offset = Number(message.offset);
      if (state.lastOffset !== undefined && offset <= state.lastOffset) continue;
      // A record replayed from the archive is in it already.
      const replayed = Boolean(message.headers?.[replayedHeader]);
      const record = replayed ? undefined : archivedRecord(target.kind, message.value?.toString() ?? "");
      if (!record && !replayed) {
        logger.error("archive skipped a record it cannot read", {
          topic: batch.topic,
          offset: message.offset,
        });
      }
      if (record) {
        const hour = hourPath(record.time);
        const known = filesOf(target.folder, hour);
        const files = Array.isArray(known) ? known : await known;
        const done = files.some(
          (file) => file.partition === partition && file.first <= offset && offset <= file.last,
        );
        if (done) stats.skipped++;
        else place(state, hour, offset, record.row, message.value?.length ?? 0);
      } else stats.skipped++;
      state.lastOffset = offset;
    }
    if (batch.highWatermark) state.highWatermark = Number(batch.highWatermark);
    setLag(state);
  }

  /** Records of the partition not yet in a completed file: not read yet, or read and waiting for their file. */
  function setLag(state: Pending) {
    if (state.highWatermark === undefined || state.lastOffset === undefined) return;
    let waiting = 0;
    for (const bucket of state.hours.values()) waiting += bucket.rows.length;
    const lag = Math.max(0, state.highWatermark - state.lastOffset - 1) + waiting;
    metrics.archiveLag.set({ topic: state.topic, partition: String(state.partition) }, lag);
  }

  /** Puts a record in its hour's file. */
  function place(state: Pending, hour: string, offset: number, row: Envelope | DeadLetter, bytes: number) {
    let bucket = state.hours.get(hour);
    if (!bucket) {
      bucket = { rows: [], first: offset, last: offset };
      state.hours.set(hour, bucket);
    }
    bucket.rows.push(row);
    bucket.last = offset;
    state.bytes += bytes;
  }

  function encode(target: Target, rows: (Envelope | DeadLetter)[]) {
    const options = { compression: config.ARCHIVE_COMPRESSION };
    return target.kind
      ? kindParquet(target.kind, rows as Envelope[], options)
      : deadLetterParquet(rows as DeadLetter[], options);
  }

  /** Storage work, retried with backoff while the storage refuses, unless the archive is stopping. */
  async function retrying<T>(folder: string, what: string, work: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        stats.uploadFailures++;
        metrics.archiveUploadFailures.inc({ folder });
        if (attempt === 0 || attempt % 10 === 0) {
          logger.warn("archive storage failed; retrying", { what, error: (error as Error).message });
        }
        if (stopping) throw error;
        await heartbeat().catch(() => {});
        await Bun.sleep(Math.min(500 * 2 ** attempt, 15_000));
      }
    }
  }

  /** Completes a file per hour the partition has records of, then commits the offsets they hold. */
  async function flush(topic: string, partition: number) {
    const target = targets.get(topic);
    const state = pending.get(`${topic}:${partition}`);
    if (!target || !state || state.lastOffset === undefined) return;
    for (const [hour, bucket] of state.hours) {
      const key = objectKey(target.folder, hour, partition, bucket.first, bucket.last);
      const bytes = encode(target, bucket.rows);
      await retrying(target.folder, key, () => destination.put(key, bytes));
      const file = parseKey(key);
      if (file) (await filesOf(target.folder, hour)).push(file);
      state.hours.delete(hour);
      stats.files++;
      stats.rows += bucket.rows.length;
      metrics.archiveFiles.inc({ folder: target.folder });
      metrics.archiveBytes.inc({ folder: target.folder }, bytes.length);
      metrics.archiveRows.inc({ folder: target.folder }, bucket.rows.length);
    }
    state.bytes = 0;
    state.openedAt = performance.now();
    const next = state.lastOffset + 1;
    if (state.committed !== next) {
      await consumer.commitOffsets([{ topic, partition, offset: String(next) }]);
      state.committed = next;
    }
    setLag(state);
  }

  /** Whether a partition has records or offsets to complete, and it is time (enough of them, or old enough). */
  const due = (state: Pending) =>
    (state.hours.size > 0 || (state.lastOffset !== undefined && state.committed !== state.lastOffset + 1)) &&
    (state.bytes >= config.ARCHIVE_MAX_FILE_BYTES ||
      performance.now() - state.openedAt >= config.ARCHIVE_FLUSH_SECONDS * 1000);

  async function handleBatch(payload: EachBatchPayload) {
    const { batch } = payload;
    const target = targets.get(batch.topic);
    if (stopping || !target || batch.messages.length === 0) return;
    heartbeat = payload.heartbeat;
    const slot = `${batch.topic}:${batch.partition}`;
    await withSlot(slot, async () => {
      let state = pending.get(slot);
      if (!state) {
        state = {
          topic: batch.topic,
          partition: batch.partition,
          hours: new Map(),
          bytes: 0,
          openedAt: performance.now(),
        };
        pending.set(slot, state);
      }
      await read(target, state, batch.partition, batch);
      if (due(state)) await flush(batch.topic, batch.partition);
    });
  }

  /** Flushes partitions whose oldest unwritten record has waited ARCHIVE_FLUSH_SECONDS, though no batch comes. */
  const timer = setInterval(() => {
    for (const [slot, state] of pending) {
      if (stopping || locks.has(slot) || !due(state)) continue;
      withSlot(slot, () => flush(state.topic, state.partition)).catch((error: Error) =>
        logger.error("archive flush failed", { slot, error: error.message }),
      );
    }
  }, 1000);

  return {
    stats,
    consumer,
    async start() {
      // Partitions this member no longer owns are read again by their new owner: what is held of them goes.
      consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
        const owned = new Set(
          Object.entries(payload.memberAssignment).flatMap(([topic, partitions]) =>
            partitions.map((partition) => `${topic}:${partition}`),
          ),
        );
        for (const [slot, state] of pending) {
          if (owned.has(slot)) continue;
          pending.delete(slot);
          metrics.archiveLag.remove({ topic: state.topic, partition: String(state.partition) });
        }
        // Another member may have completed files of a partition while this one did not own it.
        archived.clear();
      });
      await consumer.connect();
      await consumer.subscribe({ topics: [...targets.keys()], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        partitionsConsumedConcurrently: 4,
        eachBatch: handleBatch,
      });
    },
    /** Completes the files in hand (within the timeout) and leaves the group; the rest is read again later. */
    async stop(timeoutMs = 8000) {
      if (stopping) return;
      clearInterval(timer);
      const flushes = [...pending].map(([slot, state]) =>
        withSlot(slot, () => flush(state.topic, state.partition)),
      );
      stopping = true;
      await Promise.race([Promise.allSettled(flushes), Bun.sleep(timeoutMs)]);
      await consumer.disconnect();
    },
  };
}

export type Archiver = ReturnType<typeof createArchiver>;
