import { afterAll, describe, expect, test } from "bun:test";
import { validateItem } from "../src/ingest/validate";
import { flights } from "../src/kinds/flights";
import { traffic } from "../src/kinds/traffic";
import { weather } from "../src/kinds/weather";
import { type ApiName, type ApiServer, type ApiServerOptions, startApiServer } from "../src/simulators/apis";
import { parseServeArgs } from "../src/simulators/apis/serve";

const MINUTE = 60_000;
/** A Monday at 12:03 UTC: shops are open, flights are in the air. */
const T0 = Date.UTC(2026, 5, 15, 12, 3, 0);

const servers: ApiServer[] = [];
afterAll(() => Promise.all(servers.map((server) => server.stop())));

/** A server whose clock the test moves: `clock.at` is the current time. */
function serve(api: ApiName, options: ApiServerOptions = {}) {
  const clock = { at: T0 };
  const server = startApiServer(api, { now: () => clock.at, ...options });
  servers.push(server);
  return { server, clock };
}

// biome-ignore lint/suspicious/noExplicitAny: JSON answers, checked field by field
type Json = any;

async function get(
  url: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; body: Json; text: string }> {
  const response = await fetch(url, { headers });
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    text,
    body: text ? JSON.parse(text) : undefined,
  };
}

const validate = (kind: Parameters<typeof validateItem>[0], value: unknown, at = new Date()) =>
  validateItem(
    kind,
    { value },
    {
      via: "poll",
      receivedAt: at,
      receivedAtIso: at.toISOString(),
      maxFutureMs: 5 * MINUTE,
      maxAgeMs: 7 * 86_400_000,
    },
  );

