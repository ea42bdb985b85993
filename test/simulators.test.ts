import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { en, Faker } from "@faker-js/faker";
import type { KindName } from "../src/kinds";
import type { Runtime } from "../src/runtime";
import type { Device } from "../src/simulators";
import { simulators } from "../src/simulators";
import { fleetsOf, parseSimulateArgs, runSimulateCommand, simulate } from "../src/simulators/run";
import { DEFAULT_MQTT_URL } from "../src/simulators/send";
import { eventually, freePort, runSluice, startMosquitto, startRuntime, testKey } from "./helpers";

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
      // Stores no other test has: a backfill resumes after a store's newest record, and theirs are of now.
      "--first-device",
      "41",
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

  test("--first-device names other devices: up.sh's MQTT sensors are not its HTTP ones", async () => {
    const options = parseSimulateArgs(["--kind", "sensors", "--transport", "mqtt", "--rate", "30"]);
    const devices = { ...options, devices: 3, firstDevice: 21, durationSeconds: 1.5 };
    const summary = await simulate(devices, env);
    expect(summary.errors).toBe(0);
    const ids = ["casablanca-aq-021", "rabat-aq-022", "marrakesh-aq-023"];
    const latest = await eventually(async () => {
      const answer = await get(`/v1/sensors/latest?deviceId=${ids.join(",")}`);
      return answer.items.length === 3 && answer.items;
    });
    expect(latest.map((item: { sourceId: string; via: string }) => [item.sourceId, item.via])).toEqual(
      [...ids].sort().map((id) => [id, "mqtt"]),
    );

    // Device 21 is the one a run of 30 has, with the same seed.
    const from21 = fleetsOf({ kinds: ["sensors"], devices: 3, firstDevice: 21 }, faker(5))[0]?.devices;
    const of30 = fleetsOf({ kinds: ["sensors"], devices: 30, firstDevice: 1 }, faker(5))[0]?.devices;
    expect(from21).toEqual(of30?.slice(20, 23));

    // Every simulate line of scripts/up.sh names devices no other line has, of every kind it runs.
    const script = (await Bun.file(`${import.meta.dir}/../scripts/up.sh`).text()).replaceAll("\\\n", " ");
    const lines = [...script.matchAll(/src\/main\.ts simulate (--kind [^>]*)/g)].map((match) =>
      parseSimulateArgs((match[1] ?? "").trim().split(/\s+/)),
    );
    expect(lines.length).toBe(2);
    const seen = new Map<string, number>();
    for (const [line, fleets] of lines.map((line, n) => [n, fleetsOf(line, faker(1))] as const)) {
      for (const { devices: fleet } of fleets) {
        for (const device of fleet) {
          expect(seen.get(device.sourceId) ?? line).toBe(line);
          seen.set(device.sourceId, line);
        }
      }
    }
    expect(seen.size).toBe(20 * 2 + 10);
  });

  test("exits non-zero when the gateway refuses what it should have taken, and on bad arguments", async () => {
    const saved = process.env.SLUICE_URL;
    process.env.SLUICE_URL = `http://127.0.0.1:${await freePort()}`;
    try {
      expect(await runSimulateCommand(["--kind", "weather", "--rate", "10", "--duration", "1"])).toBe(1);
    } finally {
      process.env.SLUICE_URL = saved;
    }
    expect(await runSimulateCommand(["--kind", "parcels"])).toBe(2);
    expect(await runSimulateCommand(["--help"])).toBe(0);
    expect(await runSimulateCommand(["--backfill", "a week"])).toBe(2);
  });
});

