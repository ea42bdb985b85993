import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { en, Faker } from "@faker-js/faker";
import type { KindName } from "../src/kinds";
import type { Runtime } from "../src/runtime";
import type { Device } from "../src/simulators";
import { simulators } from "../src/simulators";
import { parseSimulateArgs, runSimulateCommand, simulate } from "../src/simulators/run";
import { eventually, freePort, startMosquitto, startRuntime, testKey } from "./helpers";

let mosquitto: Awaited<ReturnType<typeof startMosquitto>>;
let runtime: Runtime;
let server: ReturnType<typeof Bun.serve>;
let env: Record<string, string>;

beforeAll(async () => {
  mosquitto = await startMosquitto();
  runtime = await startRuntime({
    ...mosquitto.gatewayEnv,
    MQTT_CONNECTIONS: "2",
    MQTT_CLIENT_ID: "sim-test",
  });
  server = Bun.serve({ port: await freePort(), hostname: "127.0.0.1", fetch: runtime.app.fetch });
  env = {
    SLUICE_URL: server.url.href,
    MQTT_URL: mosquitto.url,
    MQTT_USERNAME: mosquitto.fleet.username,
    MQTT_PASSWORD: mosquitto.fleet.password,
    API_KEY: testKey,
  };
}, 30_000);

afterAll(async () => {
  await server.stop(true);
  await runtime.close();
  await mosquitto.stop();
}, 30_000);

// biome-ignore lint/suspicious/noExplicitAny: JSON answers
const get = async (path: string): Promise<any> => (await runtime.app.request(path)).json();
const faker = (seed: number) => {
  const instance = new Faker({ locale: [en] });
  instance.seed(seed);
  return instance;
};
const utc = (day: number, hour: number) => new Date(Date.UTC(2026, 10, day, hour, 0, 0));

describe("the runner", () => {
  test("holds the asked rate over HTTP, and every invalid payload it sends is refused", async () => {
    const options = parseSimulateArgs([
      "--kind",
      "all",
      "--rate",
      "60",
      "--duration",
      "4",
      "--invalid-ratio",
      "0.25",
    ]);
    const summary = await simulate({ ...options, seed: 7 }, env);
    expect(summary.achievedRate).toBeGreaterThan(60 * 0.95);
    expect(summary.achievedRate).toBeLessThan(60 * 1.05);
    expect(summary.errors).toBe(0);
    expect(summary.invalidSent).toBeGreaterThan(0);
    expect(summary.rejected).toBe(summary.invalidSent);
    expect(summary.acknowledged).toBe(summary.sent - summary.invalidSent);
  });

  test("batches over MQTT reach the store, spread over the devices", async () => {
    const options = parseSimulateArgs([
      "--kind",
      "sensors",
      "--transport",
      "mqtt",
      "--rate",
      "40",
      "--devices",
      "5",
    ]);
    const summary = await simulate({ ...options, durationSeconds: 2, batch: 4 }, env);
    expect(summary.errors).toBe(0);
    const latest = await eventually(async () => {
      const answer = await get("/v1/sensors/latest");
      const viaMqtt = answer.items.filter((item: { via: string }) => item.via === "mqtt");
      return viaMqtt.length === 5 && viaMqtt;
    });
    expect(latest.map((item: { sourceId: string }) => item.sourceId)).toEqual([
      "casablanca-aq-001",
      "lyon-aq-005",
      "marrakesh-aq-003",
      "paris-aq-004",
      "rabat-aq-002",
    ]);
  });

  test("--backfill writes history that aggregates show, and the store's counter glitches are flagged", async () => {
    const options = parseSimulateArgs([
      "--kind",
      "traffic",
      "--devices",
      "10",
      "--backfill",
      "3d",
      "--seed",
      "3",
    ]);
    const summary = await simulate({ ...options, durationSeconds: 0.5 }, env);
    expect(summary.errors).toBe(0);
    const daily = await eventually(async () => {
      const answer = await get("/v1/traffic/aggregates?bucket=1d&includeSuspect=true");
      const total = answer.items.reduce((sum: number, item: { count: number }) => sum + item.count, 0);
      return total >= summary.acknowledged && answer;
    }, 30_000);
    expect(daily.items.length).toBeGreaterThanOrEqual(3);
    const flagged = await get(`/v1/traffic/aggregates?bucket=1d&includeSuspect=true&metrics=visitorsIn`);
    const clean = await get(`/v1/traffic/aggregates?bucket=1d&metrics=visitorsIn`);
    const max = (answer: { items: { metrics: { visitorsIn: { max: number } } }[] }) =>
      Math.max(...answer.items.map((item) => item.metrics.visitorsIn.max ?? 0));
    expect(max(flagged)).toBeGreaterThan(2000);
    expect(max(clean)).toBeLessThanOrEqual(2000);
  }, 60_000);

  test("exits non-zero when the gateway refuses what it should have taken, and on bad arguments", async () => {
    const saved = process.env.SLUICE_URL;
    process.env.SLUICE_URL = `http://127.0.0.1:${await freePort()}`;
    try {
      expect(await runSimulateCommand(["--kind", "weather", "--rate", "10", "--duration", "1"])).toBe(1);
    } finally {
      process.env.SLUICE_URL = saved;
    }
    expect(await runSimulateCommand(["--kind", "parcels"])).toBe(2);
    expect(await runSimulateCommand(["--backfill", "a week"])).toBe(2);
  });
});

