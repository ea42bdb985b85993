import { afterAll, beforeAll, expect, test } from "bun:test";
import { readdirSync } from "node:fs";
import type { Browser, Page } from "playwright-core";
import { kinds } from "../src/kinds";
import type { Runtime } from "../src/runtime";
import { launchChromium } from "./browser";
import { eventually, freePort, post, startRuntime, testKey } from "./helpers";

let runtime: Runtime;
let server: ReturnType<typeof Bun.serve>;
let browser: Browser;

/** Three flights of two airlines: each reports every ten minutes, first as scheduled, then in the air. */
const royalAirMaroc = { name: "Royal Air Maroc", iata: "AT", icao: "RAM" };
const airFrance = { name: "Air France", iata: "AF", icao: "AFR" };
const flightPlan = [
  {
    airline: royalAirMaroc,
    number: "200",
    from: "CMN",
    to: "JFK",
    takeOffAgo: 300,
    delay: 15,
    duration: 470,
  },
  { airline: royalAirMaroc, number: "970", from: "CMN", to: "YUL", takeOffAgo: 200, delay: 5, duration: 450 },
  { airline: airFrance, number: "1396", from: "CDG", to: "CMN", takeOffAgo: 90, delay: 35, duration: 185 },
];
const iso = (ms: number) => new Date(ms).toISOString();
const scheduledOff = (flight: (typeof flightPlan)[number], now: number) =>
  now - (flight.takeOffAgo + flight.delay) * 60_000;
const flightId = (flight: (typeof flightPlan)[number], now: number) =>
  `${flight.airline.iata}${flight.number}-${iso(scheduledOff(flight, now)).slice(0, 10)}`;

/** A flight's status `minutes` before `now`, shaped like the flights kind's example. */
function flightStatus(flight: (typeof flightPlan)[number], now: number, minutes: number) {
  const scheduled = scheduledOff(flight, now);
  const airborne = flight.takeOffAgo - minutes; // minutes since take-off, negative before it
  // Before take-off the departure delay is an estimate that creeps up to the real one; in the air the
  // arrival delay shrinks a little as the crew makes up time.
  const departureDelay = airborne >= 0 ? flight.delay : Math.max(0, Math.round(flight.delay + airborne / 20));
  const arrivalDelay = Math.round(departureDelay - Math.max(0, airborne) / 25);
  const code = `${flight.airline.iata}${flight.number}`;
  return {
    flightId: flightId(flight, now),
    ts: iso(now - minutes * 60_000),
    flightDate: iso(scheduled).slice(0, 10),
    status: airborne >= 0 ? "active" : "scheduled",
    airline: flight.airline,
    flight: { number: flight.number, iata: code, icao: `${flight.airline.icao}${flight.number}` },
    departure: {
      iata: flight.from,
      scheduled: iso(scheduled),
      ...(airborne >= 0
        ? { actual: iso(now - flight.takeOffAgo * 60_000) }
        : { estimated: iso(scheduled + departureDelay * 60_000) }),
      delay: departureDelay,
    },
    arrival: {
      iata: flight.to,
      scheduled: iso(scheduled + flight.duration * 60_000),
      estimated: iso(scheduled + (flight.duration + arrivalDelay) * 60_000),
      delay: arrivalDelay,
    },
    ...(airborne >= 0
      ? {
          live: {
            latitude: 34 + airborne / 60,
            longitude: -8 - airborne / 20,
            // A climb to cruise, then a step climb after an hour.
            altitude: Math.round(Math.min(10_700, 150 + airborne * 550) + (airborne > 60 ? 600 : 0)),
            speed: Math.round(airborne < 25 ? 350 + airborne * 20 : 870 + 15 * Math.sin(airborne / 40)),
            heading: 290,
            onGround: false,
          },
        }
      : {}),
  };
}

