import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqtt, { type MqttClient } from "mqtt";
import { allTopics, deadLetterTopic, kindTopic } from "../src/kafka/client";
import { createLogger } from "../src/log";
import { createRuntime, type Runtime } from "../src/runtime";
import {
  type ConsumedRecord,
  freePort,
  privateBroker,
  recordTopics,
  startMosquitto,
  startRuntime,
  testConfig,
  testDatabase,
  withTestKey,
} from "./helpers";

let mosquitto: Awaited<ReturnType<typeof startMosquitto>>;
let runtime: Runtime;
let topics: Awaited<ReturnType<typeof recordTopics>>;
let device: MqttClient;
let prefix: string;
const cleanups: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  mosquitto = await startMosquitto();
  runtime = await startRuntime({ ...mosquitto.gatewayEnv, MQTT_CONNECTIONS: "4", MQTT_CLIENT_ID: "gw-test" });
  prefix = runtime.config.KAFKA_TOPIC_PREFIX;
  topics = await recordTopics(allTopics(prefix));
  device = await mqtt.connectAsync(mosquitto.url, {
    clientId: `device-${crypto.randomUUID()}`,
    ...mosquitto.fleet,
  });
  for (let i = 0; i < 100 && !runtime.mqtt?.connected(); i++) await Bun.sleep(50);
}, 30_000);

afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await device.endAsync();
  await topics.stop();
  await runtime.close();
  await mosquitto.stop();
}, 60_000);

const now = () => new Date().toISOString();
const publish = (topic: string, payload: unknown, qos: 0 | 1 = 1) =>
  device.publishAsync(topic, typeof payload === "string" ? payload : JSON.stringify(payload), { qos });
const withIds = (ids: Set<string>) => (records: ConsumedRecord[]) =>
  records.filter((record) => ids.has(record.value.id as string));
const allArrived = (topic: string, ids: Set<string>) => (records: ConsumedRecord[]) => {
  const found = new Set(
    withIds(ids)(records)
      .filter((record) => record.topic === topic)
      .map((r) => r.value.id),
  );
  return found.size === ids.size && found;
};

describe("MQTT ingress", () => {
  test("/readyz includes the MQTT connections", async () => {
    const response = await runtime.app.request("/readyz");
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({ checks: { mqtt: { ok: true, critical: true } } });
  });

  const samples = {
    sensors: { temperature: 22.5, humidity: 45 },
    traffic: { visitorsIn: 5, transactions: 1 },
    weather: { temperature: 17.1, conditions: "light rain" },
  };
  for (const [kind, data] of Object.entries(samples)) {
    test(`${kind}: published to sluice/v1/${kind}/<id>, read back from Kafka keyed by the topic's source id`, async () => {
      const id = `mqtt-${kind}-${crypto.randomUUID()}`;
      const ts = now();
      await publish(`sluice/v1/${kind}/src-${kind}`, { id, ts, ...data });
      const record = await topics.waitFor((records) => records.find((r) => r.value.id === id));
      expect(record.topic).toBe(kindTopic(prefix, kind));
      expect(record.key).toBe(`src-${kind}`);
      expect(record.value).toEqual({
        id,
        kind,
        sourceId: `src-${kind}`,
        ts,
        receivedAt: expect.any(String),
        via: "mqtt",
        data: kind === "traffic" ? { ...data, currency: "EUR" } : data,
      });
    });
  }

  test("an array payload: each record arrives; naming the topic's own source id is fine", async () => {
    const ids = new Set([crypto.randomUUID(), crypto.randomUUID(), crypto.randomUUID()]);
    await publish(
      "sluice/v1/sensors/array-dev",
      [...ids].map((id, i) => ({
        id,
        ts: now(),
        co2: 400 + i,
        ...(i === 0 ? { deviceId: "array-dev" } : {}),
      })),
    );
    await topics.waitFor(allArrived(kindTopic(prefix, "sensors"), ids));
  });

  test("QoS 0 messages are accepted too", async () => {
    const id = crypto.randomUUID();
    await publish("sluice/v1/traffic/qos0-store", { id, ts: now(), visitorsIn: 1 }, 0);
    await topics.waitFor((records) => records.find((r) => r.value.id === id));
  });

  test("invalid payloads go to the dead-letter topic with reason, topic and raw payload, and valid traffic goes on", async () => {
    const marker = crypto.randomUUID();
    const cases: [string, string, string][] = [
      ["sluice/v1/sensors/dl-1", `not json ${marker}`, "malformed-body"],
      [
        "sluice/v1/sensors/dl-2",
        JSON.stringify({ ts: now(), temperature: 20, colour: marker }),
        "invalid-record",
      ],
      [
        "sluice/v1/sensors/dl-3",
        JSON.stringify({
          deviceId: "someone-else",
          ts: now(),
          pm25: 3,
          location: { lat: 0, lon: 0, city: marker },
        }),
        "invalid-record",
      ],
      ["sluice/v1/parcels/dl-4", JSON.stringify({ ts: now(), weight: marker }), "unknown-kind"],
      ["sluice/v1/sensors/dl-5/extra", JSON.stringify({ ts: now(), marker }), "unknown-kind"],
    ];
    for (const [topic, payload] of cases) await publish(topic, payload);
    const valid = crypto.randomUUID();
    await publish("sluice/v1/sensors/after-poison", { id: valid, ts: now(), temperature: 1 });

    const letters = await topics.waitFor((records) => {
      const found = records.filter(
        (r) => r.topic === deadLetterTopic(prefix) && String(r.value.raw).includes(marker),
      );
      return found.length === cases.length && found;
    });
    for (const [topic, payload, reason] of cases) {
      const letter = letters.find((l) => l.value.origin === topic);
      expect(letter?.value).toMatchObject({ via: "mqtt", reason, raw: payload });
    }
    const wrongSource = letters.find((l) => l.value.origin === "sluice/v1/sensors/dl-3");
    expect(wrongSource?.value.errors).toEqual([
      { index: 0, path: "deviceId", message: "does not match the source id in the topic (dl-3)" },
    ]);
    await topics.waitFor((records) => records.find((r) => r.value.id === valid));
  });

  test("a burst of 5000 QoS 1 messages: every one arrives", async () => {
    const ids = new Set(Array.from({ length: 5000 }, (_, i) => `burst-${i}-${crypto.randomUUID()}`));
    await Promise.all(
      [...ids].map((id, i) => publish(`sluice/v1/sensors/burst-${i % 50}`, { id, ts: now(), pm10: 9 })),
    );
    await topics.waitFor(allArrived(kindTopic(prefix, "sensors"), ids), 60_000);
  }, 90_000);
});

