import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { eq } from "drizzle-orm";
import { parseCsv, toCsv } from "../src/csv";
import { kindTables } from "../src/db/schema";
import { kindTopic } from "../src/kafka/client";
import { sensors } from "../src/kinds/sensors";
import type { Runtime } from "../src/runtime";
import { counterValue, eventually, post, startRuntime, tcpProxy, testDatabase } from "./helpers";

const HOUR = 3_600_000;
const MINUTE = 60_000;
// An hour that closed at least two hours ago: its buckets are all closed, whatever the time of the run.
const base = Math.floor((Date.now() - 3 * HOUR) / HOUR) * HOUR;
const at = (ms: number) => new Date(base + ms).toISOString();

let runtime: Runtime;
beforeAll(async () => {
  runtime = await startRuntime({ MQTT_CONNECTIONS: "0", CACHE_CLOSED_AFTER_SECONDS: "60" });
}, 30_000);
afterAll(() => runtime.close(), 30_000);

// biome-ignore lint/suspicious/noExplicitAny: JSON answers are checked field by field
async function get(path: string, app = runtime.app): Promise<any> {
  const response = await app.request(path);
  expect(response.status).toBe(200);
  return response.json();
}

async function postAndStore(path: string, records: unknown[], target = runtime) {
  const before = target.sink?.stats.records ?? 0;
  const response = await post(target, path, records);
  expect(response.status).toBe(202);
  await eventually(() => (target.sink?.stats.records ?? 0) >= before + records.length);
  return ((await response.json()) as { ids: string[] }).ids;
}

