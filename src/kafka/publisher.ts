import { type ICustomPartitioner, type Kafka, type Message, Partitioners, type Producer } from "kafkajs";
import { type Logger, logContext } from "../log";
import type { Metrics } from "../metrics";

export interface OutgoingRecord {
  topic: string;
  key: string | null;
  value: string;
  headers?: Record<string, string>;
  /** What the record counts as once Kafka has it (metrics only, not sent). */
  counts?: { kind: string; transport: string; reason?: string };
}

/**
 * kafkajs's Java-compatible partitioner, remembering each key's partition: the original hashes the key and
 * filters the partition list for every message, which shows in profiles of small-record traffic.
 */
const cachingPartitioner: ICustomPartitioner = () => {
  const partitioner = Partitioners.DefaultPartitioner();
  const cache = new Map<string, number>();
  return (args) => {
    const key = args.message.key;
    if (key === null || key === undefined || args.message.partition !== undefined) return partitioner(args);
    const cacheKey = `${args.topic}\u0000${args.partitionMetadata.length}\u0000${key.toString()}`;
    let partition = cache.get(cacheKey);
    if (partition === undefined) {
      if (cache.size >= 100_000) cache.clear();
      partition = partitioner(args);
      cache.set(cacheKey, partition);
    }
    return partition;
  };
};

/** Kafka did not acknowledge in time or refused: the caller answers 503 and the client retries. */
export class KafkaUnavailable extends Error {}

interface Waiter {
  records: OutgoingRecord[];
  /** Index of the first record not yet handed to a send. */
  next: number;
  unacked: number;
  settled: boolean;
  resolve: () => void;
  reject: (error: Error) => void;
  timer: Timer;
}

export interface PublisherOptions {
  ackTimeoutMs: number;
  maxBatchBytes: number;
  logger: Logger;
  metrics: Metrics;
}

/**
 * Group commit for an idempotent producer. kafkajs keeps one request in flight and has no linger, so
 * records from concurrent callers queue here while a send is in flight and go out together in the next
 * one. A caller's promise resolves only when all of its records are acknowledged by every in-sync
 * replica (acks=all), and rejects with KafkaUnavailable once ackTimeoutMs has passed.
 */
export class Publisher {
  private queue: Waiter[] = [];
  private draining = false;
  private producer: Promise<Producer> | undefined;
  private idle: (() => void)[] = [];
  readonly stats = { sends: 0, records: 0, failures: 0, lastBatchRecords: 0 };

  constructor(
    private readonly kafka: Kafka,
    private readonly options: PublisherOptions,
  ) {}

  publish(records: OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        records,
        next: 0,
        unacked: records.length,
        settled: false,
        resolve,
        reject,
        timer: setTimeout(
          () =>
            this.settle(
              waiter,
              new KafkaUnavailable(`Kafka did not acknowledge within ${this.options.ackTimeoutMs} ms`),
            ),
          this.options.ackTimeoutMs,
        ),
      };
      this.queue.push(waiter);
      if (!this.draining) {
        this.draining = true;
        // Let the requests that arrive in this tick join the first send. The send serves many requests, so
        // it runs outside this one's log context.
        logContext.exit(() => setImmediate(() => void this.drain()));
      }
    });
  }

  /** Waits for every queued record to be sent or failed, then disconnects. */
  async close() {
    if (this.draining) await new Promise<void>((resolve) => this.idle.push(resolve));
    const producer = this.producer;
    this.producer = undefined;
    await producer?.then((p) => p.disconnect()).catch(() => {});
  }

  private settle(waiter: Waiter, error?: Error) {
    if (waiter.settled) return;
    waiter.settled = true;
    clearTimeout(waiter.timer);
    if (error) waiter.reject(error);
    else {
      this.count(waiter.records);
      waiter.resolve();
    }
  }

  private count(records: OutgoingRecord[]) {
    const { metrics } = this.options;
    for (const { counts } of records) {
      if (!counts) continue;
      if (counts.reason === undefined)
        metrics.recordsAccepted.inc({ kind: counts.kind, transport: counts.transport });
      else {
        metrics.deadLetters.inc({ kind: counts.kind, transport: counts.transport, reason: counts.reason });
        if (counts.reason === "invalid-record") {
          metrics.recordsRejected.inc({ kind: counts.kind, transport: counts.transport });
        }
      }
    }
  }

  private takeBatch() {
    const taken: [Waiter, number][] = [];
    const byTopic = new Map<string, Message[]>();
    let bytes = 0;
    while (this.queue.length > 0 && bytes < this.options.maxBatchBytes) {
      const waiter = this.queue[0] as Waiter;
      let count = 0;
      while (!waiter.settled && waiter.next < waiter.records.length && bytes < this.options.maxBatchBytes) {
        const record = waiter.records[waiter.next++] as OutgoingRecord;
        const messages = byTopic.get(record.topic) ?? [];
        if (messages.length === 0) byTopic.set(record.topic, messages);
        messages.push({ key: record.key, value: record.value, headers: record.headers });
        bytes += record.value.length + (record.key?.length ?? 0) + 70;
        count++;
      }
      if (count > 0) taken.push([waiter, count]);
      if (waiter.settled || waiter.next === waiter.records.length) this.queue.shift();
    }
    const topicMessages = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
    return { taken, topicMessages };
  }

  private async drain() {
    try {
      while (this.queue.length > 0) {
        const { taken, topicMessages } = this.takeBatch();
        if (taken.length === 0) continue;
        const count = taken.reduce((sum, [, n]) => sum + n, 0);
        const stopTimer = this.options.metrics.kafkaProduceSeconds.startTimer();
        try {
          const producer = await this.connectedProducer();
          await producer.sendBatch({ topicMessages, acks: -1, timeout: this.options.ackTimeoutMs });
          stopTimer();
          this.options.metrics.kafkaBatchRecords.observe(count);
          this.stats.sends++;
          this.stats.records += count;
          this.stats.lastBatchRecords = count;
          for (const [waiter, n] of taken) {
            waiter.unacked -= n;
            if (waiter.unacked === 0) this.settle(waiter);
          }
        } catch (error) {
          this.stats.failures++;
          this.options.metrics.kafkaSendFailures.inc();
          this.options.logger.warn("kafka send failed", { error: (error as Error).message, records: count });
          for (const [waiter] of taken) this.settle(waiter, new KafkaUnavailable((error as Error).message));
          this.discardProducer();
        }
      }
    } finally {
      this.draining = false;
      for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  private connectedProducer(): Promise<Producer> {
    if (!this.producer) {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: cachingPartitioner,
        retry: { retries: 3, initialRetryTime: 100, maxRetryTime: 1000 },
      });
      const connecting = producer.connect().then(() => producer);
      this.producer = connecting;
      connecting.catch(() => {
        if (this.producer === connecting) this.producer = undefined;
      });
    }
    return this.producer;
  }

  /**
   * After a failed send nobody knows whether the broker wrote it, and an idempotent producer that goes on
   * with the same id and sequence numbers could have a new batch taken for the old one's duplicate. A new
   * producer gets a new producer id, so the next send can never be mistaken for a retry.
   */
  private discardProducer() {
    const old = this.producer;
    this.producer = undefined;
    old?.then((p) => p.disconnect()).catch(() => {});
  }
}
