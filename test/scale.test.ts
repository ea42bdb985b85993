import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqtt from "mqtt";
import postgres from "postgres";
import { kindTopic } from "../src/kafka/client";
import {
  eventually,
  httpLoad,
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

/** Processes of one deployment: topics, database, Redis keys, MQTT group of their own. */
async function deployment() {
  const config = testConfig();
  const database = await testDatabase();
  cleanups.push(() => database.drop());
  const base = {
    KAFKA_BROKERS: config.KAFKA_BROKERS.join(","),
    KAFKA_TOPIC_PREFIX: config.KAFKA_TOPIC_PREFIX,
    REDIS_KEY_PREFIX: config.REDIS_KEY_PREFIX,
    DATABASE_URL: database.url,
    API_KEYS: testKey,
    RATE_LIMIT_PER_SECOND: "100000",
    KAFKA_SESSION_TIMEOUT_MS: "6000",
    ...mosquitto.gatewayEnv,
    MQTT_CONNECTIONS: "2",
    MQTT_TOPIC_PREFIX: "scale/v1",
    MQTT_SHARED_GROUP: config.KAFKA_TOPIC_PREFIX,
  };
  const start = async (name: string, roles: string) => {
    const started = await startGatewayProcess({
      ...base,
      ROLES: roles,
      MQTT_CLIENT_ID: `${name}-${config.KAFKA_TOPIC_PREFIX}`,
    });
    cleanups.push(async () => {
      started.proc.kill("SIGKILL");
      await started.proc.exited;
    });
    return started;
  };
  return { config, database, start };
}

describe("several gateways and sinks", () => {
  test("two gateways, two sinks; one sink SIGKILLed mid-stream, a third started: stored = acknowledged, roll-ups = raw", async () => {
    const { database, start } = await deployment();
    const gateways = [await start("gw-a", "gateway"), await start("gw-b", "gateway")];
    const sinks = [await start("sink-1", "sink"), await start("sink-2", "sink")];
    const loads = gateways.map((gateway) => httpLoad(gateway.url, 8));
    await Bun.sleep(2000);
    sinks[0]?.proc.kill("SIGKILL");
    await Bun.sleep(2000);
    sinks.push(await start("sink-3", "sink"));
    await Bun.sleep(2000);
    const results = await Promise.all(loads.map((load) => load.stop()));
    const acknowledged = new Set(results.flatMap((result) => [...result.acknowledged]));
    for (const result of results) expect([...result.statuses.keys()]).toEqual([202]);
    expect(acknowledged.size).toBeGreaterThan(500);

    const sql = postgres(database.url, { max: 1, onnotice: () => {} });
    cleanups.push(() => sql.end());
    const stored = await eventually(async () => {
      const rows = await sql<{ id: string }[]>`select id from sensors_records`;
      return rows.length >= acknowledged.size && rows.map((row) => row.id);
    }, 60_000);
    expect(stored.sort()).toEqual([...acknowledged].sort());
    // Every width, every source: the roll-ups hold exactly what the raw rows add up to.
    for (const [width, unit] of [
      ["1m", "minute"],
      ["1h", "hour"],
    ] as const) {
      const mismatches = await sql`
        with raw as (
          select source_id, date_trunc(${unit}, ts) as bucket_start, count(*)::int as count,
                 sum((data->>'pm25')::float8) as pm25_sum
          from sensors_records group by 1, 2),
        rolled as (
          select source_id, bucket_start, sum(count)::int as count, sum(pm25_sum) as pm25_sum
          from sensors_rollups where width = ${width} group by 1, 2)
        select * from raw full join rolled using (source_id, bucket_start)
        where raw.count is distinct from rolled.count or abs(raw.pm25_sum - rolled.pm25_sum) > 1e-6
           or raw.pm25_sum is null or rolled.pm25_sum is null`;
      expect([width, [...mismatches]]).toEqual([width, []]);
    }
  }, 180_000);

  test("one of two gateways SIGKILLed under MQTT and HTTP load: the survivor takes its sessions over, nothing acknowledged is lost", async () => {
    const { config, start } = await deployment();
    const survivor = await start("mq-a", "gateway");
    let killed = await start("mq-b", "gateway");
    const received = await recordTopics([kindTopic(config.KAFKA_TOPIC_PREFIX, "sensors")]);
    cleanups.push(() => received.stop());
    const device = await mqtt.connectAsync(mosquitto.url, {
      clientId: `scale-${crypto.randomUUID()}`,
      ...mosquitto.fleet,
    });
    cleanups.push(() => device.endAsync());
    const http = httpLoad(survivor.url, 4);
    const ids = Array.from({ length: 2000 }, (_, i) => `scale-${i}-${crypto.randomUUID()}`);
    const published: Promise<unknown>[] = [];
    for (const [i, id] of ids.entries()) {
      const body = JSON.stringify({ id, ts: new Date().toISOString(), temperature: i % 30 });
      published.push(device.publishAsync(`scale/v1/sensors/dev-${i % 25}`, body, { qos: 1 }));
      if (i === 700) {
        await Promise.all(published);
        killed.proc.kill("SIGKILL");
        await killed.proc.exited;
      }
      if (i % 100 === 0) await Bun.sleep(5);
    }
    // Every publish was acknowledged by the broker.
    await Promise.all(published);
    // Mosquitto queued part of them for the killed gateway's sessions: the survivor takes those over, delivers
    // what they hold and ends them, so every message reaches Kafka while the killed gateway stays down.
    const seen = () => new Set(received.records.map((record) => String(record.value.id)));
    await received.waitFor(() => ids.every((id) => seen().has(id)), 60_000);
    const metrics = await (await fetch(`${survivor.url}/metrics`)).text();
    expect(metrics).toMatch(/^sluice_mqtt_sessions_taken_over_total [1-9]/m);
    const { statuses, acknowledged } = await http.stop();
    expect([...statuses.keys()]).toEqual([202]);
    await received.waitFor(() => [...acknowledged].every((id) => seen().has(id)), 30_000);

    // Started again, the killed gateway opens its sessions anew and takes its share.
    killed = await start("mq-b", "gateway");
    const later = Array.from({ length: 400 }, (_, i) => `scale-later-${i}-${crypto.randomUUID()}`);
    await Promise.all(
      later.map((id, i) =>
        device.publishAsync(
          `scale/v1/sensors/dev-${i % 25}`,
          JSON.stringify({ id, ts: new Date().toISOString(), temperature: 1 }),
          { qos: 1 },
        ),
      ),
    );
    await received.waitFor(() => later.every((id) => seen().has(id)), 30_000);
    const restarted = await (await fetch(`${killed.url}/metrics`)).text();
    expect(restarted).toMatch(/^sluice_mqtt_connections\{state="connected"\} 2$/m);
    expect(survivor.proc.exitCode).toBeNull();
  }, 180_000);
});