/** Everything that would show in the page's console: errors, uncaught exceptions, failed requests. */
function watch(page: Page) {
  const problems: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") problems.push(`console: ${message.text()}`);
  });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("requestfailed", (request) =>
    problems.push(`failed: ${request.url()} ${request.failure()?.errorText}`),
  );
  page.on("response", (response) => {
    if (response.status() >= 400) problems.push(`${response.status()}: ${response.url()}`);
  });
  return problems;
}

/** The dashboard, logged in, once it has drawn its first chart. */
async function openDashboard() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const problems = watch(page);
  const requests: string[] = [];
  page.on("request", (request) => requests.push(request.url()));
  await page.goto(`${server.url.href}dashboard#key=${testKey}`);
  await page.waitForFunction(`document.querySelectorAll("#chart path.series").length > 0`, null, {
    timeout: 20_000,
  });
  return { page, problems, requests };
}

const legend = `JSON.stringify([...document.querySelectorAll("#legend span")].map((span) => span.textContent))`;

/** Waits until the legend names exactly these series, in this order. */
async function waitForLegend(page: Page, names: string[]) {
  const wanted = JSON.stringify(names);
  try {
    await page.waitForFunction(`${legend} === ${JSON.stringify(wanted)}`, null, { timeout: 10_000 });
  } catch {
    throw new Error(`the legend shows ${await page.evaluate(legend)}, not ${wanted}`);
  }
}

/** The query strings of the requests made to a path. */
const asked = (requests: string[], path: string) =>
  requests
    .map((url) => new URL(url))
    .filter((url) => url.pathname === path)
    .map((url) => url.searchParams);

const title = (page: Page) => page.locator("#chart text.title").textContent();

/** The points drawn, as the page put them: bucket start and value. */
const drawnPoints = (page: Page) =>
  page.evaluate(
    `[...document.querySelectorAll("#chart circle.point")].map((c) => [c.dataset.at, Number(c.dataset.value)])`,
  ) as Promise<[string, number][]>;

beforeAll(async () => {
  runtime = await startRuntime();
  server = Bun.serve({ port: await freePort(), hostname: "127.0.0.1", fetch: runtime.app.fetch });
  // Six hours of readings in two cities and two stores, and of three flights of two airlines, so that hourly
  // charts have lines to draw.
  const now = Date.now();
  const sensors = [];
  const traffic = [];
  const flights = [];
  for (let minutes = 360; minutes >= 0; minutes -= 10) {
    const ts = new Date(now - minutes * 60_000).toISOString();
    const wave = Math.sin(minutes / 60);
    sensors.push(
      {
        deviceId: "casa-1",
        ts,
        temperature: 20 + 3 * wave,
        pm25: 12,
        location: { lat: 33.57, lon: -7.59, city: "Casablanca" },
      },
      {
        deviceId: "paris-1",
        ts,
        temperature: 9 + 2 * wave,
        pm25: 20,
        location: { lat: 48.85, lon: 2.35, city: "Paris" },
      },
    );
    traffic.push(
      { storeId: "store-a", ts, city: "Lyon", visitorsIn: 30 + Math.round(10 * wave), transactions: 8 },
      { storeId: "store-b", ts, city: "Dakar", visitorsIn: 12, transactions: 2 },
      { storeId: "store-c", ts, city: "Lyon", visitorsIn: 5, transactions: 1 },
    );
    for (const flight of flightPlan) flights.push(flightStatus(flight, now, minutes));
  }
  expect((await post(runtime, "/v1/sensors/readings", sensors)).status).toBe(202);
  expect((await post(runtime, "/v1/traffic/counts", traffic)).status).toBe(202);
  expect((await post(runtime, "/v1/flights/statuses", flights)).status).toBe(202);
  expect(
    (await post(runtime, "/v1/sensors/readings", { deviceId: "casa-1", ts: now, humidity: 140 })).status,
  ).toBe(422);
  // Refused counts: three with a negative count, two naming a field the kind does not have.
  const refused = [-3, -1, -7].map((visitorsIn) => ({ storeId: "store-a", ts: now, visitorsIn }));
  refused.push(
    { storeId: "store-b", ts: now, visitorsIn: 2, cashier: "Ana" } as (typeof refused)[number],
    { storeId: "store-c", ts: now, visitorsIn: 4, cashier: "Bo" } as (typeof refused)[number],
  );
  expect((await post(runtime, "/v1/traffic/counts", refused)).status).toBe(422);
  const stored = sensors.length + traffic.length + flights.length;
  await eventually(() => (runtime.sink?.stats.records ?? 0) >= stored, 30_000);
  browser = await launchChromium();
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server.stop(true);
  await runtime.close();
}, 30_000);

