import type { EachBatchPayload, Kafka } from "kafkajs";
import type { Config } from "../config";
import { deadLetterTopic, kindTopic } from "../kafka/client";
import { type Kind, kinds } from "../kinds";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import type { Destination } from "./destination";
import { type Bucket, CHUNK_BYTES, createEncoderPool, RecordBytes } from "./encoder";
import { deadLetterFolder, hourPath, objectKey, parseKey, replayedHeader } from "./layout";
import { createListings } from "./listings";
import { archivedRecord } from "./records";
import { createSlots } from "./slots";

/** What one topic is archived as: a kind's records, or the dead letters. */
type Target = { folder: string; kind: Kind } | { folder: string; kind?: undefined };

/** One partition's records read but not yet in a completed file, by hour. */
interface Pending {
  topic: string;
  partition: number;
  hours: Map<string, Bucket>;
  /** Files being completed (at most one flush at a time), and those of a flush that failed, to write again. */
  writing: [string, Bucket][];
  flushing?: Promise<void>;
  bytes: number;
  openedAt: number;
  /** The last offset read (numbers: exact up to 2^53, and a BigInt per record cost a twentieth of the time). */
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
  /** lastFileAt: performance.now() when the last file was complete. */
  const stats = { files: 0, rows: 0, skipped: 0, uploadFailures: 0, lastFileAt: 0 };
  const encoders = createEncoderPool(config.ARCHIVE_ENCODER_THREADS);
  const open = (target: Target) => encoders.open(target.kind?.name, config.ARCHIVE_COMPRESSION);
  const pending = new Map<string, Pending>();
  const slots = createSlots();
  const listings = createListings((folder, prefix) =>
    retrying(folder, `list ${prefix}`, () => destination.list(prefix)),
  );
  let heartbeat: () => Promise<void> = async () => {};
  let stopping = false;

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
        const known = listings.filesOf(target.folder, hour);
        const files = Array.isArray(known) ? known : await known;
        const done = files.some(
          (file) => file.partition === partition && file.first <= offset && offset <= file.last,
        );
        if (done) stats.skipped++;
        else if (message.value) place(target, state, hour, offset, message.value);
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
    for (const [, bucket] of [...state.hours, ...state.writing]) waiting += bucket.records.count;
    const lag = Math.max(0, state.highWatermark - state.lastOffset - 1) + waiting;
    metrics.archiveLag.set({ topic: state.topic, partition: String(state.partition) }, lag);
  }

  /** Puts a record, as Kafka holds it, in its hour's file. */
  function place(target: Target, state: Pending, hour: string, offset: number, value: Uint8Array) {
    let bucket = state.hours.get(hour);
    if (!bucket) {
      bucket = { records: new RecordBytes(), first: offset, last: offset };
      state.hours.set(hour, bucket);
    }
    bucket.records.push(value);
    bucket.last = offset;
    state.bytes += value.length;
    if (bucket.records.unsentBytes < CHUNK_BYTES) return;
    bucket.encoding ??= open(target);
    bucket.encoding.add(bucket.records);
  }

  /** Storage work, retried with backoff while the storage refuses, unless stopping or no longer `wanted`. */
  async function retrying<T>(folder: string, what: string, work: () => Promise<T>, wanted = () => true) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        stats.uploadFailures++;
        metrics.archiveUploadFailures.inc({ folder });
        if (attempt === 0 || attempt % 10 === 0) {
          logger.warn("archive storage failed; retrying", { what, error: (error as Error).message });
        }
        if (stopping || !wanted()) throw error;
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
    // A partition revoked meanwhile is read again by its new owner, who may be writing the same files.
    const owned = () => pending.get(`${topic}:${partition}`) === state;
    const files = [...state.writing, ...state.hours];
    state.writing = files;
    state.hours = new Map();
    state.bytes = 0;
    state.openedAt = performance.now();
    const next = state.lastOffset + 1;
    // The files are encoded side by side, each on an encoder thread; those that fail are written with the next.
    const complete = async ([hour, bucket]: [string, Bucket]) => {
      const key = objectKey(target.folder, hour, partition, bucket.first, bucket.last);
      const { count } = bucket.records;
      const encoding = bucket.encoding ?? open(target);
      bucket.encoding = undefined;
      let bytes: Uint8Array;
      try {
        bytes = await encoding.finish(bucket.records);
        if (!owned()) throw new Error("the partition was revoked");
        await retrying(target.folder, key, () => destination.put(key, bytes), owned);
      } catch (error) {
        bucket.records.unsend(); // the next flush encodes the file again, from its first record
        throw error;
      }
      state.writing = state.writing.filter(([, other]) => other !== bucket);
      const file = parseKey(key);
      if (file) (await listings.filesOf(target.folder, hour)).push(file);
      stats.files++;
      stats.rows += count;
      stats.lastFileAt = performance.now();
      metrics.archiveFiles.inc({ folder: target.folder });
      metrics.archiveBytes.inc({ folder: target.folder }, bytes.length);
      metrics.archiveRows.inc({ folder: target.folder }, count);
    };
    const results = await Promise.allSettled(files.map(complete));
    const failed = results.find((result) => result.status === "rejected");
    if (failed) throw failed.reason;
    if (!owned()) return;
    if (state.committed !== next) {
      await consumer.commitOffsets([{ topic, partition, offset: String(next) }]);
      state.committed = next;
    }
    setLag(state);
  }

  /**
   * Starts completing the partition's files once the flush before has ended, and returns: the partition is
   * read on while they are encoded and stored. The files of a flush that failed are written with the next.
   */
  async function startFlush(state: Pending) {
    await state.flushing;
    state.flushing = flush(state.topic, state.partition).catch((error: Error) =>
      logger.error("archive flush failed; its files are written with the next", {
        topic: state.topic,
        partition: state.partition,
        error: error.message,
      }),
    );
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
    await slots.run(slot, async () => {
      let state = pending.get(slot);
      if (!state) {
        state = {
          topic: batch.topic,
          partition: batch.partition,
          hours: new Map(),
          bytes: 0,
          openedAt: performance.now(),
          writing: [],
        };
        pending.set(slot, state);
      }
      await read(target, state, batch.partition, batch);
      if (due(state)) await startFlush(state);
    });
  }

  /** Flushes partitions whose oldest unwritten record has waited ARCHIVE_FLUSH_SECONDS, though no batch comes. */
  const timer = setInterval(() => {
    for (const [slot, state] of pending) {
      if (stopping || slots.busy(slot) || !due(state)) continue;
      slots
        .run(slot, () => startFlush(state))
        .catch((error: Error) => logger.error("archive flush failed", { slot, error: error.message }));
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
          for (const bucket of state.hours.values()) bucket.encoding?.drop();
          metrics.archiveLag.remove({ topic: state.topic, partition: String(state.partition) });
        }
        // Another member may have completed files of a partition while this one did not own it.
        listings.clear();
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
        slots.run(slot, async () => {
          await state.flushing;
          await flush(state.topic, state.partition);
        }),
      );
      stopping = true;
      await Promise.race([Promise.allSettled(flushes), Bun.sleep(timeoutMs)]);
      encoders.close(); // files still encoding fail, and their partitions are read again later
      await consumer.disconnect();
    },
  };
}

export type Archiver = ReturnType<typeof createArchiver>;
