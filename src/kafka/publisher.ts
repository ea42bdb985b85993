import { type Admin, type Kafka, type Message, Partitioners } from "kafkajs";
import { type Logger, logContext } from "../log";
import type { Metrics } from "../metrics";
import { Lane, type Waiter } from "./lane";

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
  /** Each topic's partition leaders (node ids) as last asked of the cluster; forgotten after a failed send. */
  private readonly leaders = new Map<string, number[]>();
  private readonly fetching = new Map<string, Promise<number[]>>();
  /** The routing of callers that wait for metadata, in order. */
  private routing: Promise<void> | undefined;
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
        // Callers are routed in the order they came: one waiting for a topic's metadata holds up those behind it.
        if (!this.routing && records.every((record) => this.leaders.has(record.topic))) {
          this.route(waiter, records, failed);
          return;
        }
        const routing = (this.routing ?? Promise.resolve())
          .then(() => Promise.all(records.map((record) => this.leadersOf(record.topic))))
          .then(() => this.route(waiter, records, failed), failed);
        this.routing = routing;
        void routing.then(() => {
          if (this.routing === routing) this.routing = undefined;
        });
      });
    });
  }

  /** Waits for every queued record to be sent or failed, then disconnects. */
  async close() {
    await Promise.all([...this.lanes.values()].map((lane) => lane.close()));
    this.lanes.clear();
    await this.admin?.then((admin) => admin.disconnect()).catch(() => {});
  }

  /** Hands each record to the lane of its partition's leader; every topic's leaders are known. */
  private route(waiter: Waiter, records: OutgoingRecord[], failed: (error: Error) => void) {
    const batches = new Map<string, { lane: Lane; topic: string; messages: Message[] }>();
    for (const record of records) {
      const leaders = this.leaders.get(record.topic) as number[];
      const partition = this.partitionOf(record, leaders.length);
      const leader = leaders[partition] ?? -1;
      if (leader < 0) {
        this.leaders.delete(record.topic);
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

  private leadersOf(topic: string): Promise<number[]> {
    const known = this.leaders.get(topic);
    if (known) return Promise.resolve(known);
    let fetching = this.fetching.get(topic);
    if (!fetching) {
      fetching = this.connectedAdmin()
        .then((admin) => admin.fetchTopicMetadata({ topics: [topic] }))
        .then(({ topics }) => {
          const partitions = topics[0]?.partitions ?? [];
          if (partitions.length === 0) throw new Error(`topic ${topic} has no partitions`);
          const leaders = partitions
            .sort((a, b) => a.partitionId - b.partitionId)
            .map((partition) => partition.leader);
          this.leaders.set(topic, leaders);
          return leaders;
        })
        .finally(() => this.fetching.delete(topic));
      this.fetching.set(topic, fetching);
    }
    return fetching;
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
      lane = new Lane(this.kafka, leader, { ...this.options, stats: this.stats }, () => this.leaders.clear());
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