describe("MQTT credentials and ACL (the shipped config)", () => {
  test("anonymous clients and wrong passwords are refused", async () => {
    await expect(
      mqtt.connectAsync(mosquitto.url, { reconnectPeriod: 0, connectTimeout: 3000 }),
    ).rejects.toThrow();
    await expect(
      mqtt.connectAsync(mosquitto.url, { username: "sluice-gateway", password: "guess", reconnectPeriod: 0 }),
    ).rejects.toThrow();
  });

  test("a device publishes under its own id only; the gateway cannot publish at all", async () => {
    const password = await mosquitto.addDevice("acl-dev-1");
    const own = crypto.randomUUID();
    const foreign = crypto.randomUUID();
    const deviceClient = await mqtt.connectAsync(mosquitto.url, {
      username: "acl-dev-1",
      password,
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    await deviceClient.publishAsync(
      "sluice/v1/sensors/acl-dev-1",
      JSON.stringify({ id: own, ts: now(), co2: 500 }),
      { qos: 1 },
    );
    // Mosquitto answers an unauthorised QoS 1 publish with "not authorized" and drops it.
    await deviceClient
      .publishAsync("sluice/v1/sensors/acl-dev-2", JSON.stringify({ id: foreign, ts: now(), co2: 500 }), {
        qos: 1,
      })
      .catch(() => {});
    await deviceClient.endAsync();
    const gatewayAccount = await mqtt.connectAsync(mosquitto.url, {
      username: mosquitto.gatewayEnv.MQTT_USERNAME,
      password: mosquitto.gatewayEnv.MQTT_PASSWORD,
      protocolVersion: 5,
      reconnectPeriod: 0,
    });
    const forged = crypto.randomUUID();
    await gatewayAccount
      .publishAsync("sluice/v1/sensors/acl-dev-1", JSON.stringify({ id: forged, ts: now(), co2: 1 }), {
        qos: 1,
      })
      .catch(() => {});
    await gatewayAccount.endAsync();

    await topics.waitFor((records) => records.find((r) => r.value.id === own));
    await Bun.sleep(1000);
    const ids = new Set(topics.records.map((record) => record.value.id));
    expect(ids.has(foreign)).toBe(false);
    expect(ids.has(forged)).toBe(false);
  });
});

describe("MQTT delivery under faults", () => {
  test("Kafka stopped while messages arrive, then started: every message arrives", async () => {
    const broker = await privateBroker();
    cleanups.push(() => broker.remove());
    const database = await testDatabase();
    cleanups.push(() => database.drop());
    const gateway = withTestKey(
      createRuntime(
        testConfig({
          KAFKA_BROKERS: broker.brokers,
          DATABASE_URL: database.url,
          KAFKA_ACK_TIMEOUT_MS: "2000",
          ...mosquitto.gatewayEnv,
          MQTT_CONNECTIONS: "2",
          MQTT_CLIENT_ID: "gw-kafka-down",
          MQTT_TOPIC_PREFIX: "kd/v1",
          MQTT_SHARED_GROUP: "kafka-down",
          ROLES: "gateway",
        }),
        createLogger("silent"),
      ),
    );
    cleanups.push(() => gateway.close());
    await gateway.ready;
    const received = await recordTopics(
      [kindTopic(gateway.config.KAFKA_TOPIC_PREFIX, "sensors")],
      broker.brokers,
    );
    cleanups.push(() => received.stop());

    await broker.stop();
    const ids = new Set(Array.from({ length: 300 }, (_, i) => `kd-${i}-${crypto.randomUUID()}`));
    await Promise.all(
      [...ids].map((id, i) => publish(`kd/v1/sensors/kd-${i % 7}`, { id, ts: now(), co2: 500 })),
    );
    await Bun.sleep(3000);
    expect((await gateway.app.request("/readyz")).status).toBe(503);
    // Each connection read ahead, up to its receive maximum of 100, and acknowledged none of it.
    const stats = gateway.mqtt?.stats;
    expect(stats?.received).toBeGreaterThan(2);
    expect(stats?.received).toBeLessThanOrEqual(200);
    expect(stats?.acknowledged).toBe(0);
    await broker.start();
    await received.waitFor(allArrived(kindTopic(gateway.config.KAFKA_TOPIC_PREFIX, "sensors"), ids), 60_000);
  }, 120_000);

  test("a gateway killed with SIGKILL mid-stream and started again loses nothing the broker acknowledged", async () => {
    const config = testConfig();
    const database = await testDatabase();
    cleanups.push(() => database.drop());
    const port = await freePort();
    const env = {
      ...process.env,
      PORT: String(port),
      DATABASE_URL: database.url,
      KAFKA_BROKERS: config.KAFKA_BROKERS.join(","),
      KAFKA_TOPIC_PREFIX: config.KAFKA_TOPIC_PREFIX,
      ...mosquitto.gatewayEnv,
      MQTT_CLIENT_ID: "gw-killed",
      MQTT_CONNECTIONS: "4",
      MQTT_TOPIC_PREFIX: "kill/v1",
      MQTT_SHARED_GROUP: "killed",
      LOG_LEVEL: "warn",
    };
    const startGateway = async () => {
      const proc = Bun.spawn(["bun", "src/main.ts", "start"], {
        cwd: `${import.meta.dir}/..`,
        env,
        stdout: "ignore",
      });
      for (let i = 0; i < 200; i++) {
        const ready = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
        if (ready?.ok) return proc;
        await Bun.sleep(100);
      }
      throw new Error("gateway did not become ready");
    };
    let gateway = await startGateway();
    const received = await recordTopics([kindTopic(config.KAFKA_TOPIC_PREFIX, "traffic")]);
    cleanups.push(() => received.stop());
    const ids = Array.from({ length: 3000 }, (_, i) => `kill-${i}-${crypto.randomUUID()}`);
    const published: Promise<unknown>[] = [];
    for (const [i, id] of ids.entries()) {
      published.push(publish(`kill/v1/traffic/store-${i % 20}`, { id, ts: now(), visitorsIn: i % 50 }));
      if (i === 1000) {
        await Promise.all(published);
        gateway.kill("SIGKILL");
        await gateway.exited;
      }
      if (i % 100 === 0) await Bun.sleep(5);
    }
    await Promise.all(published);
    gateway = await startGateway();
    cleanups.push(async () => {
      gateway.kill("SIGTERM");
      await gateway.exited;
    });
    await received.waitFor(allArrived(kindTopic(config.KAFKA_TOPIC_PREFIX, "traffic"), new Set(ids)), 60_000);
  }, 120_000);
});
