import { parseArgs } from "node:util";
import { en, Faker } from "@faker-js/faker";
import mqtt, { type MqttClient } from "mqtt";
import { isKindName, type KindName, kindNames, kinds } from "../kinds";
import { type Device, type Simulator, simulators } from "./index";

const usage = `usage: bun run simulate [options]
  --kind ${kindNames.join("|")}|all   (default all; several separated by commas)
  --transport http|mqtt                (default http)
  --rate <records/s>                   all kinds together (default 20)
  --devices <n>                        per kind (default 20)
  --duration <s>                       0 runs until Ctrl-C (default 60)
  --batch <n>                          records per request or message (default 1)
  --invalid-ratio <0..1>               share of payloads that must be refused (default 0)
  --seed <n>                           repeatable data
  --backfill <e.g. 7d, 12h>            first write this much history, as fast as the gateway takes it
  --serve openweather|aviationstack|store  instead, serve that external API over HTTP until Ctrl-C, with
      [--port <n>] [--host <h>] [--api-key <k>] [--per-minute <n>] [--per-month <n>] [--devices <n>] [--seed <n>]
      (the key may come from SIMULATED_API_KEY instead of --api-key)
environment: SLUICE_URL (http://127.0.0.1:8080), API_KEY, MQTT_URL (mqtt://127.0.0.1:1883), MQTT_TOPIC_PREFIX (sluice/v1)`;

/** The environment variables the simulators read. */
export const simulatorEnv = [
  "SLUICE_URL",
  "API_KEY",
  "MQTT_URL",
  "MQTT_USERNAME",
  "MQTT_PASSWORD",
  "MQTT_TOPIC_PREFIX",
];

export interface SimulateOptions {
  kinds: KindName[];
  transport: "http" | "mqtt";
  rate: number;
  devices: number;
  durationSeconds: number;
  batch: number;
  invalidRatio: number;
  seed?: number;
  backfillMs: number;
}