describe("openweather", () => {
  const key = "owm-test-key";
  const { server, clock } = serve("openweather", { apiKey: key, seed: 3 });
  const weatherUrl = (query: string) => `${server.url}/data/2.5/weather?${query}&appid=${key}`;

  test("answers by id, by name (any case, with a country) and by coordinates, in OpenWeather's shape", async () => {
    const byId = await get(weatherUrl("id=2988507"));
    expect(byId.status).toBe(200);
    expect(byId.headers.get("content-type")).toStartWith("application/json");
    const body = byId.body;
    expect(Object.keys(body)).toEqual(
      [
        "coord",
        "weather",
        "base",
        "main",
        "visibility",
        "wind",
        "clouds",
        "dt",
        "sys",
        "timezone",
        "id",
        "name",
        "cod",
      ].filter((field) => field in body),
    );
    expect(body).toMatchObject({ id: 2988507, name: "Paris", cod: 200, base: "stations", timezone: 3600 });
    expect(body.coord).toEqual({ lon: 2.3522, lat: 48.8566 });
    expect(body.weather[0]).toEqual({
      id: expect.any(Number),
      main: expect.any(String),
      description: expect.any(String),
      icon: expect.stringMatching(/^\d\d[dn]$/),
    });
    expect(body.main.temp).toBeGreaterThan(250);
    expect(body.main.temp).toBeLessThan(320);
    expect(body.sys).toEqual({ country: "FR", sunrise: expect.any(Number), sunset: expect.any(Number) });
    // Mid-June in Paris: up before 05:00 UTC, down after 19:00 UTC; noon is daytime.
    expect(new Date(body.sys.sunrise * 1000).getUTCHours()).toBeLessThan(5);
    expect(new Date(body.sys.sunset * 1000).getUTCHours()).toBeGreaterThanOrEqual(19);
    expect(body.weather[0].icon).toEndWith("d");
    expect(body.dt).toBe(Date.UTC(2026, 5, 15, 12, 0) / 1000);

    for (const query of ["q=paris", "q=PARIS,fr", "q=Paris,FR", "lat=48.9&lon=2.2"]) {
      expect((await get(weatherUrl(query))).text).toBe(byId.text);
    }
    expect((await get(weatherUrl("lat=33.6&lon=-7.6"))).body.name).toBe("Casablanca");
  });

  test("converts to metric and imperial units", async () => {
    const standard = (await get(weatherUrl("q=Rabat"))).body;
    const metric = (await get(weatherUrl("q=Rabat&units=metric"))).body;
    const imperial = (await get(weatherUrl("q=Rabat&units=imperial"))).body;
    expect(metric.main.temp).toBeCloseTo(standard.main.temp - 273.15, 1);
    expect(imperial.main.temp).toBeCloseTo((standard.main.temp - 273.15) * 1.8 + 32, 1);
    expect(metric.wind.speed).toBe(standard.wind.speed);
    expect(imperial.wind.speed).toBeCloseTo(standard.wind.speed * 2.236936, 1);
  });

  test("its bodies are observations Sluice's weather kind accepts", async () => {
    for (const units of ["standard", "metric"]) {
      const body = (await get(weatherUrl(`q=Casablanca&units=${units}`))).body;
      const result = validate(weather, body, new Date(clock.at));
      if (!("envelope" in result)) throw new Error(JSON.stringify(result.errors));
      expect(result.envelope.sourceId).toBe("owm-2553604");
      expect(result.envelope.ts).toBe(new Date(body.dt * 1000).toISOString());
      expect(result.envelope.data.city).toBe("Casablanca");
    }
  });

  test("the same body within 10 minutes, a new one after", async () => {
    clock.at = Date.UTC(2026, 5, 15, 14, 0, 30);
    const first = await get(weatherUrl("q=Madrid"));
    clock.at += 9 * MINUTE;
    const again = await get(weatherUrl("q=Madrid"));
    expect(again.text).toBe(first.text);
    expect(again.headers.get("etag")).toBe(first.headers.get("etag") as string);
    clock.at += 1 * MINUTE;
    const later = await get(weatherUrl("q=Madrid"));
    expect(later.body.dt).toBe(first.body.dt + 600);
    expect(later.text).not.toBe(first.text);
    clock.at = T0;
  });

  test("ETag and Last-Modified answer conditional requests with 304 until the data changes", async () => {
    const first = await get(weatherUrl("q=Lyon"));
    const etag = first.headers.get("etag") as string;
    const lastModified = first.headers.get("last-modified") as string;
    expect(etag).toMatch(/^"[0-9a-z]+"$/);
    expect(Date.parse(lastModified)).toBe(first.body.dt * 1000);
    const byTag = await get(weatherUrl("q=Lyon"), { "if-none-match": etag });
    expect(byTag.status).toBe(304);
    expect(byTag.text).toBe("");
    expect(byTag.headers.get("etag")).toBe(etag);
    expect((await get(weatherUrl("q=Lyon"), { "if-modified-since": lastModified })).status).toBe(304);
    expect((await get(weatherUrl("q=Lyon&units=metric"), { "if-none-match": etag })).status).toBe(200);
    clock.at += 10 * MINUTE;
    expect((await get(weatherUrl("q=Lyon"), { "if-none-match": etag })).status).toBe(200);
    expect((await get(weatherUrl("q=Lyon"), { "if-modified-since": lastModified })).status).toBe(200);
    clock.at = T0;
  });

  test("errors as OpenWeather sends them", async () => {
    const unauthorized = {
      cod: 401,
      message: "Invalid API key. Please see https://openweathermap.org/faq#error401 for more info.",
    };
    const none = await get(`${server.url}/data/2.5/weather?q=Paris`);
    expect(none.status).toBe(401);
    expect(none.body).toEqual(unauthorized);
    const wrong = await get(`${server.url}/data/2.5/weather?q=Paris&appid=nope`);
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual(unauthorized);
    expect(wrong.text).not.toContain(key);
    const missing = await get(weatherUrl("q=Atlantis"));
    expect([missing.status, missing.body]).toEqual([404, { cod: "404", message: "city not found" }]);
    expect((await get(weatherUrl("q=Paris,DE"))).status).toBe(404);
    expect((await get(weatherUrl("id=1"))).body).toEqual({ cod: "404", message: "city not found" });
    const nowhere = await get(weatherUrl("units=metric"));
    expect([nowhere.status, nowhere.body]).toEqual([400, { cod: "400", message: "Nothing to geocode" }]);
    expect((await get(weatherUrl("lat=95&lon=0"))).body).toEqual({ cod: "400", message: "wrong latitude" });
  });

  test("429 with Retry-After beyond the per-minute rate; bad keys do not count", async () => {
    const { server: limited, clock: time } = serve("openweather", { apiKey: key, perMinute: 3 });
    const url = `${limited.url}/data/2.5/weather?q=Dakar&appid=${key}`;
    for (let i = 0; i < 5; i++)
      expect((await get(`${limited.url}/data/2.5/weather?q=Dakar&appid=x`)).status).toBe(401);
    for (let i = 0; i < 3; i++) {
      expect((await get(url)).status).toBe(200);
      time.at += 10_000;
    }
    const refused = await get(url);
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual({
      cod: 429,
      message:
        "Your account is temporary blocked due to exceeding of requests limitation of your subscription type.",
    });
    // The first request was 30 s ago: the window frees in 30 s.
    expect(refused.headers.get("retry-after")).toBe("30");
    time.at += 30_000;
    expect((await get(url)).status).toBe(200);
    expect(limited.stats).toEqual({ requests: 10, byStatus: { 200: 4, 401: 5, 429: 1 } });
  });
});

