import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { Kafka, logLevel } from "kafkajs";
import { allTopics, deadLetterTopic, kindTopic } from "../src/kafka/client";
import type { FieldError } from "../src/record";
import type { Runtime } from "../src/runtime";
import { brokers, type ConsumedRecord, post, recordTopics, startRuntime } from "./helpers";

let runtime: Runtime;
let topics: Awaited<ReturnType<typeof recordTopics>>;
let prefix: string;

beforeAll(async () => {
  runtime = await startRuntime({ MAX_BODY_BYTES: "20000", MAX_BATCH_ITEMS: "50", KAFKA_PARTITIONS: "2" });
  prefix = runtime.config.KAFKA_TOPIC_PREFIX;
  topics = await recordTopics(allTopics(prefix));
}, 30_000);

afterAll(async () => {
  await topics.stop();
  await runtime.close();
}, 60_000);

const iso = (offsetMs = 0) => new Date(Date.now() + offsetMs).toISOString();

const byId = (topic: string, id: string) => (records: ConsumedRecord[]) =>
  records.find((record) => record.topic === topic && record.value.id === id);

const deadLetters = (marker: string) => (records: ConsumedRecord[]) => {
  const found = records.filter(
    (record) => record.topic === deadLetterTopic(prefix) && String(record.value.raw).includes(marker),
  );
  return found.length > 0 && found;
};

const valid = {
  sensors: { path: "/v1/sensors/readings", body: { deviceId: "dev-42", temperature: 21.5, humidity: 40 } },
  traffic: {
    path: "/v1/traffic/counts",
    body: { storeId: "store-7", visitorsIn: 12, transactions: 3, revenue: 57.2 },
  },
  weather: {
    path: "/v1/weather/observations",
    body: { stationId: "casa-1", temperature: 18.2, city: "Casablanca" },
  },
} as const;

describe("each kind", () => {
  for (const [kind, { path, body }] of Object.entries(valid)) {
    test(`${kind}: a valid record is answered 202 and read back from ${kind}'s topic`, async () => {
      const ts = iso(-1000);
      const response = await post(runtime, path, { ...body, ts });
      expect(response.status).toBe(202);
      const result = (await response.json()) as { accepted: number; ids: string[]; rejected: unknown[] };
      expect(result.accepted).toBe(1);
      expect(result.rejected).toEqual([]);
      const id = result.ids[0] as string;

      const record = await topics.waitFor(byId(kindTopic(prefix, kind), id));
      const { [Object.keys(body)[0] as string]: sourceId, ...data } = body as Record<string, unknown>;
      expect(record.key).toBe(sourceId as string);
      expect(record.value).toEqual({
        id,
        kind,
        sourceId,
        ts,
        receivedAt: expect.any(String),
        via: "http",
        data: kind === "traffic" ? { ...data, currency: "EUR" } : data,
      });
      expect(Date.parse(record.value.receivedAt as string)).toBeGreaterThan(Date.parse(ts));
    });
  }
});

