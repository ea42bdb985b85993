import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import type { Browser } from "playwright-core";
import { createLogger } from "../src/log";
import { createRuntime, type Runtime } from "../src/runtime";
import { launchChromium } from "./browser";
import { post, testConfig, testDatabase, testKey, withTestKey } from "./helpers";

let browser: Browser;
const cleanups: (() => Promise<unknown>)[] = [];
beforeAll(async () => {
  browser = await launchChromium();
}, 30_000);
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await browser.close();
}, 30_000);

async function served(overrides: Record<string, string>, databaseUrl: string) {
  const config = testConfig({ DATABASE_URL: databaseUrl, ROLES: "gateway", ...overrides });
  const runtime: Runtime = withTestKey(createRuntime(config, createLogger("silent")));
  const server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: runtime.app.fetch });
  cleanups.push(async () => {
    await server.stop(true);
    await runtime.close();
  });
  return { runtime, url: server.url.href };
}

test("the dashboard shows the spool: depth, size against its bound, oldest age, refusals; no card without one", async () => {
  const database = await testDatabase();
  cleanups.push(() => database.drop());
  const dir = await mkdtemp(`${tmpdir()}/sluice-spool-dashboard-`);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  // Kafka out of reach: what is posted stays in the spool.
  const spooling = await served(
    { KAFKA_BROKERS: "127.0.0.1:1", KAFKA_ACK_TIMEOUT_MS: "500", SPOOL_DIR: dir, SPOOL_MAX_BYTES: "1048576" },
    database.url,
  );
  const readings = [1, 2, 3].map((i) => ({ deviceId: "dash-1", ts: new Date().toISOString(), pm25: i }));
  const response = await post(spooling.runtime, "/v1/sensors/readings", readings);
  expect(await response.json()).toMatchObject({ accepted: 3, spooled: 3 });

  const page = await browser.newPage();
  await page.goto(`${spooling.url}dashboard#key=${testKey}`);
  await page.waitForFunction(`document.querySelector("#spool-depth")?.textContent === "3 records"`, null, {
    timeout: 15_000,
  });
  expect(await page.locator("#spool-card").isVisible()).toBe(true);
  const rows = Object.fromEntries(
    (await page.locator("#spool tr").allTextContents()).map((row) => {
      const cells = row.match(
        /^(size|oldest|spooled \/ s|forwarded \/ s|refused|damaged entries dead-lettered)(.*)$/,
      );
      return [cells?.[1], cells?.[2]];
    }),
  );
  expect(rows.size).toMatch(/^0\.0 MiB of 1\.0 MiB \(0\.\d %\)$/);
  expect(rows.oldest).toMatch(/^\d+ s ago$/);
  expect(rows.refused).toBe("none");
  expect(rows["damaged entries dead-lettered"]).toBe("0");

  const plain = await served({}, database.url);
  const other = await browser.newPage();
  await other.goto(`${plain.url}dashboard#key=${testKey}`);
  await other.waitForFunction(`document.querySelector("#lag")?.textContent !== "–"`, null, {
    timeout: 15_000,
  });
  expect(await other.locator("#spool-card").isVisible()).toBe(false);
}, 60_000);
