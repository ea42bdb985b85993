import type { EachBatchPayload, Kafka } from "kafkajs";
import type { Config } from "../config";
import type { DeadLetter } from "../ingest/pipeline";
import { deadLetterTopic, kindTopic } from "../kafka/client";
import { type Kind, kinds } from "../kinds";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import { type Envelope, envelopeSchema } from "../record";
import type { Destination } from "./destination";
import { type ArchivedFile, deadLetterFolder, hourPath, objectKey, parseKey, replayedHeader } from "./layout";
import { deadLetterParquet, kindParquet } from "./parquet";

/** What one topic is archived as: a kind's records, or the dead letters. */
type Target = { folder: string; kind: Kind } | { folder: string; kind?: undefined };

/** One partition's records read but not yet in a completed file, by hour. */
interface Pending {
  topic: string;
  partition: number;
  hours: Map<string, { rows: (Envelope | DeadLetter)[]; first: bigint; last: bigint }>;
  bytes: number;
  openedAt: number;
  /** The last offset read: the commit after the next flush is the one after it. */
  lastOffset?: bigint;
  committed?: bigint;
  highWatermark?: bigint;
}

function deadLetterOf(value: unknown): DeadLetter | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const letter = value as Partial<DeadLetter>;
  const valid =
    typeof letter.id === "string" &&
    typeof letter.receivedAt === "string" &&
    typeof letter.reason === "string" &&
    typeof letter.raw === "string" &&
    Array.isArray(letter.errors);
  return valid ? (value as DeadLetter) : undefined;
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
  /** Per `<folder>/<hour>`, the offsets completed files hold, by partition. */
  const archived = new Map<string, Promise<ArchivedFile[]>>();
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
      const listed = () => destination.list(`${key}/`);
      files = retrying(folder, `list ${key}/`, listed).then((keys) =>
        keys.flatMap((name) => parseKey(name) ?? []),
      );
      files.catch(() => archived.delete(key));
      archived.set(key, files);
    }
    return files;
  }

  async function isArchived(folder: string, hour: string, partition: number, offset: bigint) {
    const files = await filesOf(folder, hour);
    return files.some((file) => file.partition === partition && file.first <= offset && offset <= file.last);
  }

  async function read(target: Target, state: Pending, partition: number, batch: EachBatchPayload["batch"]) {
    for (const message of batch.messages) {
      const offset = BigInt(message.offset);
      if (state.lastOffset !== undefined && offset <= state.lastOffset) continue;
      const placed = await place(target, state, partition, message, batch.topic);
      if (!placed) stats.skipped++;
      state.lastOffset = offset;
    }
    if (batch.highWatermark) state.highWatermark = BigInt(batch.highWatermark);
  }

  /** Puts a record in its hour's file; false when it is skipped (archived already, or unreadable). */
  async function place(
    target: Target,
    state: Pending,
    partition: number,
    message: EachBatchPayload["batch"]["messages"][number],
    topic: string,
  ): Promise<boolean> {
    const offset = BigInt(message.offset);
    // A record replayed from the archive is in it already.
    if (message.headers?.[replayedHeader]) return false;
    let value: unknown;
    try {
      value = JSON.parse(message.value?.toString() ?? "");
    } catch {}
    const row = target.kind ? envelopeSchema.safeParse(value).data : deadLetterOf(value);
    if (!row) {
      logger.error("archive skipped a record it cannot read", { topic, offset: message.offset });
      return false;
    }
    const hour = hourPath("ts" in row ? row.ts : row.receivedAt);
    if (await isArchived(target.folder, hour, partition, offset)) return false;
    const bucket = state.hours.get(hour) ?? { rows: [], first: offset, last: offset };
    bucket.rows.push(row);
    bucket.last = offset;
    state.hours.set(hour, bucket);
    state.bytes += message.value?.length ?? 0;
    return true;
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
      const bytes = await encode(target, bucket.rows);
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
    const next = state.lastOffset + 1n;
    if (state.committed !== next) {
      await consumer.commitOffsets([{ topic, partition, offset: String(next) }]);
      state.committed = next;
    }
    const lag = state.highWatermark === undefined ? 0n : state.highWatermark - next;
    metrics.archiveLag.set({ topic, partition: String(partition) }, Number(lag > 0n ? lag : 0n));
  }

  /** Whether a partition has records or offsets to complete, and it is time (enough of them, or old enough). */
  const due = (state: Pending) =>
    (state.hours.size > 0 || (state.lastOffset !== undefined && state.committed !== state.lastOffset + 1n)) &&
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
        for (const slot of pending.keys()) if (!owned.has(slot)) pending.delete(slot);
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