test("the dashboard draws posted data live, the chooser changes it, and the key stays out of the URL", async () => {
  const { page, problems, requests } = await openDashboard();

  // The first kind, temperature per city: one line each for Casablanca and Paris.
  await waitForLegend(page, ["Casablanca", "Paris"]);
  expect(await page.locator("#chart path.series").count()).toBe(2);
  const points = await page.locator("#chart path.series").first().getAttribute("d");
  expect((points?.match(/L/g) ?? []).length).toBeGreaterThanOrEqual(5);
  expect(await title(page)).toBe("temperature (°C) · avg per 1h bucket");
  expect(page.url()).not.toContain(testKey);
  expect(await page.evaluate(`sessionStorage.getItem("sluice-key")`)).toBe(testKey);
  expect(requests.some((url) => url.includes(testKey))).toBe(false);
  // Each city is one request naming its devices.
  expect(asked(requests, "/v1/sensors/aggregates").map((query) => query.get("deviceId"))).toContain("casa-1");

  // Dead letters by kind and reason: the latest ones grouped by their first error, the most frequent first, and
  // the totals since start by kind and reason.
  const rows = (table: string) =>
    page.evaluate(
      `[...document.querySelectorAll("${table} tr")].map((tr) => [...tr.children].map((td) => td.textContent))`,
    ) as Promise<string[][]>;
  await page.waitForFunction(`document.querySelectorAll("#dead tr").length === 4`, null, { timeout: 10_000 });
  const grouped = (await rows("#dead")).map((row) => row.slice(0, 5));
  expect(grouped).toEqual([
    ["count", "kind", "reason", "first error", "via"],
    ["3", "traffic", "invalid-record", "visitorsIn: Too small: expected number to be >=0", "http"],
    ["2", "traffic", "invalid-record", "cashier: unknown field", "http"],
    ["1", "sensors", "invalid-record", "humidity: Too big: expected number to be <=100", "http"],
  ]);
  expect(await page.locator("#dead-note").textContent()).toStartWith("of the latest 6 ");
  await page.waitForFunction(`document.querySelectorAll("#dead-reasons tr").length === 2`, null, {
    timeout: 10_000,
  });
  expect(await rows("#dead-reasons")).toEqual([
    ["traffic", "invalid-record", "5"],
    ["sensors", "invalid-record", "1"],
  ]);

  // Rates need two polls of /metrics.
  await page.waitForFunction(`document.querySelector("#rate-total")?.textContent !== "–"`, null, {
    timeout: 15_000,
  });

  // The README's picture is refreshed on request only, so that a test run leaves the tree as it found it.
  if (process.env.UPDATE_SCREENSHOTS === "1") {
    await page.screenshot({ path: `${import.meta.dir}/../docs/dashboard.png`, fullPage: true });
  }

  // Choose the stores: one line per city, each the server's sum for the city's stores; counts start on their sum.
  await page.selectOption("#kind", "traffic");
  expect(await page.locator("#group option").allTextContents()).toEqual([
    "per city",
    "per source",
    "all together",
  ]);
  await waitForLegend(page, ["Dakar", "Lyon"]);
  expect(await page.locator("#stat").inputValue()).toBe("sum");
  expect(await title(page)).toBe("visitorsIn (visitors) · sum per 1h bucket");
  const lyon = asked(requests, "/v1/traffic/aggregates").find((query) => query.get("storeId")?.includes(","));
  expect(lyon?.get("storeId")).toBe("store-a,store-c");
  if (process.env.SCREENSHOT_DIR) {
    await page.screenshot({ path: `${process.env.SCREENSHOT_DIR}/traffic-per-city.png`, fullPage: true });
  }
  await page.selectOption("#group", { label: "per source" });
  await waitForLegend(page, ["store-a", "store-b", "store-c"]);
  await page.selectOption("#metric", "conversionRate");
  await page.waitForFunction(
    `document.querySelector("#chart text")?.textContent?.startsWith("conversionRate (ratio)")`,
    null,
    {
      timeout: 10_000,
    },
  );
  expect(await page.locator("#stat").isDisabled()).toBe(true);
  expect(problems).toEqual([]);
  await page.close();
}, 90_000);

