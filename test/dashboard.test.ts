import { afterAll, beforeAll, expect, test } from "bun:test";
import { type Browser, chromium } from "playwright-core";
import type { Runtime } from "../src/runtime";
import { eventually, freePort, post, startRuntime, testKey } from "./helpers";

const CHROMIUM = "/usr/bin/chromium";
let runtime: Runtime;
let server: ReturnType<typeof Bun.serve>;
let browser: Browser;

beforeAll(async () => {
  runtime = await startRuntime();
  server = Bun.serve({ port: await freePort(), hostname: "127.0.0.1", fetch: runtime.app.fetch });
  // Six hours of readings in two cities and two stores, so that hourly charts have lines to draw.
  const now = Date.now();
  const sensors = [];
  const traffic = [];
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
      { storeId: "store-a", ts, visitorsIn: 30 + Math.round(10 * wave), transactions: 8 },
      { storeId: "store-b", ts, visitorsIn: 12, transactions: 2 },
    );
  }
  expect((await post(runtime, "/v1/sensors/readings", sensors)).status).toBe(202);
  expect((await post(runtime, "/v1/traffic/counts", traffic)).status).toBe(202);
  expect(
    (await post(runtime, "/v1/sensors/readings", { deviceId: "casa-1", ts: now, humidity: 140 })).status,
  ).toBe(422);
  await eventually(() => (runtime.sink?.stats.records ?? 0) >= sensors.length + traffic.length, 30_000);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server.stop(true);
  await runtime.close();
}, 30_000);

test("the dashboard draws posted data live, the chooser changes it, and the key stays out of the URL", async () => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const requests: string[] = [];
  page.on("request", (request) => requests.push(request.url()));
  await page.goto(`${server.url.href}dashboard#key=${testKey}`);

  // Temperature per city: one line each for Casablanca and Paris.
  await page.waitForFunction(`document.querySelectorAll("#chart path.series").length === 2`, null, {
    timeout: 20_000,
  });
  expect(await page.locator("#legend").textContent()).toContain("Casablanca");
  expect(await page.locator("#legend").textContent()).toContain("Paris");
  const points = await page.locator("#chart path.series").first().getAttribute("d");
  expect((points?.match(/L/g) ?? []).length).toBeGreaterThanOrEqual(5);
  expect(page.url()).not.toContain(testKey);
  expect(await page.evaluate(`sessionStorage.getItem("sluice-key")`)).toBe(testKey);
  expect(requests.some((url) => url.includes(testKey))).toBe(false);

  // The dead letter shows with its reason.
  await page.waitForFunction(
    `document.querySelector("#dead")?.textContent?.includes("invalid-record")`,
    null,
    {
      timeout: 10_000,
    },
  );

  // Rates need two polls of /metrics.
  await page.waitForFunction(`document.querySelector("#rate-total")?.textContent !== "–"`, null, {
    timeout: 15_000,
  });

  // The README's picture is refreshed on request only, so that a test run leaves the tree as it found it.
  if (process.env.UPDATE_SCREENSHOTS === "1") {
    await page.screenshot({ path: `${import.meta.dir}/../docs/dashboard.png`, fullPage: true });
  }

  // Choose the stores: their lines replace the cities'.
  await page.selectOption("#kind", "traffic");
  await page.waitForFunction(`document.querySelector("#legend")?.textContent?.includes("store-a")`, null, {
    timeout: 10_000,
  });
  expect(await page.locator("#chart path.series").count()).toBe(2);
  await page.selectOption("#metric", "conversionRate");
  await page.waitForFunction(
    `document.querySelector("#chart text")?.textContent?.startsWith("conversionRate")`,
    null,
    {
      timeout: 10_000,
    },
  );
  await page.close();
}, 90_000);

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
