import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Kafka, logLevel } from "kafkajs";
import mqtt from "mqtt";
import postgres from "postgres";
import { kindTopic } from "../src/kafka/client";
import { type ClusterNode, type PrivateCluster, privateCluster } from "./cluster";
import {
  authHeader,
  recordTopics,
  startGatewayProcess,
  startMosquitto,
  testConfig,
  testDatabase,
  testKey,
} from "./helpers";

let cluster: PrivateCluster;
let mosquitto: Awaited<ReturnType<typeof startMosquitto>>;
const cleanups: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  [cluster, mosquitto] = await Promise.all([privateCluster(), startMosquitto()]);
}, 120_000);
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await Promise.all([cluster.remove(), mosquitto.stop()]);
}, 60_000);

/** A connected admin client of the cluster; the caller disconnects it. */
async function clusterAdmin() {
  const admin = new Kafka({ brokers: cluster.brokers.split(","), logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  return admin;
}

/** A gateway and sink on the cluster, with topics replicated three times and a database of their own. */
async function sluiceOnCluster() {
  // A node started again by the test before must be back: topics are created with three replicas.
  const admin = await clusterAdmin();
  for (let attempt = 0; (await admin.describeCluster()).brokers.length < 3; attempt++) {
    if (attempt > 120) throw new Error("the cluster has fewer than three brokers");
    await Bun.sleep(500);
  }
  await admin.disconnect();
  const config = testConfig();
  const database = await testDatabase();
  cleanups.push(() => database.drop());
  const sluice = await startGatewayProcess({
    KAFKA_BROKERS: cluster.brokers,
    KAFKA_REPLICATION_FACTOR: "3",
    KAFKA_TOPIC_PREFIX: config.KAFKA_TOPIC_PREFIX,
    REDIS_KEY_PREFIX: config.REDIS_KEY_PREFIX,
    DATABASE_URL: database.url,
    API_KEYS: testKey,
    RATE_LIMIT_PER_SECOND: "100000",
    ...mosquitto.gatewayEnv,
    MQTT_CONNECTIONS: "4",
    MQTT_CLIENT_ID: `ha-${config.KAFKA_TOPIC_PREFIX}`,
    MQTT_SHARED_GROUP: config.KAFKA_TOPIC_PREFIX,
    MQTT_TOPIC_PREFIX: "ha/v1",
    KAFKA_ACK_TIMEOUT_MS: "3000",
  });
  cleanups.push(async () => {
    sluice.proc.kill("SIGKILL");
    await sluice.proc.exited;
  });
  return { sluice, database, topic: kindTopic(config.KAFKA_TOPIC_PREFIX, "sensors") };
}

/**
 * 24 devices, each posting its own readings one after another (so every partition is busy, and a device
 * whose partition has lost its leader waits without holding up the others), remembering when each 202 came;
 * and 8 MQTT devices publishing QoS 1 readings the same way, remembering each one Mosquitto acknowledged.
 */
function load(url: string, devices = 24) {
  const acknowledged = new Map<string, number>();
  const published = new Set<string>();
  const answers: { at: number; status: number }[] = [];
  const failures: string[] = [];
  let running = true;
  const device = async (index: number) => {
    while (running) {
      try {
        const response = await fetch(`${url}/v1/sensors/readings`, {
          method: "POST",
          headers: { ...authHeader, "content-type": "application/json" },
          body: JSON.stringify({ deviceId: `ha-${index}`, ts: new Date().toISOString(), pm25: 7 }),
        });
        answers.push({ at: performance.now(), status: response.status });
        if (response.status === 202) {
          for (const id of ((await response.json()) as { ids: string[] }).ids)
            acknowledged.set(id, performance.now());
        } else await response.arrayBuffer();
      } catch (error) {
        failures.push(String(error));
      }
      // A device reports a few times a second: the load is the broker's to carry, not the test's to read.
      await Bun.sleep(40);
    }
  };
  const mqttDevice = async (index: number) => {
    const client = await mqtt.connectAsync(mosquitto.url, {
      clientId: `ha-device-${index}-${crypto.randomUUID()}`,
      ...mosquitto.fleet,
    });
    for (let n = 0; running; n++) {
      const id = `ha-mqtt-${index}-${n}-${crypto.randomUUID()}`;
      const body = JSON.stringify({ id, ts: new Date().toISOString(), pm25: 9 });
      await client.publishAsync(`ha/v1/sensors/mq-${index}`, body, { qos: 1 });
      published.add(id);
      await Bun.sleep(40);
    }
    await client.endAsync();
  };
  const devicesRunning = [
    ...Array.from({ length: devices }, (_, index) => device(index)),
    ...Array.from({ length: 8 }, (_, index) => mqttDevice(index)),
  ];
  return {
    answers,
    acknowledged,
    /** MQTT messages Mosquitto acknowledged to their publisher: each must reach Kafka and PostgreSQL. */
    published,
    failures,
    async stop() {
      running = false;
      await Promise.all(devicesRunning);
    },
  };
}

/** The longest stretch, in ms, without a 202 between `from` and `to`. */
function longestWithout202(answers: { at: number; status: number }[], from: number, to: number) {
  const times = answers.filter((answer) => answer.status === 202 && answer.at >= from && answer.at <= to);
  let longest = 0;
  let previous = from;
  for (const { at } of times) {
    longest = Math.max(longest, at - previous);
    previous = at;
  }
  return Math.max(longest, to - previous);
}

/**
 * Every id answered 202 is in the topic once; every MQTT message Mosquitto acknowledged is there at least once
 * (a connection that drops has its unacknowledged messages redelivered); each of them is stored.
 */
async function everyAcknowledgedArrived(
  topic: string,
  databaseUrl: string,
  traffic: { acknowledged: Map<string, number>; published: Set<string> },
) {
  const http = new Set(traffic.acknowledged.keys());
  const expected = new Set([...http, ...traffic.published]);
  const records = await recordTopics([topic], cluster.brokers);
  try {
    const seen = new Map<string, number>();
    let read = 0;
    const counts = await records.waitFor(() => {
      for (; read < records.records.length; read++) {
        const id = String(records.records[read]?.value.id);
        if (expected.has(id)) seen.set(id, (seen.get(id) ?? 0) + 1);
      }
      return seen.size === expected.size && seen;
    }, 120_000);
    expect([...http].filter((id) => counts.get(id) !== 1)).toEqual([]);
  } finally {
    await records.stop();
  }
  const sql = postgres(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    for (let attempt = 0; ; attempt++) {
      const rows = await sql<{ id: string }[]>`select id from sensors_records`;
      const stored = new Set(rows.map((row) => row.id));
      const missing = [...expected].filter((id) => !stored.has(id));
      if (missing.length === 0) break;
      if (attempt > 240) throw new Error(`${missing.length} acknowledged records not stored`);
      await Bun.sleep(500);
    }
  } finally {
    await sql.end();
  }
}

/** Waits until every partition of the topic has its three replicas in sync. */
async function fullyReplicated(topic: string) {
  const admin = await clusterAdmin();
  try {
    for (let attempt = 0; ; attempt++) {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] }).catch(() => ({ topics: [] }));
      const partitions = topics[0]?.partitions ?? [];
      if (partitions.length > 0 && partitions.every((partition) => partition.isr.length === 3)) return;
      if (attempt > 240) throw new Error(`${topic} is not fully replicated after 60 s`);
      await Bun.sleep(250);
    }
  } finally {
    await admin.disconnect();
  }
}

