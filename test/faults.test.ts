import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Kafka, logLevel } from "kafkajs";
import postgres from "postgres";
import { kindTopic } from "../src/kafka/client";
import { createLogger } from "../src/log";
import { createRuntime } from "../src/runtime";
import {
  freePort,
  httpLoad,
  privateBroker,
  recordTopics,
  startGatewayProcess,
  startMosquitto,
  testConfig,
  testDatabase,
  testKey,
} from "./helpers";

let mosquitto: Awaited<ReturnType<typeof startMosquitto>>;
const cleanups: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  mosquitto = await startMosquitto();
}, 30_000);
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await mosquitto.stop();
}, 60_000);

/** The environment of a whole Sluice process with topics, database and keys of its own. */
async function processEnv() {
  const config = testConfig();
  const database = await testDatabase();
  cleanups.push(() => database.drop());
  return {
    config,
    database,
    env: {
      KAFKA_BROKERS: config.KAFKA_BROKERS.join(","),
      KAFKA_TOPIC_PREFIX: config.KAFKA_TOPIC_PREFIX,
      REDIS_KEY_PREFIX: config.REDIS_KEY_PREFIX,
      DATABASE_URL: database.url,
      API_KEYS: testKey,
      RATE_LIMIT_PER_SECOND: "100000",
      ...mosquitto.gatewayEnv,
      MQTT_CONNECTIONS: "4",
      MQTT_CLIENT_ID: `faults-${config.KAFKA_TOPIC_PREFIX}`,
      MQTT_TOPIC_PREFIX: "faults/v1",
      MQTT_SHARED_GROUP: config.KAFKA_TOPIC_PREFIX,
    },
  };
}

async function everyAcknowledgedInKafka(prefix: string, acknowledged: Set<string>, brokers?: string) {
  const topics = await recordTopics([kindTopic(prefix, "sensors")], brokers);
  try {
    await topics.waitFor((records) => {
      const seen = new Set(records.map((record) => record.value.id as string));
      return [...acknowledged].every((id) => seen.has(id));
    }, 60_000);
  } finally {
    await topics.stop();
  }
}

describe("process faults", () => {
  test("SIGTERM under load: in-flight requests answered, producer flushed, sink offsets committed, exit 0 within 10 s", async () => {
    const { config, database, env } = await processEnv();
    const gateway = await startGatewayProcess(env);
    const load = httpLoad(gateway.url, 16);
    await Bun.sleep(2000);
    const signalled = performance.now();
    gateway.proc.kill("SIGTERM");
    const code = await gateway.proc.exited;
    const took = performance.now() - signalled;
    const result = await load.stop();
    expect(code).toBe(0);
    expect(took).toBeLessThan(10_000);
    expect(result.acknowledged.size).toBeGreaterThan(100);
    // Only 202s, and network errors once the listener was closed: nothing half-answered.
    expect([...result.statuses.keys()]).toEqual([202]);
    await everyAcknowledgedInKafka(config.KAFKA_TOPIC_PREFIX, result.acknowledged);

    // What the sink stored, it committed: stored rows and committed offsets agree exactly.
    const kafka = new Kafka({ brokers: config.KAFKA_BROKERS, logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const [committed] = await admin.fetchOffsets({
      groupId: `${config.KAFKA_TOPIC_PREFIX}-sink`,
      topics: [kindTopic(config.KAFKA_TOPIC_PREFIX, "sensors")],
    });
    await admin.disconnect();
    const committedCount = (committed?.partitions ?? []).reduce(
      (sum, p) => sum + Math.max(0, Number(p.offset)),
      0,
    );
    const sql = postgres(database.url, { max: 1, onnotice: () => {} });
    const [{ count }] = (await sql`select count(*)::int as count from sensors_records`) as unknown as [
      { count: number },
    ];
    await sql.end();
    expect(count).toBeGreaterThan(0);
    expect(committedCount).toBe(count);
  }, 120_000);

  test("a gateway killed with SIGKILL under HTTP load: nothing acknowledged is missing", async () => {
    const { config, env } = await processEnv();
    const gateway = await startGatewayProcess(env);
    const load = httpLoad(gateway.url, 16);
    await Bun.sleep(2000);
    gateway.proc.kill("SIGKILL");
    await gateway.proc.exited;
    const result = await load.stop();
    expect(result.acknowledged.size).toBeGreaterThan(100);
    await everyAcknowledgedInKafka(config.KAFKA_TOPIC_PREFIX, result.acknowledged);
  }, 120_000);
});

describe("Kafka killed under load", () => {
  test("every 202 is in Kafka; while it is down 503 with Retry-After within 10 s and /readyz 503; it resumes by itself", async () => {
    const broker = await privateBroker();
    cleanups.push(() => broker.remove());
    const database = await testDatabase();
    cleanups.push(() => database.drop());
    const config = testConfig({
      KAFKA_BROKERS: broker.brokers,
      DATABASE_URL: database.url,
      MQTT_CONNECTIONS: "0",
      ROLES: "gateway",
    });
    const runtime = createRuntime(config, createLogger("silent"));
    cleanups.push(() => runtime.close());
    await runtime.ready;
    const server = Bun.serve({ port: await freePort(), hostname: "127.0.0.1", fetch: runtime.app.fetch });
    cleanups.push(() => server.stop(true));
    const url = server.url.href.replace(/\/$/, "");

    const before = httpLoad(url, 8);
    await Bun.sleep(1500);
    await broker.kill();
    await Bun.sleep(1000);
    const during = httpLoad(url, 8);
    await before.stop();
    await Bun.sleep(4000);
    const ready = await fetch(`${url}/readyz`);
    expect(ready.status).toBe(503);
    const down = await during.stop();
    expect(down.statuses.get(503)).toBeGreaterThan(0);
    expect(down.slowest).toBeLessThan(10_000);
    const refused = await fetch(`${url}/v1/sensors/readings`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${testKey}` },
      body: JSON.stringify({ deviceId: "x", ts: new Date().toISOString(), pm25: 1 }),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBeTruthy();

    await broker.start();
    const after = httpLoad(url, 8);
    const deadline = Date.now() + 60_000;
    while ((after.result.statuses.get(202) ?? 0) < 50 && Date.now() < deadline) await Bun.sleep(200);
    const resumed = await after.stop();
    expect(resumed.statuses.get(202)).toBeGreaterThanOrEqual(50);
    expect((await fetch(`${url}/readyz`)).status).toBe(200);

    const acknowledged = new Set([
      ...before.result.acknowledged,
      ...down.acknowledged,
      ...resumed.acknowledged,
    ]);
    await everyAcknowledgedInKafka(config.KAFKA_TOPIC_PREFIX, acknowledged, broker.brokers);
  }, 180_000);
});