test("flights: one line per airline or per flight, the Only filter, and delays in minutes", async () => {
  const { page, problems, requests } = await openDashboard();
  await page.selectOption("#kind", "flights");
  expect(await page.locator("#group option").allTextContents()).toEqual([
    "per airline",
    "per source",
    "all together",
  ]);
  await page.selectOption("#group", { label: "per airline" });
  await waitForLegend(page, ["Air France", "Royal Air Maroc"]);
  expect(await page.locator("#chart path.series").count()).toBe(2);

  // The airline's line is the server's answer for its flights, asked for together.
  const now = Date.now();
  const royal = flightPlan.filter((flight) => flight.airline === royalAirMaroc).map((f) => flightId(f, now));
  const flightsAsked = asked(requests, "/v1/flights/aggregates").map((query) => query.get("flightId"));
  expect(flightsAsked).toContain(royal.sort().join(","));

  await page.selectOption("#group", { label: "per source" });
  await waitForLegend(page, flightPlan.map((flight) => flightId(flight, now)).sort());
  expect(await page.locator("#chart path.series").count()).toBe(3);

  await page.selectOption("#group", { label: "per airline" });
  await waitForLegend(page, ["Air France", "Royal Air Maroc"]);
  await page.selectOption("#only", "Royal Air Maroc");
  await waitForLegend(page, ["Royal Air Maroc"]);
  expect(await page.locator("#chart path.series").count()).toBe(1);
  await page.selectOption("#only", "");
  await waitForLegend(page, ["Air France", "Royal Air Maroc"]);

  await page.selectOption("#metric", "altitude");
  await page.waitForFunction(`document.querySelector("#chart text.title")?.textContent?.includes("(m)")`);
  await page.selectOption("#metric", "departureDelay");
  await page.waitForFunction(
    `document.querySelector("#chart text.title")?.textContent === "departureDelay (min) · avg per 1h bucket"`,
    null,
    { timeout: 10_000 },
  );
  await waitForLegend(page, ["Air France", "Royal Air Maroc"]);
  // The y axis: round steps, and the unit beside it.
  const ticks = (await page.evaluate(
    `[...document.querySelectorAll("#chart text[text-anchor=end]")].map((t) => Number(t.textContent))`,
  )) as number[];
  expect(ticks.length).toBeGreaterThanOrEqual(3);
  const step = (ticks[1] ?? 0) - (ticks[0] ?? 0);
  expect([1, 2, 5, 10, 20, 50]).toContain(step);
  expect(ticks.every((tick) => tick % step === 0)).toBe(true);
  expect(await page.locator("#chart text[transform]").textContent()).toBe("min");
  expect(problems).toEqual([]);
  await page.close();
}, 90_000);

