import { type Admin, type Kafka, type Message, Partitioners } from "kafkajs";
import { type Logger, logContext } from "../log";
import type { Metrics } from "../metrics";
import { Lane, type Waiter } from "./lane";
import { Leaders } from "./leaders";

export interface OutgoingRecord {
  topic: string;
  key: string | null;
  value: string;
  headers?: Record<string, string>;
  /** What the record counts as once Kafka has it (metrics only, not sent). */
  counts?: { kind: string; transport: string; reason?: string };
}

/** Kafka did not acknowledge in time or refused: the caller answers 503 and the client retries. */
export class KafkaUnavailable extends Error {}

export interface PublisherOptions {
  ackTimeoutMs: number;
  maxBatchBytes: number;
  logger: Logger;
  metrics: Metrics;
}

/**
 * Publishes records with acks=all through one idempotent producer per broker (a Lane) for the partitions it
 * leads, each doing group commit: a source's records keep their order (one key, one partition, one lane, one
 * request in flight), and a broker that is lost holds up only the callers with records for its partitions,
 * while the others go on being acknowledged. A caller's promise resolves once all of its records are
 * acknowledged by every in-sync replica, and rejects with KafkaUnavailable at the first failure or once
 * ackTimeoutMs has passed.
 */
export class Publisher {
  private readonly lanes = new Map<number, Lane>();
  private readonly leaders = new Leaders(() => this.connectedAdmin());
  /** The routing of callers that wait for metadata, in order, and the partitions they hold up meanwhile. */
  private routing: Promise<void> | undefined;
  private readonly waiting = new Map<string, number>();
  private readonly partitionOfKey = new Map<string, number>();
  private readonly partitioner = Partitioners.DefaultPartitioner();
  private roundRobin = 0;
  private admin: Promise<Admin> | undefined;
  readonly stats = { sends: 0, records: 0, failures: 0, lastBatchRecords: 0 };

  constructor(
    private readonly kafka: Kafka,
    private readonly options: PublisherOptions,
  ) {}

