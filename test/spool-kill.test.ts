import { afterAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { kindTopic } from "../src/kafka/client";
import {
  eventually,
  freePort,
  privateBroker,
  recordTopics,
  startGatewayProcess,
  testConfig,
  testDatabase,
  testKey,
} from "./helpers";
import { orderedHttpLoad, orderPerSource } from "./spool-load";

const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
}, 60_000);

/** The spool's depth as a gateway process reports it on /metrics. */
async function spooledRecords(url: string) {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(text.match(/^sluice_spool_records (\S+)$/m)?.[1] ?? Number.NaN);
}

describe("a gateway killed while spooling", () => {
  test("SIGKILL with Kafka down and records spooled, restart: nothing acknowledged is lost, the spool goes first, per-source order holds", async () => {
    const broker = await privateBroker();
    cleanups.push(() => broker.remove());
    const database = await testDatabase();
    cleanups.push(() => database.drop());
    const dir = await mkdtemp(`${tmpdir()}/sluice-spool-kill-`);
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    const config = testConfig();
    const env = {
      PORT: String(await freePort()),
      KAFKA_BROKERS: broker.brokers,
      KAFKA_TOPIC_PREFIX: config.KAFKA_TOPIC_PREFIX,
      REDIS_KEY_PREFIX: config.REDIS_KEY_PREFIX,
      DATABASE_URL: database.url,
      API_KEYS: testKey,
      RATE_LIMIT_PER_SECOND: "100000",
      ROLES: "gateway",
      MQTT_CONNECTIONS: "0",
      SPOOL_DIR: dir,
      KAFKA_ACK_TIMEOUT_MS: "2000",
    };
    let gateway = await startGatewayProcess(env);
    cleanups.push(async () => gateway.proc.kill("SIGKILL"));
    const sources = Array.from({ length: 10 }, (_, i) => `kill-${i}`);
    const load = orderedHttpLoad(() => gateway.url, sources, 5);
    await Bun.sleep(1000);

    await broker.stop();
    await eventually(async () => (await spooledRecords(gateway.url)) > 300, 20_000);
    gateway.proc.kill("SIGKILL");
    await gateway.proc.exited;
    const spooledBeforeKill = load.spooled;

    await broker.start();
    // Devices go on sending (their requests fail until the gateway is back, then land behind the spool).
    gateway = await startGatewayProcess(env);
    await eventually(async () => (await spooledRecords(gateway.url)) === 0, 60_000);
    await Bun.sleep(1500);
    await load.stop();

    expect(spooledBeforeKill).toBeGreaterThan(50);
    expect(load.statuses.get(503) ?? 0).toBe(0);
    const topics = await recordTopics([kindTopic(config.KAFKA_TOPIC_PREFIX, "sensors")], broker.brokers);
    cleanups.push(() => topics.stop());
    const { acknowledged } = load;
    await topics.waitFor(
      (records) => orderPerSource(records, acknowledged).seen.size === acknowledged.size,
      60_000,
    );
    expect(orderPerSource(topics.records, acknowledged).backwards).toEqual([]);
  }, 180_000);
});
