import type { Admin } from "kafkajs";

/** Which broker leads each partition of each topic, as last asked of the cluster. */
export class Leaders {
  /** Node id per partition; undefined where it must be asked again, -1 where the cluster named none. */
  private readonly byTopic = new Map<string, (number | undefined)[]>();
  private readonly asking = new Map<string, Promise<void>>();

  constructor(private readonly admin: () => Promise<Admin>) {}

  partitions(topic: string): number | undefined {
    return this.byTopic.get(topic)?.length;
  }

  of(topic: string, partition: number): number | undefined {
    return this.byTopic.get(topic)?.[partition];
  }

  /** Asks the cluster about the topics whose partition count or some leader is not known. */
  async learn(topics: Iterable<string>): Promise<void> {
    const unknown = [...new Set(topics)].filter((topic) => {
      const leaders = this.byTopic.get(topic);
      return !leaders || leaders.some((leader) => leader === undefined || leader < 0);
    });
    await Promise.all(unknown.map((topic) => this.ask(topic)));
  }

  /** After a failed send to a broker, the leaders of its partitions are asked again before they are used. */
  forget(leader: number) {
    for (const leaders of this.byTopic.values()) {
      for (const [partition, node] of leaders.entries()) if (node === leader) leaders[partition] = undefined;
    }
  }

  /** A partition the cluster named no leader for: asked again by the next caller. */
  forgetPartition(topic: string, partition: number) {
    const leaders = this.byTopic.get(topic);
    if (leaders) leaders[partition] = undefined;
  }

  private ask(topic: string): Promise<void> {
    let asking = this.asking.get(topic);
    if (!asking) {
      asking = this.admin()
        .then((admin) => admin.fetchTopicMetadata({ topics: [topic] }))
        .then(({ topics }) => {
          const partitions = topics[0]?.partitions ?? [];
          if (partitions.length === 0) throw new Error(`topic ${topic} has no partitions`);
          const leaders: number[] = [];
          for (const { partitionId, leader } of partitions) leaders[partitionId] = leader;
          this.byTopic.set(topic, leaders);
        })
        .finally(() => this.asking.delete(topic));
      this.asking.set(topic, asking);
    }
    return asking;
  }
}