describe("aviationstack", () => {
  const key = "avs-test-key";
  const { server } = serve("aviationstack", { apiKey: key, devices: 30, seed: 5 });
  const flightsUrl = (query = "") => `${server.url}/v1/flights?access_key=${key}${query ? `&${query}` : ""}`;

  test("pages through offsets: every flight once, pagination consistent", async () => {
    const all = (await get(flightsUrl())).body;
    expect(all.pagination).toEqual({ limit: 100, offset: 0, count: 30, total: 30 });
    const seen: unknown[] = [];
    for (let offset = 0; ; offset += 7) {
      const page = (await get(flightsUrl(`limit=7&offset=${offset}`))).body;
      expect(page.pagination).toEqual({ limit: 7, offset, count: page.data.length, total: 30 });
      seen.push(...page.data);
      if (offset + 7 >= page.pagination.total) break;
    }
    expect(seen).toEqual(all.data);
    const ids = seen.map((item) => {
      const { flight, flight_date } = item as { flight: { iata: string }; flight_date: string };
      return `${flight.iata}-${flight_date}`;
    });
    expect(new Set(ids).size).toBe(30);
    // The same moment gives the same items.
    expect((await get(flightsUrl())).text).toBe((await get(flightsUrl())).text);
  });

  test("its items are AviationStack flights Sluice's flights kind accepts", async () => {
    const { server: live } = serve("aviationstack", { devices: 40, now: () => Date.now() });
    const body = (await get(`${live.url}/v1/flights`)).body;
    expect(body.data).toHaveLength(40);
    for (const item of body.data) {
      expect(Object.keys(item)).toEqual([
        "flight_date",
        "flight_status",
        "departure",
        "arrival",
        "airline",
        "flight",
        "aircraft",
        "live",
      ]);
      const result = validate(flights, item);
      if (!("envelope" in result)) throw new Error(JSON.stringify(result.errors));
      expect(result.envelope.sourceId).toBe(`${item.flight.iata}-${item.flight_date}`);
    }
    // At noon UTC on a Monday the fleet is at every stage of its day.
    const atNoon = (await get(flightsUrl())).body.data as { flight_status: string; live: unknown }[];
    const statuses = new Set(atNoon.map((item) => item.flight_status));
    expect(statuses).toContain("active");
    expect(statuses.size).toBeGreaterThan(1);
    for (const item of atNoon) expect(item.live === null).toBe(item.flight_status !== "active");
  });

  test("filters", async () => {
    const all = (await get(flightsUrl())).body.data as {
      flight_status: string;
      departure: { iata: string };
    }[];
    const active = (await get(flightsUrl("flight_status=active"))).body;
    expect(active.pagination.total).toBe(all.filter((item) => item.flight_status === "active").length);
    expect(active.data.every((item: { flight_status: string }) => item.flight_status === "active")).toBe(
      true,
    );
    const from = all[0]?.departure.iata as string;
    const fromThere = (await get(flightsUrl(`dep_iata=${from.toLowerCase()}`))).body;
    expect(fromThere.pagination.total).toBe(all.filter((item) => item.departure.iata === from).length);
    expect((await get(flightsUrl("airline_iata=ZZ"))).body).toEqual({
      pagination: { limit: 100, offset: 0, count: 0, total: 0 },
      data: [],
    });
  });

  test("errors in AviationStack's shape", async () => {
    const wrong = await get(`${server.url}/v1/flights?access_key=nope`);
    expect(wrong.status).toBe(401);
    expect(wrong.body).toEqual({
      error: {
        code: "invalid_access_key",
        message: "You have not supplied a valid API Access Key. [Technical Support: support@apilayer.com]",
      },
    });
    const none = await get(`${server.url}/v1/flights`);
    expect([none.status, none.body.error.code]).toEqual([401, "missing_access_key"]);
    for (const query of [
      "limit=101",
      "limit=0",
      "limit=ten",
      "offset=-1",
      "flight_status=boarding",
      "flight_date=15/06/2026",
    ]) {
      const invalid = await get(flightsUrl(query));
      expect(invalid.status).toBe(422);
      expect(invalid.body.error.code).toBe("validation_error");
    }
  });

  test("usage_limit_reached beyond the monthly quota, until the month turns; bad keys do not count", async () => {
    const { server: quota, clock } = serve("aviationstack", { apiKey: key, perMonth: 2, devices: 3 });
    expect((await get(`${quota.url}/v1/flights?access_key=bad`)).status).toBe(401);
    expect((await get(`${quota.url}/v1/flights`)).status).toBe(401);
    const url = `${quota.url}/v1/flights?access_key=${key}`;
    expect((await get(url)).status).toBe(200);
    expect((await get(url)).status).toBe(200);
    const refused = await get(url);
    expect(refused.status).toBe(429);
    expect(refused.body).toEqual({
      error: {
        code: "usage_limit_reached",
        message: "Your monthly usage limit has been reached. Please upgrade your Subscription Plan.",
      },
    });
    clock.at = Date.UTC(2026, 6, 1, 0, 0, 1);
    expect((await get(url)).status).toBe(200);
  });

  test("rate_limit_reached with Retry-After beyond the per-minute rate", async () => {
    const { server: rate } = serve("aviationstack", { perMinute: 2, devices: 3 });
    const url = `${rate.url}/v1/flights`;
    expect((await get(url)).status).toBe(200);
    expect((await get(url)).status).toBe(200);
    const refused = await get(url);
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe("rate_limit_reached");
    expect(refused.headers.get("retry-after")).toBe("60");
  });
});

