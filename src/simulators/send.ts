import mqtt, { type IClientOptions, type MqttClient } from "mqtt";
import { kinds } from "../kinds";
import type { Simulator } from "./simulator";

/** Where the simulators publish unless MQTT_URL says otherwise: the Mosquitto that scripts/up.sh runs. */
export const DEFAULT_MQTT_URL = "mqtt://127.0.0.1:1884";

export interface Counters {
  sent: number;
  acknowledged: number;
  rejected: number;
  /** Valid records the gateway refused, and transport failures. */
  errors: number;
  invalidSent: number;
}

export interface Payload {
  body: Record<string, unknown>;
  valid: boolean;
  /** The device's source id when it made the payload (an aircraft's moves on from flight to flight). */
  sourceId: string;
}

/** Sends one batch of one kind; updates the counters with what the gateway said. */
export type Send = (simulator: Simulator, payloads: Payload[], counters: Counters) => Promise<void>;

export function httpSender(baseUrl: string, apiKey?: string): Send {
  const paths = Object.fromEntries(
    kinds.map((kind) => [kind.name, `${baseUrl}/v1/${kind.name}/${kind.resource}`]),
  );
  return async (simulator, payloads, counters) => {
    const body = payloads.length === 1 ? payloads[0]?.body : payloads.map((payload) => payload.body);
    let response: Response;
    try {
      response = await fetch(paths[simulator.kind] as string, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}),
        },
        body: JSON.stringify(body),
      });
    } catch {
      counters.errors += payloads.length;
      return;
    }
    const answer = (await response.json().catch(() => ({}))) as { rejected?: { index: number }[] };
    if (response.status === 202) {
      const refused = new Set((answer.rejected ?? []).map((rejection) => rejection.index));
      payloads.forEach((payload, index) => {
        if (!refused.has(index)) counters.acknowledged++;
        else if (payload.valid) counters.errors++;
        else counters.rejected++;
      });
    } else if (response.status === 422 || response.status === 400) {
      for (const payload of payloads) {
        if (payload.valid) counters.errors++;
        else counters.rejected++;
      }
    } else counters.errors += payloads.length;
  };
}

/** Each source's payloads go to its own topic, one message each: the gateway refuses a payload naming another. */
export function mqttSender(client: MqttClient, prefix: string): Send {
  const publish = async (kind: string, sourceId: string, payloads: Payload[], counters: Counters) => {
    const body = payloads.length === 1 ? payloads[0]?.body : payloads.map((payload) => payload.body);
    try {
      await client.publishAsync(`${prefix}/${kind}/${sourceId}`, JSON.stringify(body), { qos: 1 });
      // The broker acknowledges; whether the gateway refused an invalid payload shows in the dead-letter topic.
      for (const payload of payloads) {
        if (payload.valid) counters.acknowledged++;
        else counters.rejected++;
      }
    } catch {
      counters.errors += payloads.length;
    }
  };
  return async (simulator, payloads, counters) => {
    const bySource = Map.groupBy(payloads, (payload) => payload.sourceId);
    await Promise.all(
      [...bySource].map(([sourceId, group]) => publish(simulator.kind, sourceId, group, counters)),
    );
  };
}

/** A failure to start that the command reports in one line, without a stack trace. */
export class SimulatorSetupError extends Error {}

/** The connection's options from MQTT_URL, parsed here (mqtt.js's own parsing warns of url.parse). */
function brokerOptions(url: string): IClientOptions {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new SimulatorSetupError(`MQTT_URL ${url} is not a URL such as ${DEFAULT_MQTT_URL}`);
  }
  const protocol = parsed.protocol.replace(/:$/, "");
  if (!["mqtt", "mqtts", "ws", "wss"].includes(protocol)) {
    throw new SimulatorSetupError(`MQTT_URL ${url}: the simulators speak mqtt://, mqtts://, ws:// or wss://`);
  }
  return {
    protocol: protocol as IClientOptions["protocol"],
    host: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
    ...(parsed.port ? { port: Number(parsed.port) } : {}),
    ...(protocol.startsWith("ws") ? { path: parsed.pathname } : {}),
  };
}

/** Connects to the broker, or says in one line what to set when it refuses or is not there. */
export async function connectMqtt(env: Record<string, string | undefined>): Promise<MqttClient> {
  const url = env.MQTT_URL || DEFAULT_MQTT_URL;
  const username = env.MQTT_USERNAME || undefined;
  const client = mqtt.connect({
    ...brokerOptions(url),
    clientId: `sluice-simulator-${process.pid}`,
    username,
    password: env.MQTT_PASSWORD || undefined,
    connectTimeout: 10_000,
  });
  let fail: (error: Error) => void = () => {};
  const failed = (error: Error) => fail(error);
  const closed = () => fail(new Error("the connection closed"));
  try {
    await new Promise<void>((resolve, reject) => {
      fail = reject;
      client.once("connect", () => resolve());
      client.on("error", failed).on("close", closed);
    });
  } catch (error) {
    client.off("close", closed);
    await client.endAsync(true).catch(() => {});
    const { code, message } = error as Error & { code?: string | number };
    if (code === 4 || code === 5 || code === 134 || code === 135) {
      throw new SimulatorSetupError(
        username
          ? `the MQTT broker at ${url} refused user ${username} (${message}): check MQTT_USERNAME and MQTT_PASSWORD`
          : `the MQTT broker at ${url} requires credentials (${message}): set MQTT_USERNAME and MQTT_PASSWORD ` +
              "(scripts/up.sh's simulator account is sluice-simulator, its password MQTT_SIMULATOR_PASSWORD)",
      );
    }
    throw new SimulatorSetupError(
      `cannot reach the MQTT broker at ${url} (${message}): start it (scripts/mosquitto.sh start) or set MQTT_URL`,
    );
  }
  client.off("close", closed).off("error", failed);
  // Once connected, a dropped connection is retried by mqtt.js and counted as send errors meanwhile.
  client.on("error", () => {});
  return client;
}

/** Keeps at most `limit` sends in flight. */
export function limiter(limit: number) {
  const running = new Set<Promise<void>>();
  return {
    async run(work: () => Promise<void>) {
      while (running.size >= limit) await Promise.race(running);
      const task = work().finally(() => running.delete(task));
      running.add(task);
    },
    drain: () => Promise.all(running),
  };
}