async function leaderOf(topic: string, partition: number): Promise<ClusterNode> {
  const admin = await clusterAdmin();
  try {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    return topics[0]?.partitions.find((p) => p.partitionId === partition)?.leader as ClusterNode;
  } finally {
    await admin.disconnect();
  }
}

describe("three brokers, replication 3, min.insync.replicas 2", () => {
  test("the leader of a busy partition SIGKILLed: the other partitions go on (no 5 s without a 202), nothing lost", async () => {
    const { sluice, database, topic } = await sluiceOnCluster();
    const traffic = load(sluice.url);
    await Bun.sleep(3000);
    const leader = await leaderOf(topic, 0);
    const killedAt = performance.now();
    await cluster.kill(leader);
    try {
      await Bun.sleep(20_000);
      const settledAt = performance.now();
      await Bun.sleep(3000);
      await traffic.stop();
      const longest = longestWithout202(traffic.answers, killedAt, settledAt);
      const late = traffic.answers.filter((answer) => answer.at > settledAt);
      const lateRefused = late.filter((answer) => answer.status !== 202).length;
      console.log(
        `leader ${leader} killed: longest stretch without a 202 ${Math.round(longest)} ms; after 20 s, ${late.length - lateRefused}/${late.length} answers 202`,
      );
      expect(longest).toBeLessThan(5000);
      expect(late.length).toBeGreaterThan(50);
      expect(lateRefused).toBe(0);
      expect(traffic.published.size).toBeGreaterThan(100);
      await everyAcknowledgedArrived(topic, database.url, traffic).catch(async (error: Error) => {
        throw new Error(`${error.message}; the gateway's log ends:\n${await sluice.logTail(40)}`);
      });
    } finally {
      // The next test needs all three nodes, whatever this one found.
      await cluster.start(leader);
    }
  }, 180_000);

  // kafkajs lost records here before it was patched (see Patched dependencies in the README): a retried send
  // skipped a partition whose leader had moved to a broker that had answered for another one.
  test("a rolling restart of the three brokers under HTTP and MQTT load: nothing acknowledged is lost", async () => {
    const { sluice, database, topic } = await sluiceOnCluster();
    const traffic = load(sluice.url);
    await Bun.sleep(2000);
    // As operators do it: the next broker is stopped only once every replica has caught up again.
    for (const node of [1, 2, 3] as const) {
      await cluster.stop(node);
      await Bun.sleep(1000);
      await cluster.start(node);
      await fullyReplicated(topic);
    }
    await traffic.stop();
    const refused = traffic.answers.filter((answer) => answer.status !== 202).length;
    console.log(
      `rolling restart: ${traffic.acknowledged.size} acknowledged, ${refused} answers not 202, ${traffic.failures.length} failed (${traffic.failures[0] ?? "none"}); ${traffic.published.size} MQTT messages acknowledged`,
    );
    expect(traffic.acknowledged.size).toBeGreaterThan(1000);
    expect(traffic.published.size).toBeGreaterThan(300);
    await everyAcknowledgedArrived(topic, database.url, traffic).catch(async (error: Error) => {
      throw new Error(`${error.message}; the gateway's log ends:\n${await sluice.logTail(40)}`);
    });
  }, 180_000);
});