describe("body formats", () => {
  test("a JSON array: each record keyed by its source, the client's id kept, epoch ms normalised", async () => {
    const ts = Date.now() - 5000;
    const response = await post(runtime, "/v1/sensors/readings", [
      { id: "client-key-1", deviceId: "a-1", ts, pm25: 12 },
      { id: "client-key-2", deviceId: "b-2", ts: String(ts), co2: 800, location: { lat: 33.57, lon: -7.59 } },
    ]);
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({
      accepted: 2,
      rejected: [],
      ids: ["client-key-1", "client-key-2"],
    });
    const second = await topics.waitFor(byId(kindTopic(prefix, "sensors"), "client-key-2"));
    expect(second.key).toBe("b-2");
    expect(second.value.ts).toBe(new Date(ts).toISOString());
    expect(second.value.data).toEqual({ co2: 800, location: { lat: 33.57, lon: -7.59 } });
  });

  test("NDJSON: one record per line, a broken line rejected by its index", async () => {
    const lines = [
      JSON.stringify({ storeId: "nd-1", ts: iso(), visitorsIn: 4 }),
      "",
      "{not json",
      JSON.stringify({ storeId: "nd-2", ts: iso(), visitorsIn: 9, currency: "MAD" }),
    ].join("\n");
    const response = await post(runtime, "/v1/traffic/counts", lines, "application/x-ndjson");
    expect(response.status).toBe(202);
    const result = (await response.json()) as {
      accepted: number;
      ids: string[];
      rejected: { index: number }[];
    };
    expect(result.accepted).toBe(2);
    expect(result.rejected.map((rejection) => rejection.index)).toEqual([1]);
    const record = await topics.waitFor(byId(kindTopic(prefix, "traffic"), result.ids[1] as string));
    expect(record.value.data).toEqual({ visitorsIn: 9, currency: "MAD" });
    await topics.waitFor(deadLetters("{not json"));
  });

  test("CSV: a header row, numbers read as numbers, dotted names nest, quoted cells", async () => {
    const ts = iso(-2000);
    const csv = [
      "deviceId,ts,temperature,humidity,location.lat,location.lon,location.city",
      `csv-1,${ts},19.5,55,33.57,-7.59,"Casablanca, MA"`,
      `csv-2,${ts},,61,,,`,
    ].join("\r\n");
    const response = await post(runtime, "/v1/sensors/readings", csv, "text/csv; charset=utf-8");
    expect(response.status).toBe(202);
    const result = (await response.json()) as { accepted: number; ids: string[] };
    expect(result.accepted).toBe(2);
    const first = await topics.waitFor(byId(kindTopic(prefix, "sensors"), result.ids[0] as string));
    expect(first.value.data).toEqual({
      temperature: 19.5,
      humidity: 55,
      location: { lat: 33.57, lon: -7.59, city: "Casablanca, MA" },
    });
    const second = await topics.waitFor(byId(kindTopic(prefix, "sensors"), result.ids[1] as string));
    expect(second.value.data).toEqual({ humidity: 61 });
  });

  test("OpenWeather's current-weather body is normalised, Kelvin and metric alike", async () => {
    const dt = Math.floor(Date.now() / 1000) - 60;
    const openWeather = (temp: number, id: number) => ({
      coord: { lon: -7.6114, lat: 33.5883 },
      weather: [{ id: 800, main: "Clear", description: "clear sky", icon: "01d" }],
      base: "stations",
      main: { temp, feels_like: temp - 1, temp_min: temp, temp_max: temp, pressure: 1019, humidity: 64 },
      visibility: 10000,
      wind: { speed: 4.12, deg: 330 },
      rain: { "1h": 0.4 },
      clouds: { all: 0 },
      dt,
      sys: { type: 1, id: 2389, country: "MA", sunrise: dt - 20000, sunset: dt + 20000 },
      timezone: 3600,
      id,
      name: "Casablanca",
      cod: 200,
    });
    const response = await post(runtime, "/v1/weather/observations", [
      openWeather(291.35, 2553604),
      openWeather(18.2, 1),
    ]);
    expect(response.status).toBe(202);
    const result = (await response.json()) as { ids: string[] };
    expect(result.ids).toEqual([`owm-2553604-${dt}`, `owm-1-${dt}`]);
    const kelvin = await topics.waitFor(byId(kindTopic(prefix, "weather"), `owm-2553604-${dt}`));
    expect(kelvin.key).toBe("owm-2553604");
    expect(kelvin.value.ts).toBe(new Date(dt * 1000).toISOString());
    expect(kelvin.value.data).toEqual({
      temperature: 18.2,
      feelsLike: 17.2,
      humidity: 64,
      pressure: 1019,
      windSpeed: 4.12,
      windDeg: 330,
      clouds: 0,
      precipitation: 0.4,
      conditions: "clear sky",
      city: "Casablanca",
      lat: 33.5883,
      lon: -7.6114,
    });
    const metric = await topics.waitFor(byId(kindTopic(prefix, "weather"), `owm-1-${dt}`));
    expect((metric.value.data as { temperature: number }).temperature).toBe(18.2);
  });

  test("OpenWeather's 3-hour rain and snow are kept as they are, not stored as 0 mm an hour", async () => {
    const dt = Math.floor(Date.now() / 1000) - 120;
    const body = {
      main: { temp: 285.1 },
      dt,
      id: 2988507,
      name: "Paris",
      rain: { "3h": 2.5 },
      snow: { "3h": 0.5 },
    };
    const response = await post(runtime, "/v1/weather/observations", body);
    expect(response.status).toBe(202);
    const stored = await topics.waitFor(byId(kindTopic(prefix, "weather"), `owm-2988507-${dt}`));
    expect(stored.value.data).toEqual({ temperature: 11.95, precipitation3h: 3, city: "Paris" });
  });
});

