import { Database } from "bun:sqlite";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import mqtt from "mqtt";
import { deadLetterTopic, kindTopic } from "../src/kafka/client";
import { createLogger } from "../src/log";
import { createRuntime, type Runtime } from "../src/runtime";
import {
  counterValue,
  eventually,
  post,
  privateBroker,
  recordTopics,
  startMosquitto,
  testConfig,
  testDatabase,
  withTestKey,
} from "./helpers";
import { orderedHttpLoad, orderedMqttLoad, orderPerSource } from "./spool-load";

// A minute without Kafka, as the issue asks; SPOOL_OUTAGE_SECONDS=12 makes it quicker when working on it.
const OUTAGE_SECONDS = Number(process.env.SPOOL_OUTAGE_SECONDS ?? 60);

let broker: Awaited<ReturnType<typeof privateBroker>>;
let mosquitto: Awaited<ReturnType<typeof startMosquitto>>;
const cleanups: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  [broker, mosquitto] = await Promise.all([privateBroker(), startMosquitto()]);
}, 60_000);
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await broker.remove();
  await mosquitto.stop();
}, 60_000);

async function spoolDir() {
  const dir = await mkdtemp(`${tmpdir()}/sluice-spool-`);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A gateway on the test's own broker, spooling to `dir`, served on a port of its own. */
async function spoolingGateway(dir: string, overrides: Record<string, string> = {}) {
  const database = await testDatabase();
  cleanups.push(() => database.drop());
  const config = testConfig({
    KAFKA_BROKERS: broker.brokers,
    DATABASE_URL: database.url,
    ROLES: "gateway",
    SPOOL_DIR: dir,
    KAFKA_ACK_TIMEOUT_MS: "2000",
    ...overrides,
  });
  const runtime = withTestKey(createRuntime(config, createLogger(config.LOG_LEVEL)));
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: runtime.app.fetch });
  const close = async () => {
    await server.stop(true);
    await runtime.close();
  };
  cleanups.push(close);
  return { runtime, url: server.url.href.replace(/\/$/, ""), close, prefix: config.KAFKA_TOPIC_PREFIX };
}

const readiness = async (runtime: Runtime) => {
  const response = await runtime.app.request("/readyz");
  const body = (await response.json()) as {
    checks: Record<
      string,
      { ok: boolean; critical: boolean; error?: string; details?: Record<string, number> }
    >;
  };
  return { status: response.status, body };
};

const spoolEmpty = (runtime: Runtime) => async () =>
  (await readiness(runtime)).body.checks.spool?.details?.records === 0;

describe("Kafka down with the spool on", () => {
  test(
    `${OUTAGE_SECONDS} s without Kafka under HTTP and MQTT load: no 503, every acknowledged record in Kafka afterwards, in order per source, also while Kafka comes back`,
    async () => {
      const gateway = await spoolingGateway(await spoolDir(), {
        ...mosquitto.gatewayEnv,
        // One subscriber connection: a shared subscription spreads a device's messages over its connections.
        MQTT_CONNECTIONS: "1",
        MQTT_TOPIC_PREFIX: "spool/v1",
        MQTT_CLIENT_ID: `spool-${crypto.randomUUID().slice(0, 8)}`,
        MQTT_SHARED_GROUP: `spool-${crypto.randomUUID().slice(0, 8)}`,
      });
      const { runtime } = gateway;
      await runtime.ready;
      await eventually(() => runtime.mqtt?.connected());
      const sources = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);
      const http = orderedHttpLoad(() => gateway.url, sources("h", 12), 5);
      const mqtt = await orderedMqttLoad(mosquitto.url, mosquitto.fleet, "spool/v1", sources("m", 4));
      await Bun.sleep(1500);

      await broker.stop();
      const stopped = Date.now();
      await eventually(
        async () => ((await readiness(runtime)).body.checks.spool?.details?.records ?? 0) > 100,
        15_000,
      );
      const during = await readiness(runtime);
      expect(during.status).toBe(200);
      expect(during.body.checks.kafka).toMatchObject({ ok: false, critical: false });
      expect(during.body.checks.spool).toMatchObject({ ok: true, critical: true });
      await Bun.sleep(Math.max(0, OUTAGE_SECONDS * 1000 - (Date.now() - stopped)));

      await broker.start();
      // Kafka back while new records arrive: they queue behind their sources' spooled ones.
      await eventually(spoolEmpty(runtime), 60_000);
      await Bun.sleep(2000);
      await Promise.all([http.stop(), mqtt.stop()]);

      expect(http.statuses.get(503) ?? 0).toBe(0);
      expect(http.failures).toBe(0);
      expect(http.spooled).toBeGreaterThan(50);
      expect(runtime.mqtt?.stats.spooled).toBeGreaterThan(10);
      const acknowledged = new Set([...http.acknowledged, ...mqtt.acknowledged]);
      const topics = await recordTopics([kindTopic(gateway.prefix, "sensors")], broker.brokers);
      cleanups.push(() => topics.stop());
      await topics.waitFor(
        (records) => orderPerSource(records, acknowledged).seen.size === acknowledged.size,
        60_000,
      );
      expect(orderPerSource(topics.records, acknowledged).backwards).toEqual([]);
      await eventually(spoolEmpty(runtime), 30_000);
      const spooled = await counterValue(runtime.metrics.spoolSpooled);
      expect(await counterValue(runtime.metrics.spoolForwarded)).toBe(spooled);
      expect(await counterValue(runtime.metrics.spoolRefused)).toBe(0);
      console.log(
        `${OUTAGE_SECONDS} s without Kafka: ${http.acknowledged.size} HTTP and ${mqtt.acknowledged.size} MQTT ` +
          `records acknowledged, ${http.spooled} HTTP answers and ${runtime.mqtt?.stats.spooled} MQTT messages ` +
          `spooled, ${spooled} records spooled and forwarded, every one in Kafka, none out of order`,
      );
    },
    120_000 + OUTAGE_SECONDS * 2000,
  );
});