describe("posted records read back through every endpoint", () => {
  beforeAll(async () => {
    await postAndStore("/v1/sensors/readings", [
      { deviceId: "dev-a", ts: at(0), temperature: 10, humidity: 50 },
      { deviceId: "dev-a", ts: at(MINUTE), temperature: 20, humidity: 50 },
      { deviceId: "dev-a", ts: at(MINUTE + 30_000), temperature: 30 },
      { deviceId: "dev-a", ts: at(7 * MINUTE), temperature: 40, co2: 800 },
      { deviceId: "dev-b", ts: at(0), temperature: 0 },
      // Physically possible, not plausible: stored with a flag, left out of aggregates by default.
      { deviceId: "dev-b", ts: at(HOUR + MINUTE), temperature: 100 },
    ]);
    await postAndStore("/v1/traffic/counts", [
      { storeId: "s1", ts: at(0), visitorsIn: 10, transactions: 2, revenue: 20 },
      { storeId: "s1", ts: at(2 * MINUTE), visitorsIn: 30, transactions: 4, revenue: 31.5 },
      { storeId: "s2", ts: at(3 * MINUTE), visitorsIn: 0, transactions: 0 },
    ]);
  }, 30_000);

  test("1m buckets: exact count, sum, min, max, avg; the suspect reading left out", async () => {
    const answer = await get(
      `/v1/sensors/aggregates?bucket=1m&from=${at(0)}&to=${at(2 * HOUR)}&metrics=temperature`,
    );
    expect(answer.items).toEqual([
      {
        bucketStart: at(0),
        count: 2,
        metrics: { temperature: { count: 2, sum: 10, min: 0, max: 10, avg: 5 } },
      },
      {
        bucketStart: at(MINUTE),
        count: 2,
        metrics: { temperature: { count: 2, sum: 50, min: 20, max: 30, avg: 25 } },
      },
      {
        bucketStart: at(7 * MINUTE),
        count: 1,
        metrics: { temperature: { count: 1, sum: 40, min: 40, max: 40, avg: 40 } },
      },
    ]);
  });

  test("5m buckets are summed from minutes; includeSuspect brings the flagged reading back", async () => {
    const range = `from=${at(0)}&to=${at(2 * HOUR)}&metrics=temperature,humidity`;
    const answer = await get(`/v1/sensors/aggregates?bucket=5m&${range}`);
    expect(
      answer.items.map((item: { bucketStart: string; count: number }) => [item.bucketStart, item.count]),
    ).toEqual([
      [at(0), 4],
      [at(5 * MINUTE), 1],
    ]);
    expect(answer.items[0].metrics).toEqual({
      temperature: { count: 4, sum: 60, min: 0, max: 30, avg: 15 },
      humidity: { count: 2, sum: 100, min: 50, max: 50, avg: 50 },
    });
    const withSuspect = await get(`/v1/sensors/aggregates?bucket=5m&${range}&includeSuspect=true`);
    expect(withSuspect.items.at(-1)).toMatchObject({
      bucketStart: at(HOUR),
      count: 1,
      metrics: { temperature: { count: 1, sum: 100, min: 100, max: 100 } },
    });
  });

  test("1h buckets per source, and 1d buckets", async () => {
    const range = `from=${at(0)}&to=${at(2 * HOUR)}`;
    const bySource = await get(
      `/v1/sensors/aggregates?bucket=1h&${range}&groupBy=source&metrics=temperature`,
    );
    expect(bySource.items).toEqual([
      {
        bucketStart: at(0),
        sourceId: "dev-a",
        count: 4,
        metrics: { temperature: { count: 4, sum: 100, min: 10, max: 40, avg: 25 } },
      },
      {
        bucketStart: at(0),
        sourceId: "dev-b",
        count: 1,
        metrics: { temperature: { count: 1, sum: 0, min: 0, max: 0, avg: 0 } },
      },
    ]);
    const oneSource = await get(`/v1/sensors/aggregates?bucket=1h&${range}&deviceId=dev-a&metrics=co2`);
    expect(oneSource.items).toEqual([
      {
        bucketStart: at(0),
        count: 4,
        metrics: { co2: { count: 1, sum: 800, min: 800, max: 800, avg: 800 } },
      },
    ]);
    const daily = await get(
      `/v1/sensors/aggregates?bucket=1d&from=${at(-2 * 86_400_000)}&metrics=temperature`,
    );
    const day = new Date(Math.floor(base / 86_400_000) * 86_400_000).toISOString();
    expect(daily.items.find((item: { bucketStart: string }) => item.bucketStart === day)).toEqual({
      bucketStart: day,
      count: 5,
      metrics: { temperature: { count: 5, sum: 100, min: 0, max: 40, avg: 20 } },
    });
  });

  test("traffic buckets carry the conversion rate, null without visitors", async () => {
    const range = `from=${at(0)}&to=${at(HOUR)}`;
    const total = await get(`/v1/traffic/aggregates?bucket=1h&${range}`);
    expect(total.items).toHaveLength(1);
    expect(total.items[0].conversionRate).toBe(6 / 40);
    expect(total.items[0].metrics.revenue).toEqual({ count: 2, sum: 51.5, min: 20, max: 31.5, avg: 25.75 });
    const bySource = await get(`/v1/traffic/aggregates?bucket=1h&${range}&groupBy=source`);
    expect(bySource.items.map((item: { conversionRate: number | null }) => item.conversionRate)).toEqual([
      6 / 40,
      null,
    ]);
  });

  test("raw records, newest first, with the quality flags", async () => {
    const page = await get(`/v1/sensors/readings?deviceId=dev-b`);
    expect(page.nextCursor).toBeNull();
    expect(
      page.items.map((item: { ts: string; data: unknown; flags: string[] }) => [
        item.ts,
        item.data,
        item.flags,
      ]),
    ).toEqual([
      [at(HOUR + MINUTE), { temperature: 100 }, ["temperature:out-of-range"]],
      [at(0), { temperature: 0 }, []],
    ]);
    expect(page.items[0]).toMatchObject({ sourceId: "dev-b", via: "http", id: expect.any(String) });
  });

  test("latest: the newest record of each source, or of one", async () => {
    const all = await get("/v1/sensors/latest");
    expect(all.items.map((item: { sourceId: string; ts: string }) => [item.sourceId, item.ts])).toEqual([
      ["dev-a", at(7 * MINUTE)],
      ["dev-b", at(HOUR + MINUTE)],
    ]);
    const one = await get("/v1/traffic/latest?storeId=s1");
    expect(one.items).toHaveLength(1);
    expect(one.items[0]).toMatchObject({ sourceId: "s1", ts: at(2 * MINUTE), data: { visitorsIn: 30 } });
  });

  test("Accept: text/csv on raw and aggregate endpoints", async () => {
    const raw = await runtime.app.request("/v1/sensors/readings?deviceId=dev-a&limit=2", {
      headers: { accept: "text/csv" },
    });
    expect(raw.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    const [header, first, second, ...rest] = parseCsv(await raw.text());
    expect(header?.slice(0, 6)).toEqual(["id", "sourceId", "ts", "receivedAt", "via", "flags"]);
    expect(header).toContain("location.lat");
    const column = (row: string[] | undefined, name: string) => row?.[header?.indexOf(name) ?? -1];
    expect(column(first, "ts")).toBe(at(7 * MINUTE));
    expect(column(first, "co2")).toBe("800");
    expect(column(second, "temperature")).toBe("30");
    expect(rest).toEqual([]);

    const buckets = await runtime.app.request(
      `/v1/traffic/aggregates?bucket=1h&from=${at(0)}&to=${at(HOUR)}`,
      {
        headers: { accept: "text/csv" },
      },
    );
    const [bucketHeader, row] = parseCsv(await buckets.text());
    const value = (name: string) => row?.[bucketHeader?.indexOf(name) ?? -1];
    expect(value("bucketStart")).toBe(at(0));
    expect(value("visitorsIn.sum")).toBe("40");
    expect(value("conversionRate")).toBe(String(6 / 40));
  });

  test("CSV is safe to open in a spreadsheet: text that reads as a formula is neutralised, numbers are not", async () => {
    await postAndStore("/v1/sensors/readings", [
      {
        deviceId: "csv-planted",
        ts: at(20 * MINUTE),
        temperature: -5,
        location: { lat: 1, lon: 2, city: '=HYPERLINK("http://evil.example","click")' },
      },
    ]);
    const answer = await runtime.app.request("/v1/sensors/readings?deviceId=csv-planted", {
      headers: { accept: "text/csv" },
    });
    const [header, row] = parseCsv(await answer.text());
    const column = (name: string) => row?.[header?.indexOf(name) ?? -1];
    expect(column("location.city")).toBe(`'=HYPERLINK("http://evil.example","click")`);
    expect(column("temperature")).toBe("-5");
  });

  test("every formula lead (= + - @ tab, carriage return) is neutralised, in the raw list and in aggregates", async () => {
    const cities = ["+SUM(A1:A9)", "-2+3", "@cmd", "=1+1"];
    const from = at(40 * MINUTE);
    await postAndStore(
      "/v1/sensors/readings",
      cities.map((city, i) => ({
        deviceId: "-csv-lead",
        ts: new Date(Date.parse(from) + i * 1000).toISOString(),
        pm25: 3,
        location: { lat: 1, lon: 2, city },
      })),
    );
    const list = await runtime.app.request("/v1/sensors/readings?deviceId=-csv-lead", {
      headers: { accept: "text/csv" },
    });
    const [header, ...rows] = parseCsv(await list.text());
    const cityColumn = header?.indexOf("location.city") ?? -1;
    expect(rows.map((row) => row[cityColumn]).sort()).toEqual(cities.map((city) => `'${city}`).sort());
    expect(rows.every((row) => row[header?.indexOf("sourceId") ?? -1] === "'-csv-lead")).toBe(true);
    const aggregates = await runtime.app.request(
      `/v1/sensors/aggregates?deviceId=-csv-lead&bucket=1h&groupBy=source&metrics=pm25&from=${encodeURIComponent(at(0))}`,
      { headers: { accept: "text/csv" } },
    );
    const [aggregateHeader, aggregateRow] = parseCsv(await aggregates.text());
    expect(aggregateRow?.[aggregateHeader?.indexOf("sourceId") ?? -1]).toBe("'-csv-lead");
    expect(aggregateRow?.[aggregateHeader?.indexOf("pm25.sum") ?? -1]).toBe("12");
    // Tab and carriage return never get in (text fields refuse control characters); the writer covers them too.
    expect(parseCsv(toCsv(["a"], [["\tx"], ["\rx"], [-1]])).slice(1)).toEqual([["'\tx"], ["'\rx"], ["-1"]]);
  });
});

describe("pagination", () => {
  test("every page once, newest first, nextCursor null on the last", async () => {
    const records = Array.from({ length: 25 }, (_, i) => ({ deviceId: "pager", ts: at(i * 1000), pm25: i }));
    await postAndStore("/v1/sensors/readings", records);
    const seen: number[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const page = await get(
        `/v1/sensors/readings?deviceId=pager&limit=10${cursor ? `&cursor=${cursor}` : ""}`,
      );
      seen.push(...page.items.map((item: { data: { pm25: number } }) => item.data.pm25));
      cursor = page.nextCursor;
      pages++;
    } while (cursor);
    expect(pages).toBe(3);
    expect(seen).toEqual(Array.from({ length: 25 }, (_, i) => 24 - i));

    const window = await get(`/v1/sensors/readings?deviceId=pager&from=${at(5000)}&to=${at(8000)}`);
    expect(window.items.map((item: { data: { pm25: number } }) => item.data.pm25)).toEqual([7, 6, 5]);
  });

  test("bad parameters are 400 problems naming the parameter", async () => {
    const cases: [string, string][] = [
      ["/v1/sensors/readings?limit=1001", "limit"],
      ["/v1/sensors/readings?limit=0", "limit"],
      ["/v1/sensors/readings?cursor=not-a-cursor", "cursor"],
      [`/v1/sensors/readings?from=${at(HOUR)}&to=${at(0)}`, "from"],
      ["/v1/sensors/readings?from=yesterday", "from"],
      ["/v1/sensors/aggregates?bucket=2m", "bucket"],
      ["/v1/sensors/aggregates?metrics=visitorsIn", "metrics"],
      ["/v1/sensors/aggregates?bucket=1m&from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z", "from"],
      ["/v1/traffic/latest?deviceId=x", "deviceId"],
      ["/v1/weather/observations?stationId=x';drop table weather_records;--", "stationId"],
    ];
    for (const [path, parameter] of cases) {
      const response = await runtime.app.request(path);
      expect(response.status).toBe(400);
      expect(response.headers.get("content-type")).toBe("application/problem+json");
      const problem = (await response.json()) as { errors: { path: string }[] };
      expect(problem.errors.map((error) => error.path)).toContain(parameter);
    }
    const cap = (await (await runtime.app.request(cases[7]?.[0] ?? "")).json()) as { detail: string };
    expect(cap.detail).toContain("more than the 5000");
    expect((await runtime.app.request("/v1/weather/observations")).status).toBe(200);
  });
});

describe("idempotence", () => {
  test("a record posted twice with one id is stored once and counted once", async () => {
    const record = { id: "dup-1", deviceId: "dup-dev", ts: at(30 * MINUTE), no2: 42 };
    await postAndStore("/v1/sensors/readings", [record]);
    await postAndStore("/v1/sensors/readings", [record, { ...record, no2: 43 }]);
    const page = await get("/v1/sensors/readings?deviceId=dup-dev");
    expect(page.items).toHaveLength(1);
    expect(page.items[0].data.no2).toBe(42);
    const buckets = await get(
      `/v1/sensors/aggregates?bucket=1h&deviceId=dup-dev&from=${at(0)}&to=${at(HOUR)}`,
    );
    expect(buckets.items[0].count).toBe(1);
  });

  test("a record replayed by Kafka changes nothing", async () => {
    const [id] = await postAndStore("/v1/sensors/readings", [
      { deviceId: "replay-dev", ts: at(40 * MINUTE), no2: 7 },
    ]);
    const stored = await get("/v1/sensors/readings?deviceId=replay-dev");
    const { flags: _flags, ...envelope } = stored.items[0];
    const before = runtime.sink?.stats.records ?? 0;
    await runtime.publisher.publish([
      {
        topic: kindTopic(runtime.config.KAFKA_TOPIC_PREFIX, "sensors"),
        key: "replay-dev",
        value: JSON.stringify({ ...envelope, kind: "sensors" }),
      },
    ]);
    await eventually(() => (runtime.sink?.stats.records ?? 0) > before);
    expect(envelope.id).toBe(id);
    const buckets = await get(
      `/v1/sensors/aggregates?bucket=1h&deviceId=replay-dev&from=${at(0)}&to=${at(HOUR)}`,
    );
    expect(buckets.items[0].count).toBe(1);
    expect((await get("/v1/sensors/readings?deviceId=replay-dev")).items).toHaveLength(1);
  });

  test("a sink killed between insert and offset commit replays the batch without double counting", async () => {
    const calls: number[] = [];
    const crashing = await startRuntime(
      { MQTT_CONNECTIONS: "0" },
      {
        sinkHooks: {
          afterWrite: (_kind, inserted) => {
            calls.push(inserted);
            if (calls.length === 1) throw new Error("killed between insert and commit");
          },
        },
      },
    );
    try {
      const records = Array.from({ length: 20 }, (_, i) => ({
        storeId: "crash",
        ts: at(i * 1000),
        visitorsIn: 1,
      }));
      expect((await post(crashing, "/v1/traffic/counts", records)).status).toBe(202);
      await eventually(() => calls.length >= 2 && (crashing.sink?.stats.records ?? 0) >= 20, 60_000);
      expect(calls[0]).toBe(20);
      expect(calls.slice(1).every((inserted) => inserted === 0)).toBe(true);
      const buckets = await get(
        `/v1/traffic/aggregates?bucket=1h&from=${at(0)}&to=${at(HOUR)}`,
        crashing.app,
      );
      expect(buckets.items[0]).toMatchObject({ count: 20, metrics: { visitorsIn: { count: 20, sum: 20 } } });
    } finally {
      await crashing.close();
    }
  }, 90_000);

  test("a batch that fails after its write while later ones wait: read again from it, nothing lost or doubled", async () => {
    const calls: number[] = [];
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const failing = await startRuntime(
      { MQTT_CONNECTIONS: "0" },
      {
        sinkHooks: {
          afterWrite: async (_kind, inserted) => {
            calls.push(inserted);
            if (calls.length === 2) {
              await held;
              throw new Error("failed between insert and commit");
            }
          },
        },
      },
    );
    try {
      // One store, so one partition: A is stored, B is written and held, C and D are fetched behind it.
      const part = (name: string, offset: number) =>
        Array.from({ length: 20 }, (_, i) => ({
          storeId: "queued",
          ts: at(offset + i * 1000),
          visitorsIn: 1,
          sensorId: name,
        }));
      expect((await post(failing, "/v1/traffic/counts", part("a", 0))).status).toBe(202);
      await eventually(() => calls.length >= 1);
      expect((await post(failing, "/v1/traffic/counts", part("b", 100_000))).status).toBe(202);
      await eventually(() => calls.length >= 2);
      expect((await post(failing, "/v1/traffic/counts", part("c", 200_000))).status).toBe(202);
      expect((await post(failing, "/v1/traffic/counts", part("d", 300_000))).status).toBe(202);
      await Bun.sleep(1500);
      expect(calls).toEqual([20, 20]); // C waits behind B, unwritten
      release();
      await eventually(async () => {
        const page = await get("/v1/traffic/counts?storeId=queued&limit=1000", failing.app);
        return page.items.length === 80;
      }, 60_000);
      await eventually(() => calls.reduce((sum, inserted) => sum + inserted, 0) === 80, 30_000);
      const buckets = await get(
        `/v1/traffic/aggregates?bucket=1h&storeId=queued&from=${at(0)}&to=${at(HOUR)}`,
        failing.app,
      );
      expect(buckets.items[0]).toMatchObject({ count: 80, metrics: { visitorsIn: { count: 80, sum: 80 } } });
    } finally {
      await failing.close();
    }
  }, 90_000);
});

describe("cache", () => {
  test("an open bucket is never stale", async () => {
    const from = new Date(Math.floor(Date.now() / HOUR) * HOUR).toISOString();
    const path = `/v1/weather/aggregates?bucket=1h&from=${from}&stationId=fresh`;
    expect((await get(path)).items).toEqual([]);
    await postAndStore("/v1/weather/observations", [
      { stationId: "fresh", ts: new Date().toISOString(), temperature: 12 },
    ]);
    expect((await get(path)).items[0]).toMatchObject({ count: 1 });
    await postAndStore("/v1/weather/observations", [
      { stationId: "fresh", ts: new Date().toISOString(), temperature: 14 },
    ]);
    expect((await get(path)).items[0]).toMatchObject({ count: 2, metrics: { temperature: { sum: 26 } } });
  });

  test("closed buckets come from the cache, and a late record for them is seen at once", async () => {
    const path = `/v1/weather/aggregates?bucket=1h&from=${at(0)}&to=${at(2 * HOUR)}&stationId=late`;
    await postAndStore("/v1/weather/observations", [
      { stationId: "late", ts: at(10 * MINUTE), temperature: 5 },
    ]);
    expect((await get(path)).items[0]).toMatchObject({ count: 1 });
    const hit = { result: "hit" };
    const hits = await counterValue(runtime.metrics.cacheRequests, hit);
    expect((await get(path)).items[0]).toMatchObject({ count: 1 });
    expect(await counterValue(runtime.metrics.cacheRequests, hit)).toBe(hits + 1);
    await postAndStore("/v1/weather/observations", [
      { stationId: "late", ts: at(20 * MINUTE), temperature: 7 },
    ]);
    expect((await get(path)).items[0]).toMatchObject({ count: 2, metrics: { temperature: { sum: 12 } } });
  });

  test("a cached answer is served only to the same choice of metrics", async () => {
    const path = `/v1/traffic/aggregates?bucket=1h&from=${at(0)}&to=${at(2 * HOUR)}&storeId=chosen`;
    await postAndStore("/v1/traffic/counts", [
      { storeId: "chosen", ts: at(5 * MINUTE), visitorsIn: 10, transactions: 2 },
    ]);
    const one = await get(`${path}&metrics=visitorsIn`);
    expect(Object.keys(one.items[0].metrics)).toEqual(["visitorsIn"]);
    expect(one.items[0].conversionRate).toBe(0.2);
    const all = await get(path);
    expect(Object.keys(all.items[0].metrics)).toEqual([
      "visitorsIn",
      "visitorsOut",
      "transactions",
      "revenue",
    ]);
    expect((await get(`${path}&metrics=visitorsIn`)).items[0]).toEqual(one.items[0]);
  });

  test("Redis emptied: an answer the gateway still holds in memory is not served again", async () => {
    const path = `/v1/weather/aggregates?bucket=1h&from=${at(0)}&to=${at(2 * HOUR)}&stationId=emptied`;
    const redis = runtime.cache.redis;
    const emptyRedis = async () => {
      const keys = await redis.keys(`${runtime.config.REDIS_KEY_PREFIX}:*`);
      if (keys.length > 0) await redis.del(...keys);
      return keys.length;
    };
    await postAndStore("/v1/weather/observations", [
      { stationId: "emptied", ts: at(10 * MINUTE), temperature: 5 },
    ]);
    await emptyRedis();
    expect((await get(path)).items[0]).toMatchObject({ count: 1 });
    await postAndStore("/v1/weather/observations", [
      { stationId: "emptied", ts: at(20 * MINUTE), temperature: 7 },
    ]);
    expect((await get(path)).items[0]).toMatchObject({ count: 2 });
    expect(await emptyRedis()).toBeGreaterThan(0);
    expect((await get(path)).items[0]).toMatchObject({ count: 2, metrics: { temperature: { sum: 12 } } });
  });
});

describe("outages", () => {
  test("Redis down: ingestion, storage and every query go on from PostgreSQL", async () => {
    const noRedis = await startRuntime({ MQTT_CONNECTIONS: "0", REDIS_URL: "redis://127.0.0.1:1/0" });
    try {
      await postAndStore("/v1/sensors/readings", [{ deviceId: "r-down", ts: at(0), humidity: 33 }], noRedis);
      expect((await get("/v1/sensors/readings?deviceId=r-down", noRedis.app)).items).toHaveLength(1);
      expect((await get("/v1/sensors/latest?deviceId=r-down", noRedis.app)).items[0].data).toEqual({
        humidity: 33,
      });
      const buckets = await get(`/v1/sensors/aggregates?bucket=1h&from=${at(0)}&to=${at(HOUR)}`, noRedis.app);
      expect(buckets.items[0].count).toBe(1);
      const ready = await noRedis.app.request("/readyz");
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ checks: { redis: { ok: false, critical: false } } });
    } finally {
      await noRedis.close();
    }
  }, 60_000);

  test("PostgreSQL down then back: ingestion goes on, reads are 503, the sink catches up with nothing lost or doubled", async () => {
    const database = await testDatabase();
    const proxy = await tcpProxy(5432);
    const runtimeOverProxy = await startRuntime({
      MQTT_CONNECTIONS: "0",
      DATABASE_URL: `postgres://postgres@127.0.0.1:${proxy.port}/${database.name}`,
    });
    try {
      await postAndStore(
        "/v1/traffic/counts",
        [{ storeId: "pg", ts: at(0), visitorsIn: 1 }],
        runtimeOverProxy,
      );
      await proxy.stop();
      const records = Array.from({ length: 30 }, (_, i) => ({
        storeId: "pg",
        ts: at((i + 1) * 1000),
        visitorsIn: 1,
      }));
      expect((await post(runtimeOverProxy, "/v1/traffic/counts", records)).status).toBe(202);
      const read = await runtimeOverProxy.app.request("/v1/traffic/counts?storeId=pg");
      expect(read.status).toBe(503);
      expect(read.headers.get("retry-after")).toBeTruthy();
      expect((await runtimeOverProxy.app.request("/readyz")).status).toBe(503);
      await Bun.sleep(2000);
      await proxy.start();
      const buckets = await eventually(async () => {
        const response = await runtimeOverProxy.app.request(
          `/v1/traffic/aggregates?bucket=1h&from=${at(0)}&to=${at(HOUR)}`,
        );
        if (response.status !== 200) return undefined;
        const answer = (await response.json()) as { items: { count: number }[] };
        return answer.items[0]?.count === 31 && answer;
      }, 60_000);
      expect(buckets.items[0]?.count).toBe(31);
      await Bun.sleep(1000);
      const all = await get("/v1/traffic/counts?storeId=pg&limit=1000", runtimeOverProxy.app);
      expect(all.items).toHaveLength(31);
    } finally {
      await runtimeOverProxy.close();
      await proxy.stop();
      await database.drop();
    }
  }, 120_000);
});

