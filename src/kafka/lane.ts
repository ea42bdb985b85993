import type { Kafka, Message, Producer } from "kafkajs";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";

/** A caller's records on their way: settled once every one is acknowledged, or at the first failure. */
export interface Waiter {
  unacked: number;
  settled: boolean;
  acknowledged(count: number): void;
  failed(error: Error): void;
}

interface Queued {
  waiter: Waiter;
  topic: string;
  /** Each with its partition set. */
  messages: Message[];
  /** Index of the first message not yet handed to a send. */
  next: number;
}

export interface LaneOptions {
  ackTimeoutMs: number;
  maxBatchBytes: number;
  logger: Logger;
  metrics: Metrics;
  stats: { sends: number; records: number; failures: number; lastBatchRecords: number };
}

/**
 * Group commit for the partitions one broker leads, through an idempotent producer of its own. kafkajs keeps
 * one request in flight per producer and has no linger, so messages from concurrent callers queue here while a
 * send is in flight and go out together in the next one. When a send fails, every caller queued here is
 * failed with it (their partitions' leader is likely gone) and `onFailure` lets the publisher route those
 * partitions anew, so that a lost broker holds up only the callers with records for its partitions.
 */
export class Lane {
  private queue: Queued[] = [];
  private draining = false;
  private producer: Promise<Producer> | undefined;
  private idle: (() => void)[] = [];

  constructor(
    private readonly kafka: Kafka,
    readonly leader: number,
    private readonly options: LaneOptions,
    private readonly onFailure: (lane: Lane) => void,
  ) {}

  enqueue(waiter: Waiter, topic: string, messages: Message[]) {
    this.queue.push({ waiter, topic, messages, next: 0 });
    if (!this.draining) {
      this.draining = true;
      // Let the messages that arrive in this tick join the first send.
      setImmediate(() => void this.drain());
    }
  }

  /** Waits for every queued message to be sent or failed, then disconnects. */
  async close() {
    if (this.draining) await new Promise<void>((resolve) => this.idle.push(resolve));
    const producer = this.producer;
    this.producer = undefined;
    await producer?.then((p) => p.disconnect()).catch(() => {});
  }

  private takeBatch() {
    const taken: [Waiter, number][] = [];
    const byTopic = new Map<string, Message[]>();
    let count = 0;
    let bytes = 0;
    while (this.queue.length > 0 && bytes < this.options.maxBatchBytes) {
      const queued = this.queue[0] as Queued;
      let taking = 0;
      while (
        !queued.waiter.settled &&
        queued.next < queued.messages.length &&
        bytes < this.options.maxBatchBytes
      ) {
        const message = queued.messages[queued.next++] as Message;
        const messages = byTopic.get(queued.topic) ?? [];
        if (messages.length === 0) byTopic.set(queued.topic, messages);
        messages.push(message);
        bytes += String(message.value).length + String(message.key ?? "").length + 70;
        taking++;
      }
      if (taking > 0) taken.push([queued.waiter, taking]);
      count += taking;
      if (queued.waiter.settled || queued.next === queued.messages.length) this.queue.shift();
    }
    const topicMessages = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
    return { taken, topicMessages, count };
  }

  private async drain() {
    const { metrics, stats } = this.options;
    try {
      while (this.queue.length > 0) {
        const { taken, topicMessages, count } = this.takeBatch();
        if (taken.length === 0) continue;
        const stopTimer = metrics.kafkaProduceSeconds.startTimer();
        try {
          const producer = await this.connectedProducer();
          await producer.sendBatch({ topicMessages, acks: -1, timeout: this.options.ackTimeoutMs });
          stopTimer();
          metrics.kafkaBatchRecords.observe(count);
          stats.sends++;
          stats.records += count;
          stats.lastBatchRecords = count;
          for (const [waiter, acknowledged] of taken) waiter.acknowledged(acknowledged);
        } catch (error) {
          stats.failures++;
          metrics.kafkaSendFailures.inc();
          const message = (error as Error).message;
          this.options.logger.warn("kafka send failed", {
            leader: this.leader,
            error: message,
            records: count,
          });
          for (const [waiter] of taken) waiter.failed(error as Error);
          for (const { waiter } of this.queue.splice(0)) waiter.failed(error as Error);
          this.onFailure(this);
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
        // The publisher has chosen each message's partition; kafkajs's own would filter the partition list per message.
        createPartitioner:
          () =>
          ({ message }) =>
            message.partition as number,
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