const readings = (source: string, count: number, from = 0) =>
  Array.from({ length: count }, (_, i) => ({
    id: `${source}.${from + i}`,
    deviceId: source,
    ts: new Date().toISOString(),
    temperature: 20,
    humidity: 50,
  }));

describe("a full spool", () => {
  test("a spool of 1 MiB fills: 503 with Retry-After, the gateway's MQTT PUBACK withheld, /readyz 503, refusals counted, nothing dropped; low disk is refused alike", async () => {
    const gateway = await spoolingGateway(await spoolDir(), {
      SPOOL_MAX_BYTES: String(1024 * 1024),
      ...mosquitto.gatewayEnv,
      MQTT_CONNECTIONS: "1",
      MQTT_CLIENT_ID: `full-${crypto.randomUUID().slice(0, 8)}`,
      MQTT_TOPIC_PREFIX: "full/v1",
      MQTT_SHARED_GROUP: `full-${crypto.randomUUID().slice(0, 8)}`,
    });
    const lowDisk = await spoolingGateway(await spoolDir(), { SPOOL_MIN_FREE_BYTES: String(2 ** 52) });
    const { runtime } = gateway;
    await Promise.all([runtime.ready, lowDisk.runtime.ready]);
    await broker.stop();

    const acknowledged = new Set<string>();
    let refusal: Response | undefined;
    for (let batch = 0; batch < 100 && !refusal; batch++) {
      const response = await post(runtime, "/v1/sensors/readings", readings("full", 200, batch * 200));
      if (response.status === 503) refusal = response;
      else {
        expect(response.status).toBe(202);
        expect(response.headers.get("sluice-spooled")).toBe("200");
        const body = (await response.json()) as { ids: string[]; spooled: number };
        expect(body.spooled).toBe(200);
        for (const id of body.ids) acknowledged.add(id);
      }
    }
    expect(refusal?.headers.get("retry-after")).toBe("5");
    expect(await refusal?.json()).toMatchObject({ type: "urn:sluice:problem:spool-full", status: 503 });
    expect(acknowledged.size).toBeGreaterThan(3000);
    const full = await readiness(runtime);
    expect(full.status).toBe(503);
    expect(full.body.checks.spool).toMatchObject({
      ok: false,
      error: expect.stringMatching(/spool is full/),
    });
    expect(await counterValue(runtime.metrics.spoolRefused, { reason: "full" })).toBe(200);
    // Filled until a single record (smaller than the MQTT message below) no longer fits.
    for (let n = 0; ; n++) {
      const single = await post(runtime, "/v1/sensors/readings", readings("full", 1, 50_000 + n));
      if (single.status === 503) break;
      expect(single.status).toBe(202);
      for (const id of ((await single.json()) as { ids: string[] }).ids) acknowledged.add(id);
    }

    // A message published now is not acknowledged by the gateway: Mosquitto keeps it, the gateway retries it.
    await eventually(() => runtime.mqtt?.connected());
    const device = await mqtt.connectAsync(mosquitto.url, {
      clientId: `full-${crypto.randomUUID()}`,
      ...mosquitto.fleet,
    });
    cleanups.push(() => device.endAsync(true));
    const mqttId = `full-mqtt-${crypto.randomUUID()}`;
    const body = {
      id: mqttId,
      ts: new Date().toISOString(),
      pm25: 4,
      temperature: 21.5,
      humidity: 40,
      co2: 800,
    };
    await device.publishAsync("full/v1/sensors/full-mqtt", JSON.stringify(body), { qos: 1 });
    await eventually(() => (runtime.mqtt?.stats.received ?? 0) >= 1);
    await Bun.sleep(3000);
    expect(runtime.mqtt?.stats.acknowledged).toBe(0);
    expect(await counterValue(runtime.metrics.spoolRefused, { reason: "full" })).toBeGreaterThan(201);

    const refusedLowDisk = await post(lowDisk.runtime, "/v1/sensors/readings", readings("low", 1));
    expect(refusedLowDisk.status).toBe(503);
    expect(((await refusedLowDisk.json()) as { detail: string }).detail).toMatch(/SPOOL_MIN_FREE_BYTES/);
    expect((await readiness(lowDisk.runtime)).status).toBe(503);
    expect(await counterValue(lowDisk.runtime.metrics.spoolRefused, { reason: "low-disk" })).toBe(1);

    await broker.start();
    const topics = await recordTopics([kindTopic(gateway.prefix, "sensors")], broker.brokers);
    cleanups.push(() => topics.stop());
    await topics.waitFor(
      (records) => orderPerSource(records, acknowledged).seen.size === acknowledged.size,
      60_000,
    );
    // Once there is room again, the withheld message goes in and the gateway acknowledges it.
    await topics.waitFor((records) => records.some((record) => record.value.id === mqttId), 30_000);
    await eventually(() => runtime.mqtt?.stats.acknowledged === 1);
    expect(orderPerSource(topics.records, acknowledged).backwards).toEqual([]);
    await eventually(spoolEmpty(runtime), 30_000);
    await eventually(async () => (await readiness(runtime)).status === 200, 30_000);
    const after = await post(runtime, "/v1/sensors/readings", readings("full", 1, 100_000));
    expect(after.status).toBe(202);
    expect(((await after.json()) as { spooled: number }).spooled).toBe(0);
  }, 120_000);
});

