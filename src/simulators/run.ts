import { parseArgs } from "node:util";
import { en, Faker } from "@faker-js/faker";
import type { MqttClient } from "mqtt";
import { findKind, isKindName, type KindName, kindNames } from "../kinds";
import { BACKFILL_SEED, backfill, backfillId, storedNewest } from "./backfill";
import { type Device, type Simulator, simulators } from "./index";
import {
  type Counters,
  connectMqtt,
  DEFAULT_MQTT_URL,
  httpSender,
  limiter,
  mqttSender,
  type Payload,
  type Send,
  SimulatorSetupError,
} from "./send";

const usage = `usage: bun run simulate [options]
  --kind ${kindNames.join("|")}|all   (default all; several separated by commas)
  --transport http|mqtt                (default http)
  --rate <records/s>                   live records a second, all kinds and devices together: 0.1 or more
                                       (default 20); each device reads every kinds × devices / rate seconds.
                                       Held while the gateway keeps up with 64 sends in flight (the summary
                                       says what was achieved); over RATE_LIMIT_PER_SECOND requests a second
                                       (1000 by default) it answers 429, so send more per request with --batch.
                                       The backfill does not use it
  --devices <n>                        per kind, 1 or more (default 20)
  --first-device <n>                   the number of the first (default 1): --devices 10 --first-device 21 are
                                       devices 21 to 30 (casablanca-aq-021, …), which a run of --devices 20 has not
  --duration <s>                       of the live part, after any backfill; 0 runs until Ctrl-C (default 60)
  --batch <n>                          records per request or message, 1 to 5000 (default 1): a device's
                                       readings since its previous batch
  --invalid-ratio <0..1>               share of payloads that must be refused (default 0)
  --seed <n>                           repeatable data (default random; ${BACKFILL_SEED} with --backfill)
  --backfill <e.g. 7d, 12h, 30m>       first write this much history, as fast as the gateway takes it: every
                                       device at its kind's interval, on a fixed UTC grid, with ids derived from
                                       kind, source and time, so that running it again stores nothing twice;
                                       each device resumes after its newest stored record (GET /v1/<kind>/latest
                                       with API_KEY; the whole window when the gateway cannot tell)
  --serve openweather|aviationstack|store  instead, serve that external API over HTTP until Ctrl-C, with
      [--port <n>] [--host <h>] [--api-key <k>] [--per-minute <n>] [--per-month <n>] [--devices <n>] [--seed <n>]
      (the key may come from SIMULATED_API_KEY instead of --api-key)
environment: SLUICE_URL (http://127.0.0.1:8080), API_KEY, MQTT_TOPIC_PREFIX (sluice/v1),
  MQTT_URL (${DEFAULT_MQTT_URL}, the Mosquitto of scripts/up.sh), MQTT_USERNAME and MQTT_PASSWORD
  (the shipped Mosquitto config requires them: scripts/up.sh's account is sluice-simulator)`;

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
  /** Devices are numbered from this one on, so that two runs can simulate different devices. */
  firstDevice: number;
  durationSeconds: number;
  batch: number;
  invalidRatio: number;
  seed?: number;
  backfillMs: number;
  /** The moment the backfill reaches (epoch ms): the clock unless a test says otherwise. */
  backfillUntil?: number;
}

export function parseSimulateArgs(argv: string[]): SimulateOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      kind: { type: "string", default: "all" },
      transport: { type: "string", default: "http" },
      rate: { type: "string", default: "20" },
      devices: { type: "string", default: "20" },
      "first-device": { type: "string", default: "1" },
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
    firstDevice: Math.floor(number("first-device", values["first-device"] ?? "", 1)),
    durationSeconds: number("duration", values.duration ?? "", 0),
    batch: Math.floor(number("batch", values.batch ?? "", 1, 5000)),
    invalidRatio: number("invalid-ratio", values["invalid-ratio"] ?? "", 0, 1),
    seed: values.seed !== undefined ? number("seed", values.seed, 0) : undefined,
    backfillMs: backfill
      ? Number(backfill[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[backfill[2] as "m"]
      : 0,
  };
}

/** Each kind's simulated devices, numbered from `firstDevice`. */
export function fleetsOf(options: Pick<SimulateOptions, "kinds" | "devices" | "firstDevice">, faker: Faker) {
  // The devices before the first are made and dropped: device 21 is the one a run of 30 has (with its seed).
  const skipped = options.firstDevice - 1;
  return options.kinds.map((name) => {
    const simulator = simulators[name];
    return { simulator, devices: simulator.devices(skipped + options.devices, faker).slice(skipped) };
  });
}