describe("invalid input", () => {
  test("a batch with bad records: the good ones go through, each bad one is reported by path and dead-lettered", async () => {
    const marker = crypto.randomUUID();
    const response = await post(runtime, "/v1/sensors/readings", [
      { deviceId: "ok-1", ts: iso(), temperature: 20 },
      { deviceId: "bad-1", ts: iso(), humidity: 150, note: marker },
      { deviceId: "bad-2", ts: iso(3_600_000), temperature: 20, location: { lat: 91, lon: 0 } },
      { deviceId: "bad/3", ts: iso(-40 * 86_400_000), temperature: "warm" },
      "just a string",
    ]);
    expect(response.status).toBe(202);
    const result = (await response.json()) as {
      accepted: number;
      rejected: { index: number; errors: { path: string; message: string }[] }[];
    };
    expect(result.accepted).toBe(1);
    const paths = Object.fromEntries(
      result.rejected.map(({ index, errors }) => [index, errors.map((error) => error.path).sort()]),
    );
    expect(paths).toEqual({
      1: ["humidity", "note"],
      2: ["location.lat"],
      3: ["deviceId", "temperature"],
      4: [""],
    });
    const [letter] = await topics.waitFor(deadLetters(marker));
    expect(letter?.key).toBe("bad-1");
    expect(letter?.value).toMatchObject({
      kind: "sensors",
      via: "http",
      reason: "invalid-record",
      errors: expect.arrayContaining([{ index: 1, path: "note", message: "unknown field" }]),
    });
    expect(JSON.parse(String(letter?.value.raw))).toMatchObject({ note: marker, humidity: 150 });
  });

  test("timestamps outside the window: too far ahead, too old", async () => {
    const response = await post(runtime, "/v1/weather/observations", [
      { stationId: "w", ts: iso(6 * 60_000), temperature: 10 },
      { stationId: "w", ts: iso(-31 * 86_400_000), temperature: 10 },
      { stationId: "w", ts: "yesterday", temperature: 10 },
    ]);
    expect(response.status).toBe(422);
    const problem = (await response.json()) as { errors: { index: number; path: string; message: string }[] };
    expect(problem.errors.map((error) => [error.index, error.path])).toEqual([
      [0, "ts"],
      [1, "ts"],
      [2, "ts"],
    ]);
    expect(problem.errors[0]?.message).toContain("future");
    expect(problem.errors[1]?.message).toContain("older");
  });

  test("nothing valid: 422 problem+json with every error's index and path, each in the dead-letter topic", async () => {
    const marker = crypto.randomUUID();
    const response = await post(runtime, "/v1/traffic/counts", [
      { storeId: "s", ts: iso(), visitorsIn: -1, ref: marker },
      { storeId: "s", ts: iso(), visitorsIn: 1.5, currency: "euro", ref: marker },
    ]);
    expect(response.status).toBe(422);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    const problem = (await response.json()) as Record<string, unknown>;
    expect(problem).toMatchObject({ type: "urn:sluice:problem:invalid-records", status: 422 });
    expect(
      (problem.errors as { index: number; path: string }[]).map((e) => `${e.index}:${e.path}`).sort(),
    ).toEqual(["0:ref", "0:visitorsIn", "1:currency", "1:ref", "1:visitorsIn"]);
    const letters = await topics.waitFor((records) => {
      const found = deadLetters(marker)(records);
      return found && found.length === 2 && found;
    });
    expect(letters.map((letter) => letter.value.reason)).toEqual(["invalid-record", "invalid-record"]);
  });

  const wholeBodyCases: [string, string, string, number, string][] = [
    ["malformed JSON", "application/json", '{"deviceId": "x", MARK', 400, "malformed-body"],
    ["a JSON scalar", "application/json", '"MARK"', 400, "malformed-body"],
    ["an empty array", "application/json", "[]", 400, "empty-body"],
    ["an unsupported content type", "text/plain", "MARK", 415, "unsupported-media-type"],
    ["a CSV cell left open", "text/csv", 'deviceId,ts\n"MARK', 400, "malformed-body"],
  ];
  for (const [name, contentType, template, status, reason] of wholeBodyCases) {
    test(`${name}: ${status} problem+json, and the body in the dead-letter topic`, async () => {
      const marker = crypto.randomUUID();
      const body = template.replace("MARK", marker);
      const response = await post(runtime, "/v1/sensors/readings", body, contentType);
      expect(response.status).toBe(status);
      expect(response.headers.get("content-type")).toBe("application/problem+json");
      expect(await response.json()).toMatchObject({
        type: `urn:sluice:problem:${reason}`,
        status,
        detail: expect.any(String),
      });
      if (body.includes(marker)) {
        const [letter] = await topics.waitFor(deadLetters(marker));
        expect(letter?.value).toMatchObject({ reason, kind: "sensors", raw: body });
      }
    });
  }

  test("a body over MAX_BODY_BYTES is 413, declared or streamed", async () => {
    const big = JSON.stringify(
      Array.from({ length: 400 }, () => ({ deviceId: "big", ts: iso(), temperature: 1 })),
    );
    expect(big.length).toBeGreaterThan(20000);
    const declared = await post(runtime, "/v1/sensors/readings", big);
    expect(declared.status).toBe(413);
    const streamed = await runtime.app.request("/v1/sensors/readings", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new Blob([big]).stream(),
    });
    expect(streamed.status).toBe(413);
    expect(await streamed.json()).toMatchObject({ type: "urn:sluice:problem:body-too-large" });
  });

  test("a batch over MAX_BATCH_ITEMS is 413 naming the limit", async () => {
    const batch = Array.from({ length: 51 }, () => ({ deviceId: "d", ts: 1, temperature: 1 }));
    const response = await post(runtime, "/v1/sensors/readings", batch);
    expect(response.status).toBe(413);
    expect(((await response.json()) as { detail: string }).detail).toContain("limit of 50");
  });

  test("invalid UTF-8 is 400", async () => {
    const response = await runtime.app.request("/v1/sensors/readings", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new Uint8Array([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]),
    });
    expect(response.status).toBe(400);
    expect(((await response.json()) as { detail: string }).detail).toContain("UTF-8");
  });

  test("a number beyond the float range is 'number too large', not 'received Infinity'", async () => {
    const body = `{"deviceId":"big","ts":"${new Date().toISOString()}","temperature":1e400,"humidity":-1e400}`;
    const response = await post(runtime, "/v1/sensors/readings", body);
    expect(response.status).toBe(422);
    const problem = (await response.json()) as { errors: (FieldError & { index?: number })[] };
    expect(problem.errors).toEqual([
      { index: 0, path: "temperature", message: "number too large" },
      { index: 0, path: "humidity", message: "number too large" },
    ]);
  });

  test("a POST without a Content-Type is told which ones are accepted", async () => {
    const response = await runtime.app.request("/v1/sensors/readings", { method: "POST", body: "{}" });
    expect(response.status).toBe(415);
    expect(((await response.json()) as { detail: string }).detail).toBe(
      "a Content-Type is required: application/json, application/x-ndjson, text/csv",
    );
  });

  test("a time Sluice does not take is answered with the formats it does; lowercase t and z are RFC 3339", async () => {
    const stamp = new Date(Date.now() - 60_000).toISOString().slice(0, 19);
    const cases: [unknown, string][] = [
      [
        `${stamp.replace("T", " ").slice(0, 16)}`,
        "a time without an offset is ambiguous, add Z or ±hh:mm: ts takes ISO 8601",
      ],
      [stamp, "a time without an offset is ambiguous"],
      ["yesterday", "not a time: ts takes ISO 8601 with an offset, such as 2026-12-01T18:00:00Z"],
      [Math.floor(Date.now() / 1000), "ts takes epoch milliseconds;"],
    ];
    const records = cases.map(([ts]) => ({ deviceId: "ts-words", ts, temperature: 20 }));
    records.push({ deviceId: "ts-words", ts: `${stamp.replace("T", "t")}z`, temperature: 20 });
    const response = await post(runtime, "/v1/sensors/readings", records);
    expect(response.status).toBe(202);
    const result = (await response.json()) as {
      accepted: number;
      rejected: { index: number; errors: FieldError[] }[];
    };
    expect(result.accepted).toBe(1);
    cases.forEach(([, message], index) => {
      const rejection = result.rejected.find((candidate) => candidate.index === index);
      expect(rejection?.errors[0]?.path).toBe("ts");
      expect(rejection?.errors[0]?.message).toStartWith(message);
    });
  });

  test("/v1/deadletters honours limit and refuses unknown parameters, like every route", async () => {
    for (let i = 0; i < 3; i++)
      await post(runtime, "/v1/sensors/readings", { deviceId: "dl", ts: 1, pm25: 1 });
    const two = (await (await runtime.app.request("/v1/deadletters?limit=2")).json()) as { items: unknown[] };
    expect(two.items).toHaveLength(2);
    const unknown = await runtime.app.request("/v1/deadletters?since=yesterday");
    expect(unknown.status).toBe(400);
    expect(((await unknown.json()) as { errors: { path: string }[] }).errors[0]?.path).toBe("since");
  });

  test("a known path with a method it does not take is 405 with Allow", async () => {
    const response = await runtime.app.request("/v1/sensors/readings", { method: "DELETE" });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, HEAD, POST");
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    const kinds = await runtime.app.request("/v1/kinds", { method: "PUT" });
    expect(kinds.status).toBe(405);
    expect(kinds.headers.get("allow")).toBe("GET, HEAD");
  });

  test("an unknown route is a 404 problem", async () => {
    const response = await post(runtime, "/v1/parcels/records", {});
    expect(response.status).toBe(404);
    expect(response.headers.get("content-type")).toBe("application/problem+json");
  });
});

