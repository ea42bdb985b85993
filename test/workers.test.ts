import { afterAll, expect, test } from "bun:test";
import { kindTopic } from "../src/kafka/client";
import {
  eventually,
  httpLoad,
  recordTopics,
  startGatewayProcess,
  testConfig,
  testDatabase,
  testKey,
} from "./helpers";

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
}, 30_000);

/** The pids holding established connections on a local port. */
async function servingPids(port: number) {
  const filter = `( sport = :${port} )`;
  const lines = await Bun.$`ss -tnpH state established ${filter}`.text();
  return new Set([...lines.matchAll(/pid=(\d+)/g)].map((match) => Number(match[1])));
}

async function childrenOf(pid: number) {
  const lines = await Bun.$`ps --ppid ${pid} -o pid=,args=`.nothrow().text();
  return lines
    .split("\n")
    .filter((line) => line.includes("--worker"))
    .map((line) => Number(line.trim().split(/\s+/)[0]));
}

test("WORKERS=2: two processes serve the port, every 202 is in Kafka, /metrics sums both; a dead one is restarted", async () => {
  const database = await testDatabase();
  cleanups.push(() => database.drop());
  const config = testConfig();
  const gateway = await startGatewayProcess({
    WORKERS: "2",
    DATABASE_URL: database.url,
    KAFKA_BROKERS: config.KAFKA_BROKERS.join(","),
    KAFKA_TOPIC_PREFIX: config.KAFKA_TOPIC_PREFIX,
    REDIS_KEY_PREFIX: config.REDIS_KEY_PREFIX,
    MQTT_CONNECTIONS: "0",
    API_KEYS: testKey,
    RATE_LIMIT_PER_SECOND: "100000",
  });
  cleanups.push(async () => {
    gateway.proc.kill("SIGKILL");
    for (const child of await childrenOf(gateway.proc.pid)) process.kill(child, "SIGKILL");
  });
  const topics = await recordTopics([kindTopic(config.KAFKA_TOPIC_PREFIX, "sensors")]);
  cleanups.push(() => topics.stop());
  const [worker] = await eventually(async () => {
    const found = await childrenOf(gateway.proc.pid);
    return found.length === 1 && found;
  });

  // Both listen before the load opens its (kept-alive) connections.
  await eventually(async () => {
    const filter = `( sport = :${gateway.port} )`;
    const listening = await Bun.$`ss -tlnpH ${filter}`.text();
    return new Set([...listening.matchAll(/pid=(\d+)/g)].map((match) => match[1])).size >= 2;
  }, 30_000);
  const load = httpLoad(gateway.url, 16);
  const pids = await eventually(async () => {
    const serving = await servingPids(Number(gateway.port));
    return serving.size >= 2 && serving;
  }, 10_000);
  await Bun.sleep(1000);
  const { acknowledged, statuses } = await load.stop();
  expect([...statuses.keys()]).toEqual([202]);
  expect(pids.has(gateway.proc.pid)).toBe(true);
  expect(pids.has(worker as number)).toBe(true);
  await topics.waitFor(
    (records) =>
      records.filter((record) => acknowledged.has(String(record.value.id))).length === acknowledged.size,
  );
  const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
  const accepted = Number(
    metrics.match(/^sluice_records_accepted_total\{kind="sensors",transport="http"\} (\d+)$/m)?.[1],
  );
  expect(accepted).toBe(acknowledged.size);

  process.kill(worker as number, "SIGKILL");
  const [restarted] = await eventually(async () => {
    const found = await childrenOf(gateway.proc.pid);
    return found.length === 1 && found[0] !== worker && found;
  });
  expect(restarted).toBeGreaterThan(0);

  gateway.proc.kill("SIGTERM");
  expect(await gateway.proc.exited).toBe(0);
  expect(await childrenOf(gateway.proc.pid)).toEqual([]);
  const alive = await Bun.$`kill -0 ${restarted as number}`.nothrow().quiet();
  expect(alive.exitCode).not.toBe(0);
}, 90_000);