test("more series than the palette has colours: every one drawn, each in a colour of its own", async () => {
  const cities = [
    "Agadir",
    "Casablanca",
    "Dakar",
    "Fes",
    "Lisbon",
    "Lyon",
    "Madrid",
    "Marrakesh",
    "Paris",
    "Rabat",
    "Tangier",
  ];
  const now = Date.now();
  const observations = cities.flatMap((city, i) =>
    [180, 120, 60, 0].map((minutes) => ({
      stationId: `station-${i}`,
      ts: new Date(now - minutes * 60_000).toISOString(),
      city,
      temperature: 10 + i,
    })),
  );
  const before = runtime.sink?.stats.records ?? 0;
  expect((await post(runtime, "/v1/weather/observations", observations)).status).toBe(202);
  await eventually(() => (runtime.sink?.stats.records ?? 0) >= before + observations.length, 30_000);
  const { page, problems } = await openDashboard();
  await page.selectOption("#kind", "weather");
  await page.selectOption("#group", { label: "per city" });
  await waitForLegend(page, cities);
  const strokes = await page
    .locator("#chart path.series")
    .evaluateAll((paths) => paths.map((path) => path.getAttribute("stroke")));
  expect(strokes).toHaveLength(cities.length);
  expect(new Set(strokes).size).toBe(cities.length);
  expect(problems).toEqual([]);
  await page.close();
}, 90_000);

test("all together, the conversion rate drawn is the server's for the same bucket", async () => {
  const { page, problems, requests } = await openDashboard();
  await page.selectOption("#kind", "traffic");
  await page.selectOption("#group", { label: "all together" });
  await page.selectOption("#metric", "conversionRate");
  await waitForLegend(page, ["all together"]);
  await page.waitForFunction(
    `document.querySelector("#chart text.title")?.textContent?.startsWith("conversionRate")`,
  );
  const drawn = await drawnPoints(page);
  expect(drawn.length).toBeGreaterThanOrEqual(5);
  const from = drawn[0]?.[0] ?? "";
  const answer = (await (
    await runtime.app.request(`/v1/traffic/aggregates?bucket=1h&from=${encodeURIComponent(from)}`)
  ).json()) as { items: { bucketStart: string; conversionRate: number | null }[] };
  const served = new Map(answer.items.map((item) => [item.bucketStart, item.conversionRate]));
  for (const [at, value] of drawn) expect(served.get(at)).toBe(value);
  // One request for it, without groupBy.
  expect(asked(requests, "/v1/traffic/aggregates").at(-1)?.has("groupBy")).toBe(false);
  expect(problems).toEqual([]);
  await page.close();
}, 90_000);

test("the page and its scripts name no kind, source field, metric, derived value or group of the registry", async () => {
  const folder = `${import.meta.dir}/../src/dashboard`;
  const files = readdirSync(folder);
  expect(files).toContain("app.js");
  const page = (await Promise.all(files.map((file) => Bun.file(`${folder}/${file}`).text())))
    .join("\n")
    .toLowerCase();
  const names = kinds.flatMap((kind) => [
    kind.name,
    kind.sourceField,
    ...kind.metrics.flatMap((metric) => [metric.name, metric.path.join(".")]),
    ...Object.keys(kind.derived),
    ...(kind.group ? [kind.group.path.join(".")] : []),
  ]);
  expect(names.length).toBeGreaterThan(20);
  expect([...new Set(names)].filter((name) => page.includes(name.toLowerCase()))).toEqual([]);
});

test("without a key, or with a refused one, it asks for one", async () => {
  const page = await browser.newPage();
  await page.goto(`${server.url.href}dashboard`);
  expect(await page.locator("#login").isVisible()).toBe(true);
  await page.fill("#key-input", "sk_not_a_key");
  await page.click("#login-form button");
  await page.waitForFunction(
    `document.querySelector("#login-error")?.textContent?.includes("refused")`,
    null,
    {
      timeout: 10_000,
    },
  );
  await page.close();
}, 30_000);