describe("realistic data", () => {
  const first = <S>(kind: KindName, seed: number) => {
    const simulator = simulators[kind];
    const random = faker(seed);
    const [device] = simulator.devices(1, random) as Device<S>[];
    return { simulator, device: device as Device, random };
  };

  test("--seed makes a run repeatable", () => {
    const a = first("sensors", 42);
    const b = first("sensors", 42);
    const at = utc(20, 12);
    expect(a.simulator.reading(a.device, at, a.random)).toEqual(b.simulator.reading(b.device, at, b.random));
  });

  test("sensors in Casablanca: warmer in the afternoon, damper at night, dirtier at rush hour", () => {
    const { simulator, device, random } = first("sensors", 1);
    expect(device.sourceId).toStartWith("casablanca");
    const mean = (hourUtc: number, field: string) => {
      let sum = 0;
      for (let day = 1; day <= 20; day++)
        sum += simulator.reading(device, utc(day, hourUtc), random)[field] as number;
      return sum / 20;
    };
    // Casablanca is UTC+1: 14:00 UTC is mid-afternoon, 03:00 UTC the small hours, 07:30 UTC the morning rush.
    expect(mean(14, "temperature")).toBeGreaterThan(mean(3, "temperature") + 5);
    expect(mean(3, "humidity")).toBeGreaterThan(mean(14, "humidity") + 10);
    expect(mean(7.5, "pm25")).toBeGreaterThan(mean(2, "pm25") * 1.5);
  });

  test("stores: closed at night, lunch busier than mid-morning, Saturday busier than Tuesday", () => {
    const { simulator, device, random } = first("traffic", 5);
    const visitors = (day: number, hourUtc: number) => {
      let sum = 0;
      for (let i = 0; i < 30; i++)
        sum += simulator.reading(device, utc(day, hourUtc), random).visitorsIn as number;
      return sum / 30;
    };
    // 2026-11-21 is a Saturday, 2026-11-17 a Tuesday; the store is in Casablanca (UTC+1).
    expect(visitors(17, 1)).toBe(0);
    expect(visitors(17, 12)).toBeGreaterThan(visitors(17, 9) * 1.5);
    expect(visitors(21, 12)).toBeGreaterThan(visitors(17, 12) * 1.3);
    const reading = simulator.reading(device, utc(17, 12), random);
    const rate = (reading.transactions as number) / (reading.visitorsIn as number);
    expect(rate).toBeGreaterThan(0.1);
    expect(rate).toBeLessThan(0.45);
  });

  test("weather stations report in OpenWeather's shape, which the gateway accepts", async () => {
    const { simulator, device, random } = first("weather", 9);
    const body = simulator.reading(device, new Date(), random);
    expect(Object.keys(body)).toEqual(
      expect.arrayContaining(["coord", "weather", "main", "wind", "clouds", "dt", "id", "name"]),
    );
    const response = await runtime.app.request("/v1/weather/observations", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(response.status).toBe(202);
  });
});
