import { afterAll, beforeAll, expect, test } from "bun:test";
import createClient from "openapi-fetch";
import { clientTypes } from "../scripts/generate-client";
import type { Runtime } from "../src/runtime";
import type { paths } from "./generated/sluice-api";
import { authHeader, eventually, freePort, startRuntime } from "./helpers";

let runtime: Runtime;
let server: ReturnType<typeof Bun.serve>;
let client: ReturnType<typeof createClient<paths, "application/json" | "application/problem+json">>;

beforeAll(async () => {
  runtime = await startRuntime({ MQTT_CONNECTIONS: "0" });
  server = Bun.serve({ port: await freePort(), hostname: "127.0.0.1", fetch: runtime.app.fetch });
  client = createClient<paths, "application/json" | "application/problem+json">({
    headers: authHeader,
    baseUrl: server.url.href.replace(/\/$/, ""),
  });
}, 30_000);

afterAll(async () => {
  await server.stop(true);
  await runtime.close();
}, 30_000);

test("the committed client types are what a generator makes of the served document today", async () => {
  const spec = await (await fetch(`${server.url.href}openapi.json`)).json();
  const committed = await Bun.file(`${import.meta.dir}/generated/sluice-api.ts`).text();
  // If this fails, the API changed: run `bun scripts/generate-client.ts` and review the difference.
  expect(await clientTypes(spec)).toBe(committed);
});

test("a client generated from the spec posts and reads records, with the types the spec promises", async () => {
  const ts = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 3_600_000).toISOString();
  const posted = await client.POST("/v1/traffic/counts", {
    body: [
      { storeId: "typed-store", ts, visitorsIn: 12, transactions: 3, revenue: 60 },
      { storeId: "typed-store", ts, visitorsIn: 8, transactions: 1 },
    ],
  });
  expect(posted.response.status).toBe(202);
  expect(posted.data?.accepted).toBe(2);

  const refused = await client.POST("/v1/traffic/counts", {
    body: { storeId: "typed-store", ts, visitorsIn: -1 },
  });
  expect(refused.response.status).toBe(422);
  expect(refused.error?.errors?.[0]?.path).toBe("visitorsIn");

  await eventually(async () => {
    const page = await client.GET("/v1/traffic/counts", { params: { query: { storeId: "typed-store" } } });
    return page.data?.items.length === 2;
  });
  const page = await client.GET("/v1/traffic/counts", {
    params: { query: { storeId: "typed-store", limit: 1 } },
  });
  expect(page.data?.items[0]?.data.visitorsIn).toBeNumber();
  expect(page.data?.nextCursor).toBeString();

  const buckets = await client.GET("/v1/traffic/aggregates", {
    params: { query: { bucket: "1h", from: ts, storeId: "typed-store", metrics: "visitorsIn,transactions" } },
  });
  const [bucket] = buckets.data?.items ?? [];
  expect(bucket?.count).toBe(2);
  expect(bucket?.metrics.visitorsIn?.sum).toBe(20);
  expect(bucket?.conversionRate).toBe(4 / 20);

  const latest = await client.GET("/v1/traffic/latest", { params: { query: { storeId: "typed-store" } } });
  expect(latest.data?.items[0]?.sourceId).toBe("typed-store");

  const bad = await client.GET("/v1/traffic/aggregates", {
    params: { query: { bucket: "1h", from: ts, to: ts } },
  });
  expect(bad.response.status).toBe(400);
  expect(bad.error?.errors?.[0]?.path).toBe("from");
});