  publish(records: OutgoingRecord[]): Promise<void> {
    if (records.length === 0) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter & { timer?: Timer } = {
        unacked: records.length,
        settled: false,
        acknowledged: (count) => {
          waiter.unacked -= count;
          if (waiter.unacked === 0) settle();
        },
        failed: (error) => settle(new KafkaUnavailable(error.message)),
      };
      const settle = (error?: Error) => {
        if (waiter.settled) return;
        waiter.settled = true;
        clearTimeout(waiter.timer);
        if (error) reject(error);
        else {
          this.count(records);
          resolve();
        }
      };
      waiter.timer = setTimeout(
        () =>
          settle(new KafkaUnavailable(`Kafka did not acknowledge within ${this.options.ackTimeoutMs} ms`)),
        this.options.ackTimeoutMs,
      );
      const failed = (error: Error) => settle(new KafkaUnavailable(error.message));
      // The sends serve many callers, so they run outside this one's log context.
      logContext.exit(() => {
        const partitions = this.partitionsOf(records);
        if (this.routable(records, partitions)) this.route(waiter, records, partitions, failed);
        else this.routeLater(waiter, records, partitions, failed);
      });
    });
  }

  /** Waits for every queued record to be sent or failed, then disconnects. */
  async close() {
    await Promise.all([...this.lanes.values()].map((lane) => lane.close()));
    this.lanes.clear();
    await this.admin?.then((admin) => admin.disconnect()).catch(() => {});
  }

  private partitionsOf(records: OutgoingRecord[]) {
    return records.map((record) => {
      const count = this.leaders.partitions(record.topic);
      return count === undefined ? undefined : this.partitionOf(record, count);
    });
  }

  /** Whether every record's leader is known and no caller before it waits for one of its partitions. */
  private routable(records: OutgoingRecord[], partitions: (number | undefined)[]) {
    return records.every((record, index) => {
      const partition = partitions[index];
      return (
        partition !== undefined &&
        this.leaders.of(record.topic, partition) !== undefined &&
        !this.waiting.has(`${record.topic}:${partition}`)
      );
    });
  }

  /**
   * Routes a caller once the leaders it needs are known. Callers waiting are routed in the order they came,
   * and a later caller with records for a partition one of them holds waits too, so no key's order changes.
   */
  private routeLater(
    waiter: Waiter,
    records: OutgoingRecord[],
    partitions: (number | undefined)[],
    failed: (error: Error) => void,
  ) {
    const held = [
      ...new Set(
        partitions.flatMap((partition, index) =>
          partition === undefined ? [] : [`${records[index]?.topic}:${partition}`],
        ),
      ),
    ];
    for (const name of held) this.waiting.set(name, (this.waiting.get(name) ?? 0) + 1);
    const routing = (this.routing ?? Promise.resolve())
      .then(() => this.leaders.learn(records.map((record) => record.topic)))
      .then(() => this.route(waiter, records, this.partitionsOf(records), failed), failed)
      .finally(() => {
        for (const name of held) {
          const left = (this.waiting.get(name) ?? 1) - 1;
          if (left === 0) this.waiting.delete(name);
          else this.waiting.set(name, left);
        }
        if (this.routing === routing) this.routing = undefined;
      });
    this.routing = routing;
  }

  /** Hands each record to the lane of its partition's leader. */
  private route(
    waiter: Waiter,
    records: OutgoingRecord[],
    partitions: (number | undefined)[],
    failed: (error: Error) => void,
  ) {
    const batches = new Map<string, { lane: Lane; topic: string; messages: Message[] }>();
    for (const [index, record] of records.entries()) {
      const partition = partitions[index] ?? 0;
      const leader = this.leaders.of(record.topic, partition) ?? -1;
      if (leader < 0) {
        this.leaders.forgetPartition(record.topic, partition);
        return failed(new Error(`partition ${partition} of ${record.topic} has no leader now`));
      }
      const name = `${leader}\u0000${record.topic}`;
      let batch = batches.get(name);
      if (!batch) {
        batch = { lane: this.laneOf(leader), topic: record.topic, messages: [] };
        batches.set(name, batch);
      }
      batch.messages.push({ key: record.key, value: record.value, headers: record.headers, partition });
    }
    for (const { lane, topic, messages } of batches.values()) lane.enqueue(waiter, topic, messages);
  }

  /** Kafka's own choice (murmur2 of the key, as the Java client), remembered per key; round robin without one. */
  private partitionOf(record: OutgoingRecord, count: number) {
    if (record.key === null) return this.roundRobin++ % count;
    const cacheKey = `${record.topic}\u0000${count}\u0000${record.key}`;
    let partition = this.partitionOfKey.get(cacheKey);
    if (partition === undefined) {
      if (this.partitionOfKey.size >= 100_000) this.partitionOfKey.clear();
      const partitionMetadata = Array.from({ length: count }, (_, partitionId) => ({
        partitionId,
        leader: 0,
      }));
      partition = this.partitioner({
        topic: record.topic,
        partitionMetadata: partitionMetadata as Parameters<typeof this.partitioner>[0]["partitionMetadata"],
        message: { key: record.key, value: null },
      });
      this.partitionOfKey.set(cacheKey, partition);
    }
    return partition;
  }

  private connectedAdmin(): Promise<Admin> {
    if (!this.admin) {
      const admin = this.kafka.admin();
      const connecting = admin.connect().then(() => admin);
      this.admin = connecting;
      connecting.catch(() => {
        if (this.admin === connecting) this.admin = undefined;
      });
    }
    return this.admin;
  }

  private laneOf(leader: number) {
    let lane = this.lanes.get(leader);
    if (!lane) {
      // After a failed send the leaders may have moved: the next callers ask the cluster again.
      lane = new Lane(this.kafka, leader, { ...this.options, stats: this.stats }, () =>
        this.leaders.forget(leader),
      );
      this.lanes.set(leader, lane);
    }
    return lane;
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
}