export async function simulate(
  options: SimulateOptions,
  env: Record<string, string | undefined> = process.env,
) {
  const faker = new Faker({ locale: [en] });
  // A backfill makes the same devices every time, so that a rerun writes the same history (see backfill.ts).
  const seed = options.seed ?? (options.backfillMs > 0 ? BACKFILL_SEED : undefined);
  if (seed !== undefined) faker.seed(seed);
  const fleets = fleetsOf(options, faker).map((fleet) => ({ ...fleet, next: 0 }));
  const sluiceUrl = (env.SLUICE_URL || "http://127.0.0.1:8080").replace(/\/$/, "");
  let client: MqttClient | undefined;
  let send: Send;
  if (options.transport === "mqtt") {
    client = await connectMqtt(env);
    send = mqttSender(client, env.MQTT_TOPIC_PREFIX || "sluice/v1");
  } else {
    send = httpSender(sluiceUrl, env.API_KEY);
  }
  const counters: Counters = { sent: 0, acknowledged: 0, rejected: 0, errors: 0, invalidSent: 0 };
  const inFlight = limiter(64);
  /** When each device last made a reading: its next one covers the time since (a store counts its visitors). */
  const last = new Map<Device, number>();
  const payload = (simulator: Simulator, device: Device, at: number, backfill: boolean): Payload => {
    const valid = faker.number.float() >= options.invalidRatio;
    const when = new Date(at);
    const body = valid ? simulator.reading(device, when, faker) : simulator.invalid(device, when, faker);
    last.set(device, at);
    // A body in another API's shape (OpenWeather, AviationStack) has an id the gateway derives from it.
    if (backfill && valid && !findKind(simulator.kind)?.alternate?.detect(body)) {
      body.id = backfillId(simulator.kind, device.sourceId, at);
    }
    return { body, valid, sourceId: device.sourceId };
  };
  /** Starts a device off as if it had reported at `at`: that reading is made and dropped. */
  const prime = (simulator: Simulator, device: Device, at: number) => {
    simulator.reading(device, new Date(at), faker);
    last.set(device, at);
    return at;
  };
  const dispatch = (simulator: Simulator, payloads: Payload[]) => {
    counters.sent += payloads.length;
    counters.invalidSent += payloads.filter((payload) => !payload.valid).length;
    return inFlight.run(() => send(simulator, payloads, counters));
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
    await backfill({
      fleets,
      spanMs: options.backfillMs,
      until: options.backfillUntil ?? Date.now(),
      stored: storedNewest(sluiceUrl, env.API_KEY),
      prime,
      payload: (simulator, device, at) => payload(simulator, device, at, true),
      dispatch,
      stopped: () => stopped,
    });
    await inFlight.drain();
    // The live part need not repeat itself from run to run.
    if (options.seed === undefined) faker.seed();
  }

  // Live: `rate` records a second in all, a batch at a time, round-robin over kinds and their devices. A batch
  // holds one device's readings since its previous batch, spread evenly up to now.
  const liveStarted = performance.now();
  const sentBeforeLive = counters.sent;
  const deadline =
    options.durationSeconds > 0 ? liveStarted + options.durationSeconds * 1000 : Number.POSITIVE_INFINITY;
  const batchEveryMs = (fleets.length * options.devices * options.batch * 1000) / options.rate;
  let batches = 0;
  while (!stopped && performance.now() < deadline) {
    const due = Math.floor((((performance.now() - liveStarted) / 1000) * options.rate) / options.batch);
    for (; batches < due && !stopped; batches++) {
      const fleet = fleets[batches % fleets.length] as (typeof fleets)[number];
      const device = fleet.devices[fleet.next++ % fleet.devices.length] as Device;
      const now = Date.now();
      const from = last.get(device) ?? prime(fleet.simulator, device, now - batchEveryMs);
      const payloads = Array.from({ length: options.batch }, (_, j) =>
        payload(fleet.simulator, device, Math.round(from + ((j + 1) * (now - from)) / options.batch), false),
      );
      await dispatch(fleet.simulator, payloads);
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
  let summary: Awaited<ReturnType<typeof simulate>>;
  try {
    summary = await simulate(options);
  } catch (error) {
    if (!(error instanceof SimulatorSetupError)) throw error;
    console.error(error.message);
    return 1;
  }
  if (summary.errors > 0) {
    console.error(`the gateway refused or failed ${summary.errors} records it should have taken`);
    return 1;
  }
  return 0;
}