describe("store", () => {
  const token = "store-test-token";
  const auth = { authorization: `Bearer ${token}` };
  const { server, clock } = serve("store", { apiKey: token, devices: 4, seed: 9 });
  type Page = { data: { id: string; storeId: string; ts: string }[]; next_cursor: string | null };

  async function byOffset(query: string) {
    const items: Page["data"] = [];
    for (let offset = 0; ; offset += 5) {
      const page = (await get(`${server.url}/visitors?${query}&limit=5&offset=${offset}`, auth)).body;
      items.push(...page.data);
      if (offset + 5 >= page.total) return items;
    }
  }
  async function byCursor(query: string, between?: () => void) {
    let page: Page = (await get(`${server.url}/visitors?${query}&limit=5`, auth)).body;
    const items = [...page.data];
    while (page.next_cursor) {
      between?.();
      page = (
        await get(`${server.url}/visitors?limit=5&cursor=${encodeURIComponent(page.next_cursor)}`, auth)
      ).body;
      items.push(...page.data);
    }
    return items;
  }
  async function byLink(query: string) {
    const items: Page["data"] = [];
    let url: string | undefined = `${server.url}/visitors?${query}&limit=5`;
    while (url) {
      const page = await get(url, auth);
      items.push(...page.body.data);
      const link = page.headers.get("link");
      url = link?.match(/^<([^>]+)>; rel="next"$/)?.[1];
      if (url) expect(url).toStartWith(`${server.url}/visitors?`);
    }
    return items;
  }

  test("the last hour of every store in 15-minute counts, ordered by time then store", async () => {
    const { status, body, headers } = await get(`${server.url}/visitors`, auth);
    expect(status).toBe(200);
    expect(headers.get("etag")).toMatch(/^"[0-9a-z]+"$/);
    expect(body).toMatchObject({ total: 16, offset: 0, limit: 50, next_cursor: null });
    expect(body.data).toHaveLength(16);
    expect(headers.get("link")).toBeNull();
    const times = [...new Set(body.data.map((item: { ts: string }) => item.ts))];
    // 12:03 UTC: the four intervals 11:00, 11:15, 11:30 and 11:45.
    expect(times).toEqual(["11:00", "11:15", "11:30", "11:45"].map((hm) => `2026-06-15T${hm}:00.000Z`));
    const sorted = [...body.data].sort((a, b) =>
      a.ts === b.ts ? a.storeId.localeCompare(b.storeId) : a.ts.localeCompare(b.ts),
    );
    expect(body.data).toEqual(sorted);
    for (const item of body.data) {
      expect(Object.keys(item).sort()).toEqual(
        [
          "id",
          "storeId",
          "ts",
          "sensorId",
          "city",
          "visitorsIn",
          "visitorsOut",
          "transactions",
          "revenue",
          "currency",
        ].sort(),
      );
      expect(item.id).toBe(`${item.storeId}-${item.ts}`);
      // The city the store is in, which the traffic kind groups stores by.
      expect(item.storeId).toStartWith(`${item.city.toLowerCase()}-shop-`);
      const result = validate(traffic, item, new Date(clock.at));
      if (!("envelope" in result)) throw new Error(JSON.stringify(result.errors));
      expect(result.envelope.id).toBe(item.id);
    }
    expect(body.data.some((item: { visitorsIn: number }) => item.visitorsIn > 0)).toBe(true);
  });

  test("an interval has the same numbers in every window it is asked in", async () => {
    const hour = (await get(`${server.url}/visitors?hours=1`, auth)).body.data;
    const day = (await get(`${server.url}/visitors?hours=24&limit=1000`, auth)).body;
    expect(day.total).toBe(4 * 24 * 4);
    expect(day.data.slice(-16)).toEqual(hour);
  });

  test("offset, cursor and Link pagination each yield the same items", async () => {
    const all = (await get(`${server.url}/visitors?hours=3&limit=1000`, auth)).body.data;
    expect(all).toHaveLength(48);
    expect(await byOffset("hours=3")).toEqual(all);
    expect(await byCursor("hours=3")).toEqual(all);
    expect(await byLink("hours=3")).toEqual(all);
    // A cursor holds its window still while time moves on.
    const moveOn = () => {
      clock.at += 15 * MINUTE;
    };
    expect(await byCursor("hours=3", moveOn)).toEqual(all);
    clock.at = T0;
  });

  test("ETag answers If-None-Match with 304", async () => {
    const first = await get(`${server.url}/visitors?hours=2&limit=5`, auth);
    const etag = first.headers.get("etag") as string;
    const again = await get(`${server.url}/visitors?hours=2&limit=5`, { ...auth, "if-none-match": etag });
    expect(again.status).toBe(304);
    expect(again.text).toBe("");
    const next = await get(`${server.url}/visitors?hours=2&limit=5&offset=5`, {
      ...auth,
      "if-none-match": etag,
    });
    expect(next.status).toBe(200);
    clock.at += 15 * MINUTE;
    expect(
      (await get(`${server.url}/visitors?hours=2&limit=5`, { ...auth, "if-none-match": etag })).status,
    ).toBe(200);
    clock.at = T0;
  });

  test("401 without the bearer token, 400 for bad parameters", async () => {
    const attempts: Record<string, string>[] = [
      {},
      { authorization: "Bearer wrong" },
      { authorization: token },
    ];
    for (const headers of attempts) {
      const refused = await get(`${server.url}/visitors`, headers);
      expect([refused.status, refused.body]).toEqual([401, { error: "unauthorized" }]);
      expect(refused.text).not.toContain(token);
    }
    for (const query of ["limit=0", "hours=500", "offset=-3", "cursor=garbage"]) {
      expect((await get(`${server.url}/visitors?${query}`, auth)).status).toBe(400);
    }
  });

  test("429 with Retry-After beyond the per-minute rate", async () => {
    const { server: limited } = serve("store", { perMinute: 1, devices: 1 });
    expect((await get(`${limited.url}/visitors`)).status).toBe(200);
    const refused = await get(`${limited.url}/visitors`);
    expect([refused.status, refused.body]).toEqual([429, { error: "rate_limited" }]);
    expect(refused.headers.get("retry-after")).toBe("60");
  });
});