export function parseSimulateArgs(argv: string[]): SimulateOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      kind: { type: "string", default: "all" },
      transport: { type: "string", default: "http" },
      rate: { type: "string", default: "20" },
      devices: { type: "string", default: "20" },
      duration: { type: "string", default: "60" },
      batch: { type: "string", default: "1" },
      "invalid-ratio": { type: "string", default: "0" },
      seed: { type: "string" },
      backfill: { type: "string" },
      help: { type: "boolean" },
    },
  });
  const fail = (message: string): never => {
    throw new Error(`${message}\n${usage}`);
  };
  if (values.help) fail("");
  const number = (name: string, value: string, min: number, max = Number.POSITIVE_INFINITY) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n < min || n > max) fail(`--${name} must be a number from ${min} to ${max}`);
    return n;
  };
  const chosen = values.kind === "all" ? kindNames : (values.kind ?? "").split(",");
  const unknown = chosen.find((name) => !isKindName(name));
  if (unknown !== undefined) fail(`--kind ${unknown} is not one of ${kindNames.join(", ")}, all`);
  if (values.transport !== "http" && values.transport !== "mqtt") fail("--transport must be http or mqtt");
  const backfill = values.backfill?.match(/^(\d+)([mhd])$/);
  if (values.backfill && !backfill) fail("--backfill takes a duration such as 30m, 12h or 7d");
  return {
    kinds: chosen.filter(isKindName),
    transport: values.transport as "http" | "mqtt",
    rate: number("rate", values.rate ?? "", 0.1),
    devices: Math.floor(number("devices", values.devices ?? "", 1)),
    durationSeconds: number("duration", values.duration ?? "", 0),
    batch: Math.floor(number("batch", values.batch ?? "", 1, 5000)),
    invalidRatio: number("invalid-ratio", values["invalid-ratio"] ?? "", 0, 1),
    seed: values.seed !== undefined ? number("seed", values.seed, 0) : undefined,
    backfillMs: backfill
      ? Number(backfill[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[backfill[2] as "m"]
      : 0,
  };
}

interface Counters {
  sent: number;
  acknowledged: number;
  rejected: number;
  /** Valid records the gateway refused, and transport failures. */
  errors: number;
  invalidSent: number;
}

interface Payload {
  body: Record<string, unknown>;
  valid: boolean;
}

/** Sends one batch of one kind's device; updates the counters with what the gateway said. */
type Send = (simulator: Simulator, device: Device, payloads: Payload[], counters: Counters) => Promise<void>;

function httpSender(baseUrl: string, apiKey?: string): Send {
  const paths = Object.fromEntries(
    kinds.map((kind) => [kind.name, `${baseUrl}/v1/${kind.name}/${kind.resource}`]),
  );
  return async (simulator, _device, payloads, counters) => {
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

function mqttSender(client: MqttClient, prefix: string): Send {
  return async (simulator, device, payloads, counters) => {
    const body = payloads.length === 1 ? payloads[0]?.body : payloads.map((payload) => payload.body);
    try {
      await client.publishAsync(`${prefix}/${simulator.kind}/${device.sourceId}`, JSON.stringify(body), {
        qos: 1,
      });
      // The broker acknowledges; whether the gateway refused an invalid payload shows in the dead-letter topic.
      for (const payload of payloads) {
        if (payload.valid) counters.acknowledged++;
        else counters.rejected++;
      }
    } catch {
      counters.errors += payloads.length;
    }
  };
}

/** Keeps at most `limit` sends in flight. */
function limiter(limit: number) {
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

export async function simulate(
  options: SimulateOptions,
  env: Record<string, string | undefined> = process.env,
) {
  const faker = new Faker({ locale: [en] });
  if (options.seed !== undefined) faker.seed(options.seed);
  const fleets = options.kinds.map((name) => {
    const simulator = simulators[name];
    return { simulator, devices: simulator.devices(options.devices, faker), next: 0 };
  });
  let client: MqttClient | undefined;
  let send: Send;
  if (options.transport === "mqtt") {
    client = await mqtt.connectAsync(env.MQTT_URL ?? "mqtt://127.0.0.1:1883", {
      clientId: `sluice-simulator-${process.pid}`,
      username: env.MQTT_USERNAME,
      password: env.MQTT_PASSWORD,
    });
    send = mqttSender(client, env.MQTT_TOPIC_PREFIX ?? "sluice/v1");
  } else {
    send = httpSender((env.SLUICE_URL ?? "http://127.0.0.1:8080").replace(/\/$/, ""), env.API_KEY);
  }
  const counters: Counters = { sent: 0, acknowledged: 0, rejected: 0, errors: 0, invalidSent: 0 };
  const inFlight = limiter(64);
  const payload = (simulator: Simulator, device: Device, at: Date): Payload => {
    const valid = faker.number.float() >= options.invalidRatio;
    if (!valid) counters.invalidSent++;
    counters.sent++;
    return {
      valid,
      body: valid ? simulator.reading(device, at, faker) : simulator.invalid(device, at, faker),
    };
  };

  const started = performance.now();
  let lastSent = 0;
  const progress = setInterval(() => {
    const seconds = (performance.now() - started) / 1000;
    const rate = counters.sent - lastSent;
    lastSent = counters.sent;
    console.log(
      `${seconds.toFixed(0)}s sent ${counters.sent} acknowledged ${counters.acknowledged} rejected ${counters.rejected} ` +
        `errors ${counters.errors} rate ${rate}/s`,
    );
  }, 1000);

  let stopped = false;
  const stop = () => {
    stopped = true;
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);

  if (options.backfillMs > 0) {
    // History, oldest first: every device reports at its kind's interval, sent in batches of 500.
    for (const { simulator, devices } of fleets) {
      const step = simulator.backfillEveryMinutes * 60_000;
      const end = Date.now() - 60_000;
      for (let at = end - options.backfillMs; at < end && !stopped; at += step) {
        for (let i = 0; i < devices.length && !stopped; i += 500) {
          const group = devices.slice(i, i + 500);
          const device = group[0] as Device;
          const payloads = group.map((d) => payload(simulator, d, new Date(at)));
          await inFlight.run(() => send(simulator, device, payloads, counters));
        }
      }
    }
    await inFlight.drain();
  }

  // Live: `rate` records a second in all, a batch at a time, round-robin over kinds and their devices.
  const liveStarted = performance.now();
  const sentBeforeLive = counters.sent;
  const deadline =
    options.durationSeconds > 0 ? liveStarted + options.durationSeconds * 1000 : Number.POSITIVE_INFINITY;
  let batches = 0;
  while (!stopped && performance.now() < deadline) {
    const due = Math.floor((((performance.now() - liveStarted) / 1000) * options.rate) / options.batch);
    for (; batches < due && !stopped; batches++) {
      const fleet = fleets[batches % fleets.length] as (typeof fleets)[number];
      const device = fleet.devices[fleet.next++ % fleet.devices.length] as Device;
      const now = new Date();
      const payloads = Array.from({ length: options.batch }, () => payload(fleet.simulator, device, now));
      await inFlight.run(() => send(fleet.simulator, device, payloads, counters));
    }
    await Bun.sleep(5);
  }
  await inFlight.drain();
  clearInterval(progress);
  await client?.endAsync();

  const seconds = (performance.now() - liveStarted) / 1000;
  const summary = {
    ...counters,
    liveSeconds: Math.round(seconds),
    achievedRate: Math.round(((counters.sent - sentBeforeLive) / Math.max(seconds, 0.001)) * 10) / 10,
  };
  console.log(`summary ${JSON.stringify(summary)}`);
  return summary;
}

export async function runSimulateCommand(argv: string[]) {
  if (argv.some((arg) => arg === "--serve" || arg.startsWith("--serve="))) {
    const { runServeCommand } = await import("./apis/serve");
    return runServeCommand(argv, usage);
  }
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(usage);
    return 0;
  }
  let options: SimulateOptions;
  try {
    options = parseSimulateArgs(argv);
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  const summary = await simulate(options);
  if (summary.errors > 0) {
    console.error(`the gateway refused or failed ${summary.errors} records it should have taken`);
    return 1;
  }
  return 0;
}