describe("a damaged spool entry", () => {
  test("is dead-lettered with the reason at restart, the others are forwarded, nothing crashes", async () => {
    const dir = await spoolDir();
    const first = await spoolingGateway(dir);
    await first.runtime.ready;
    await broker.stop();
    const response = await post(first.runtime, "/v1/sensors/readings", readings("damaged", 5));
    expect(response.status).toBe(202);
    expect(((await response.json()) as { spooled: number }).spooled).toBe(5);
    await first.close();

    const db = new Database(`${dir}/spool.db`);
    const [victim] = db.query("select seq from spooled order by seq limit 1 offset 2").all() as {
      seq: number;
    }[];
    db.run("update spooled set value = replace(value, 'damaged.2', 'damaged.X') where seq = ?", [
      victim?.seq ?? 0,
    ]);
    db.close();

    await broker.start();
    const second = await spoolingGateway(dir, {
      KAFKA_TOPIC_PREFIX: first.prefix,
      REDIS_KEY_PREFIX: first.prefix,
    });
    const topics = await recordTopics(
      [kindTopic(first.prefix, "sensors"), deadLetterTopic(first.prefix)],
      broker.brokers,
    );
    cleanups.push(() => topics.stop());
    const letter = await topics.waitFor(
      (records) => records.find((record) => record.topic === deadLetterTopic(first.prefix)),
      60_000,
    );
    expect(letter.key).toBe("damaged");
    expect(letter.value).toMatchObject({
      kind: "sensors",
      via: "http",
      reason: "corrupt-spool-entry",
      origin: `spool entry ${victim?.seq}`,
      errors: [{ path: "", message: expect.stringMatching(/checksum/) }],
      raw: expect.stringContaining("damaged.X"),
    });
    const ids = new Set(["damaged.0", "damaged.1", "damaged.3", "damaged.4"]);
    await topics.waitFor((records) => orderPerSource(records, ids).seen.size === 4);
    expect(await counterValue(second.runtime.metrics.spoolCorruptEntries)).toBe(1);
    await eventually(spoolEmpty(second.runtime));
  }, 120_000);
});