describe("retention", () => {
  test("raw records past RETENTION_DAYS and roll-ups past ROLLUP_RETENTION_DAYS are deleted; newer ones stay", async () => {
    const { records, rollups } = kindTables(sensors);
    const daysAgo = (days: number) => new Date(Date.now() - days * 86_400_000);
    const row = (id: string, ts: Date) => ({
      id,
      sourceId: "old-dev",
      ts,
      receivedAt: ts,
      via: "http" as const,
      data: {},
    });
    await runtime.db.insert(records).values([row("old-31d", daysAgo(31)), row("old-29d", daysAgo(29))]);
    const rollup = (bucketStart: Date) => ({
      sourceId: "old-dev",
      width: "1d" as const,
      bucketStart,
      quality: "ok" as const,
      count: 1,
    });
    await runtime.db.insert(rollups).values([rollup(daysAgo(401)), rollup(daysAgo(399))]);

    await runtime.retention?.sweep();

    const ids = await runtime.db
      .select({ id: records.id })
      .from(records)
      .where(eq(records.sourceId, "old-dev"));
    expect(ids.map((r) => r.id)).toEqual(["old-29d"]);
    const kept = await runtime.db
      .select({ bucketStart: rollups.bucketStart })
      .from(rollups)
      .where(eq(rollups.sourceId, "old-dev"));
    expect(kept).toHaveLength(1);
    expect(kept[0]?.bucketStart.getTime()).toBeGreaterThan(daysAgo(400).getTime());
  });
});