describe("Kafka side", () => {
  test("topics are created at start with the configured partitions", async () => {
    const kafka = new Kafka({ brokers: brokers.split(","), logLevel: logLevel.NOTHING });
    const admin = kafka.admin();
    await admin.connect();
    const metadata = await admin.fetchTopicMetadata({ topics: allTopics(prefix) });
    await admin.disconnect();
    expect(metadata.topics.map((topic) => [topic.name, topic.partitions.length]).sort()).toEqual(
      allTopics(prefix)
        .map((topic) => [topic, 2])
        .sort(),
    );
  });

  test("concurrent requests are gathered into shared sends (group commit), and every record arrives", async () => {
    const before = { ...runtime.publisher.stats };
    const requests = 200;
    const responses = await Promise.all(
      Array.from({ length: requests }, (_, i) =>
        post(runtime, "/v1/sensors/readings", { deviceId: `gc-${i % 10}`, ts: iso(), temperature: i % 100 }),
      ),
    );
    expect(responses.map((response) => response.status)).toEqual(responses.map(() => 202));
    const ids = new Set(
      (await Promise.all(responses.map((r) => r.json() as Promise<{ ids: string[] }>))).flatMap((r) => r.ids),
    );
    const sends = runtime.publisher.stats.sends - before.sends;
    expect(sends).toBeGreaterThan(0);
    expect(sends).toBeLessThan(requests / 4);
    const arrived = await topics.waitFor((records) => {
      const found = records.filter((record) => ids.has(record.value.id as string));
      return found.length === requests && found;
    });
    // One source's records stay in one partition, in the order they were acknowledged.
    const partitionsBySource = new Map<string, Set<number>>();
    for (const record of arrived) {
      const set = partitionsBySource.get(record.key as string) ?? new Set();
      set.add(record.partition);
      partitionsBySource.set(record.key as string, set);
    }
    expect([...partitionsBySource.values()].every((set) => set.size === 1)).toBe(true);
  });
});