describe("simulate --serve", () => {
  test("parses its options", () => {
    expect(
      parseServeArgs(
        ["--serve", "aviationstack", "--port", "8092", "--api-key", "k", "--per-month", "100"],
        "usage",
        {},
      ),
    ).toEqual({
      api: "aviationstack",
      port: 8092,
      hostname: "127.0.0.1",
      apiKey: "k",
      perMinute: undefined,
      perMonth: 100,
      devices: undefined,
      seed: undefined,
    });
    expect(parseServeArgs(["--serve", "store"], "usage", { SIMULATED_API_KEY: "from-env" }).apiKey).toBe(
      "from-env",
    );
    expect(() => parseServeArgs(["--serve", "nope"], "usage", {})).toThrow(
      /openweather, aviationstack, store/,
    );
    expect(() => parseServeArgs(["--serve", "store", "--per-minute", "0"], "usage", {})).toThrow(
      /per-minute/,
    );
  });

  test("runs a server until SIGINT, printing its URL and an example but never the key", async () => {
    const child = Bun.spawn(
      [
        "bun",
        "src/main.ts",
        "simulate",
        "--serve",
        "openweather",
        "--api-key",
        "secret-cli-key",
        "--per-minute",
        "9",
      ],
      { cwd: `${import.meta.dir}/..`, stdout: "pipe", stderr: "pipe" },
    );
    const reader = child.stdout.getReader();
    let output = "";
    while (!output.includes("example:") || !output.endsWith("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      output += new TextDecoder().decode(value);
    }
    const url = output.match(/on (http:\/\/127\.0\.0\.1:\d+)/)?.[1];
    expect(url).toBeDefined();
    expect(output).toContain("appid=<api-key>");
    const answer = await get(`${url}/data/2.5/weather?q=Casablanca&appid=secret-cli-key`);
    expect(answer.body.name).toBe("Casablanca");
    child.kill("SIGINT");
    expect(await child.exited).toBe(0);
    for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
      output += new TextDecoder().decode(chunk.value);
    }
    expect(output).toContain('served 1 requests {"200":1}');
    expect(output + (await new Response(child.stderr).text())).not.toContain("secret-cli-key");
  }, 20_000);
});