describe("the command line", () => {
  /** `bun run simulate` as a user runs it, with the environment given (and no MQTT account of this shell). */
  const simulateCommand = (args: string[], extra: Record<string, string>) =>
    runSluice(["simulate", ...args], { MQTT_USERNAME: "", MQTT_PASSWORD: "", ...extra });
  const mqttRun = ["--kind", "sensors", "--transport", "mqtt", "--duration", "1"];

  test("a broker that wants credentials gets one line naming MQTT_USERNAME and MQTT_PASSWORD, not a stack trace", async () => {
    const { code, stdout, stderr } = await simulateCommand(mqttRun, { MQTT_URL: mosquitto.url });
    expect(code).toBe(1);
    expect(stdout).toBe("");
    expect(stderr.trim().split("\n")).toEqual([
      `the MQTT broker at ${mosquitto.url} requires credentials (Connection refused: Not authorized): set ` +
        "MQTT_USERNAME and MQTT_PASSWORD (scripts/up.sh's simulator account is sluice-simulator, its password " +
        "MQTT_SIMULATOR_PASSWORD)",
    ]);
    const wrong = await simulateCommand(mqttRun, {
      MQTT_URL: mosquitto.url,
      MQTT_USERNAME: mosquitto.fleet.username,
      MQTT_PASSWORD: "not-the-password",
    });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr.trim()).toBe(
      `the MQTT broker at ${mosquitto.url} refused user sluice-simulator (Connection refused: Not authorized): ` +
        "check MQTT_USERNAME and MQTT_PASSWORD",
    );
    const nobody = `mqtt://127.0.0.1:${await freePort()}`;
    const absent = await simulateCommand(mqttRun, { MQTT_URL: nobody });
    expect(absent.code).toBe(1);
    expect(absent.stderr.trim()).toStartWith(`cannot reach the MQTT broker at ${nobody} (`);
    expect(absent.stderr.trim().split("\n")).toHaveLength(1);
  }, 30_000);

  test("the default broker is up.sh's Mosquitto, and --help says what --rate is", async () => {
    const port = (await Bun.file(`${import.meta.dir}/../scripts/mosquitto.sh`).text()).match(
      /port=\$\{MQTT_PORT:-(\d+)\}/,
    )?.[1];
    expect(DEFAULT_MQTT_URL).toBe(`mqtt://127.0.0.1:${port}`);
    const { code, stdout } = await simulateCommand(["--help"], {});
    expect(code).toBe(0);
    expect(stdout).toContain(`MQTT_URL (${DEFAULT_MQTT_URL}`);
    const rate = stdout.slice(stdout.indexOf("--rate"), stdout.indexOf("--devices"));
    expect(rate).toContain("records a second, all kinds and devices together: 0.1 or more");
    expect(rate).toContain("RATE_LIMIT_PER_SECOND");
  }, 30_000);
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

  /** A store's visitors, transactions and revenue over [from, to), reporting every `everyMs`. */
  const countsOver = (device: Device, random: Faker, from: number, to: number, everyMs: number) => {
    simulators.traffic.reading(device, new Date(from), random); // its previous report
    const total = { visitorsIn: 0, visitorsOut: 0, transactions: 0, revenue: 0, reports: 0 };
    for (let at = from + everyMs; at <= to; at += everyMs) {
      const reading = simulators.traffic.reading(device, new Date(at), random);
      total.visitorsIn += reading.visitorsIn as number;
      total.visitorsOut += reading.visitorsOut as number;
      total.transactions += reading.transactions as number;
      total.revenue += reading.revenue as number;
      total.reports++;
    }
    return total;
  };
  /** Stores of one seed, whose counters never glitch: the glitches are for the quality flags' tests. */
  const stores = (count: number, seed: number) => {
    const devices = simulators.traffic.devices(count, faker(seed)) as Device<{ glitchesPerHour: number }>[];
    for (const device of devices) device.state.glitchesPerHour = 0;
    return devices as Device[];
  };
  const HOUR = 3_600_000;

  test("stores: closed at night, lunch busier than mid-morning, Saturday busier than Tuesday", () => {
    const random = faker(5);
    // Visitors in the hour from `hourUtc`, summed over ten stores reporting every 15 minutes.
    const visitors = (day: number, hourUtc: number) =>
      stores(10, 5).reduce((sum, device) => {
        const from = utc(day, hourUtc).getTime();
        return sum + countsOver(device, random, from, from + HOUR, 15 * 60_000).visitorsIn;
      }, 0);
    // 2026-11-21 is a Saturday, 2026-11-17 a Tuesday; the stores are at UTC+0 and UTC+1.
    expect(visitors(17, 1)).toBe(0);
    expect(visitors(17, 12)).toBeGreaterThan(visitors(17, 9) * 1.5);
    expect(visitors(21, 12)).toBeGreaterThan(visitors(17, 12) * 1.3);
    const [store] = stores(1, 5);
    const lunch = countsOver(
      store as Device,
      random,
      utc(17, 12).getTime(),
      utc(17, 13).getTime(),
      15 * 60_000,
    );
    expect(lunch.transactions / lunch.visitorsIn).toBeWithin(0.1, 0.45);
    // Each store reports the city it is in, which the traffic kind groups stores by.
    expect(simulators.traffic.reading(store as Device, utc(17, 13), random).city).toBe("Casablanca");
  });

  test("a store's hourly counts are the same whether it reports every 15 minutes or every 5 seconds", () => {
    // Saturday lunch: every store is open and busy.
    const [from, to] = [utc(21, 11).getTime(), utc(21, 12).getTime()];
    const [slowRandom, fastRandom] = [faker(1), faker(2)];
    const slow = stores(20, 8).map((device) => countsOver(device, slowRandom, from, to, 15 * 60_000));
    const fast = stores(20, 8).map((device) => countsOver(device, fastRandom, from, to, 5_000));
    expect(slow[0]?.reports).toBe(4);
    expect(fast[0]?.reports).toBe(720);
    slow.forEach((hour, i) => {
      const other = fast[i] as typeof hour;
      // Counts sized per report would be 180 times bigger at 5 s; what differs is rounding and basket sizes.
      expect(hour.visitorsIn).toBeWithin(50, 2000);
      const near = (a: number, b: number, share: number, least: number) =>
        expect(Math.abs(a - b)).toBeLessThanOrEqual(Math.max(least, share * b));
      near(other.visitorsIn, hour.visitorsIn, 0.02, 2);
      near(other.visitorsOut, hour.visitorsOut, 0.05, 3);
      near(other.transactions, hour.transactions, 0.05, 2);
      near(other.revenue, hour.revenue, 0.15, 0);
    });
  });

  test("a battery drains and the weather wanders as much in an hour whether reported often or seldom", () => {
    const [from, to] = [utc(20, 6).getTime(), utc(20, 12).getTime()];
    /** Every device's state after reporting from `from` to `to` every `everyMs`. */
    const after = <S>(kind: KindName, everyMs: number, pick: (state: S) => number) => {
      const random = faker(everyMs);
      return simulators[kind].devices(200, faker(4)).map((device) => {
        for (let at = from; at <= to; at += everyMs) simulators[kind].reading(device, new Date(at), random);
        return pick(device.state as S);
      });
    };
    const battery = (state: { battery: number }) => state.battery;
    expect(after("sensors", 10_000, battery)).toEqual(
      after("sensors", 5 * 60_000, battery).map((level) => expect.closeTo(level, 6)),
    );
    // How far pressure moved in six hours, over 200 stations: a random walk's spread, the same at either rate.
    const initial = simulators.weather
      .devices(200, faker(4))
      .map((d) => (d.state as { pressure: number }).pressure);
    const drift = (everyMs: number) => {
      const moved = after("weather", everyMs, (state: { pressure: number }) => state.pressure).map(
        (pressure, i) => pressure - (initial[i] as number),
      );
      return Math.sqrt(moved.reduce((sum, v) => sum + v ** 2, 0) / moved.length);
    };
    const [seldom, often] = [drift(30 * 60_000), drift(60_000)];
    expect(seldom).toBeWithin(0.5, 3);
    expect(often / seldom).toBeWithin(0.8, 1.25);
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

  interface FlightEndpoint {
    iata: string;
    delay: number | null;
    scheduled: string;
  }
  interface FlightItem {
    flight_date: string;
    flight_status: string;
    departure: FlightEndpoint;
    arrival: FlightEndpoint;
    flight: { iata: string };
    aircraft: { icao: string };
    live: { altitude: number; speed_horizontal: number; is_ground: boolean } | null;
  }
  /** An aircraft's readings from `from` for `hours`, grouped by flight (its source id), in flying order. */
  const flightsOf = (device: Device, random: Faker, from: number, hours: number, everyMinutes: number) => {
    const legs = new Map<string, FlightItem[]>();
    for (let at = from; at < from + hours * 3_600_000; at += everyMinutes * 60_000) {
      const body = simulators.flights.reading(device, new Date(at), random) as unknown as FlightItem;
      expect(device.sourceId).toBe(`${body.flight.iata}-${body.flight_date}`);
      legs.set(device.sourceId, [...(legs.get(device.sourceId) ?? []), body]);
    }
    return [...legs.values()];
  };

  test("flights: an aircraft flies leg after leg, climbing to cruise and landing, each under its flight id", () => {
    const { device, random } = first("flights", 11);
    const legs = flightsOf(device, random, utc(20, 0).getTime(), 24, 5);
    legs.slice(1).forEach((readings, i) => {
      expect(readings[0]?.departure.iata).toBe(legs[i]?.[0]?.arrival.iata as string);
    });
    const whole = legs.filter((readings) => readings.at(-1)?.flight_status === "landed");
    expect(whole.length).toBeGreaterThanOrEqual(3);
    for (const readings of whole) {
      expect([...new Set(readings.map((reading) => reading.flight_status))]).toEqual([
        "scheduled",
        "active",
        "landed",
      ]);
      for (const reading of readings) expect(reading.live === null).toBe(reading.flight_status !== "active");
      const positions = readings.flatMap((reading) => (reading.live ? [reading.live] : []));
      const altitudes = positions.map((live) => live.altitude);
      const cruise = Math.max(...altitudes);
      const top = altitudes.indexOf(cruise);
      expect(cruise).toBeGreaterThan(9000);
      // Up to the top of climb, then down again, with the wheels on the ground only at zero altitude.
      const [climb, descent] = [altitudes.slice(0, top + 1), altitudes.slice(top)];
      expect(climb).toEqual(climb.toSorted((a, b) => a - b));
      expect(descent).toEqual(descent.toSorted((a, b) => b - a));
      expect(positions.some((live) => live.is_ground)).toBe(true);
      for (const live of positions) {
        if (live.is_ground) expect(live.altitude).toBe(0);
        if (live.is_ground) expect(live.speed_horizontal).toBeLessThan(40);
        if (live.altitude === cruise) expect(live.speed_horizontal).toBeWithin(700, 1000);
      }
    }
  });

  test("flights: a late inbound makes the aircraft's next departure late", async () => {
    const { aircraftTypes } = await import("../src/simulators/airports");
    const carried: { previous: FlightItem; next: FlightItem; buffer: number }[] = [];
    for (const seed of [1, 2, 3]) {
      const random = faker(seed);
      for (const device of simulators.flights.devices(10, random)) {
        const legs = flightsOf(device, random, utc(10, 0).getTime(), 72, 10).map((readings) =>
          readings.at(-1),
        );
        legs.slice(1).forEach((next, i) => {
          const previous = legs[i];
          if (!next || previous?.flight_status !== "landed" || next.flight_status === "cancelled") return;
          const ground =
            (Date.parse(next.departure.scheduled) - Date.parse(previous.arrival.scheduled)) / 60_000;
          // The turnaround buffer: what of the scheduled ground time the aircraft can do without.
          const buffer = ground - (aircraftTypes[next.aircraft.icao]?.minTurn ?? 0);
          const late = (endpoint: FlightEndpoint) => (endpoint.delay ?? 0) > buffer;
          if (ground < 6 * 60 && late(previous.departure) && late(previous.arrival))
            carried.push({ previous, next, buffer });
        });
      }
    }
    expect(carried.length).toBeGreaterThan(5);
    for (const { previous, next, buffer } of carried) {
      expect(next.departure.delay).toBeGreaterThan(0);
      expect(next.departure.delay).toBeGreaterThanOrEqual((previous.arrival.delay ?? 0) - buffer);
    }
  });

  test("flights: a day of readings of every aircraft is accepted by the gateway, an invalid one refused", async () => {
    const random = faker(5);
    const devices = simulators.flights.devices(12, random);
    const post = (body: unknown) =>
      runtime.app.request("/v1/flights/statuses", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const now = Date.now();
    const statuses = new Set<string>();
    for (const device of devices) {
      const readings = [];
      for (let at = now - 25 * 3_600_000; at < now; at += 10 * 60_000) {
        const reading = simulators.flights.reading(device, new Date(at), random);
        statuses.add(reading.flight_status as string);
        readings.push(reading);
      }
      const response = await post(readings);
      expect(response.status).toBe(202);
      const answer = (await response.json()) as { ids: string[]; rejected: unknown[] };
      expect(answer.rejected).toEqual([]);
      // The gateway's flight id, derived from the body, is the source id the MQTT topic would carry.
      expect(answer.ids.at(-1)).toStartWith(`${device.sourceId}-`);
    }
    expect(statuses).toContain("active");
    expect(statuses).toContain("landed");
    for (let i = 0; i < 4; i++) {
      const response = await post(simulators.flights.invalid(devices[i] as Device, new Date(now), random));
      expect(response.status).toBe(422);
    }
  });
});
