import mqtt from "mqtt";
import { loadConfig } from "../src/config";
import { createLogger } from "../src/log";
import { createRuntime } from "../src/runtime";
import { startMosquitto } from "../test/helpers";
import type { Row } from "./http";
import { deleteTopics, root } from "./lib";

const COUNT = 30_000;

function publishAll(url: string, prefix: string, fleet: { username: string; password: string }) {
  const proc = Bun.spawn(["bun", "bench/mqtt-publisher.ts"], {
    cwd: root,
    env: {
      ...process.env,
      MQTT_URL: url,
      MQTT_USERNAME: fleet.username,
      MQTT_PASSWORD: fleet.password,
      PREFIX: prefix,
      COUNT: String(COUNT),
    },
    stdout: "pipe",
  });
  return proc.exited.then(
    async () => JSON.parse(await new Response(proc.stdout).text()) as { seconds: number },
  );
}

async function until(condition: () => boolean, timeoutMs: number) {
  const deadline = performance.now() + timeoutMs;
  while (!condition() && performance.now() < deadline) await Bun.sleep(5);
  return condition();
}

/** QoS 1 from publish to Kafka ack with delayed PUBACKs, against mqtt.js subscribers that ack at once. */
export async function benchMqtt(brokers: string, connections = 64): Promise<Row[]> {
  const mosquitto = await startMosquitto();
  try {
    // Baseline: the same pool size in a shared subscription, acknowledging on arrival, doing nothing else.
    let received = 0;
    const subscribers = await Promise.all(
      Array.from({ length: connections }, (_, i) =>
        mqtt.connectAsync(mosquitto.url, {
          clientId: `bench-sub-${i}`,
          protocolVersion: 5,
          username: mosquitto.gatewayEnv.MQTT_USERNAME,
          password: mosquitto.gatewayEnv.MQTT_PASSWORD,
        }),
      ),
    );
    for (const subscriber of subscribers) {
      subscriber.on("message", () => received++);
      await subscriber.subscribeAsync("$share/bare/bare/v1/#", { qos: 1 });
    }
    let started = performance.now();
    await publishAll(mosquitto.url, "bare/v1", mosquitto.fleet);
    await until(() => received >= COUNT, 60_000);
    const bareRate = received / ((performance.now() - started) / 1000);
    await Promise.all(subscribers.map((subscriber) => subscriber.endAsync()));

    const config = loadConfig({
      KAFKA_BROKERS: brokers,
      KAFKA_TOPIC_PREFIX: "bench",
      ROLES: "gateway",
      ...mosquitto.gatewayEnv,
      MQTT_CONNECTIONS: String(connections),
      MQTT_CLIENT_ID: "bench-gw",
      LOG_LEVEL: "warn",
    });
    const runtime = createRuntime(config, createLogger("warn"));
    await runtime.ready;
    const mqttStats = runtime.mqtt?.stats ?? { acknowledged: 0 };
    await until(() => runtime.mqtt?.connected() ?? false, 10_000);
    started = performance.now();
    await publishAll(mosquitto.url, "sluice/v1", mosquitto.fleet);
    const complete = await until(() => mqttStats.acknowledged >= COUNT, 120_000);
    const sluiceRate = mqttStats.acknowledged / ((performance.now() - started) / 1000);
    await runtime.close();
    return [
      {
        name: `MQTT QoS 1, ${COUNT} messages, ${connections} subscriber connections (msg/s)`,
        sluice: `${Math.round(sluiceRate)} published → in Kafka → PUBACK${complete ? "" : " (incomplete!)"}`,
        baseline: `${Math.round(bareRate)} mqtt.js subscribers acking at once`,
        ratio: sluiceRate / bareRate,
        goal: "≥ 0.5 and ≥ 10,000 msg/s",
      },
    ];
  } finally {
    await mosquitto.stop();
    await deleteTopics(brokers, "bench");
  }
}

if (import.meta.main) {
  const rows = await benchMqtt(process.env.KAFKA_BROKERS ?? "127.0.0.1:9092", Number(process.argv[2] ?? 16));
  console.log(rows);
}
