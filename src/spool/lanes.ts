import type { OutgoingRecord } from "../kafka/publisher";

/** A Kafka topic and key: the unit whose order Kafka keeps (one partition). Keyless records have no order. */
export function laneOf(topic: unknown, key: unknown): string | undefined {
  return typeof topic === "string" && typeof key === "string" ? `${topic}\u0000${key}` : undefined;
}

/**
 * How many records each lane has in the spool, committed or being committed. While a lane has any, its new
 * records go behind them into the spool rather than past them to Kafka.
 */
export class SpooledLanes {
  private readonly counts = new Map<string, number>();

  get size() {
    return this.counts.size;
  }

  holdsAny(records: OutgoingRecord[]) {
    if (this.counts.size === 0) return false;
    return records.some((record) => {
      const lane = laneOf(record.topic, record.key);
      return lane !== undefined && this.counts.has(lane);
    });
  }

  add(lane: string | undefined, records = 1) {
    if (lane === undefined) return;
    this.counts.set(lane, (this.counts.get(lane) ?? 0) + records);
  }

  addRecords(records: OutgoingRecord[]) {
    for (const record of records) this.add(laneOf(record.topic, record.key));
  }

  /**
   * A lane leaves the set only when its last spooled record is gone. (A row whose key was damaged on disk is
   * removed from the wrong lane: its own stays counted, and so goes on through the spool, until a restart.)
   */
  remove(lane: string | undefined) {
    if (lane === undefined) return;
    const left = (this.counts.get(lane) ?? 0) - 1;
    if (left > 0) this.counts.set(lane, left);
    else this.counts.delete(lane);
  }

  removeRecords(records: OutgoingRecord[]) {
    for (const record of records) this.remove(laneOf(record.topic, record.key));
  }
}
