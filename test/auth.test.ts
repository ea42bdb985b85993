import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createKey, revokeKey } from "../src/auth/keys";
import { allTopics } from "../src/kafka/client";
import type { Logger } from "../src/log";
import type { Runtime } from "../src/runtime";
import { counterValue, eventually, recordTopics, startRuntime, testKey } from "./helpers";

let runtime: Runtime;

beforeAll(async () => {
  runtime = await startRuntime({ KEY_CACHE_SECONDS: "1" });
}, 30_000);
afterAll(() => runtime.close(), 30_000);

/** A request exactly as a client sends it: only the headers given here. */
function call(
  path: string,
  init: { method?: string; headers?: Record<string, string>; body?: unknown } = {},
) {
  return runtime.app.fetch(
    new Request(`http://sluice${path}`, {
      method: init.method ?? "GET",
      headers: { "content-type": "application/json", ...init.headers },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
    }),
  );
}
const reading = () => ({ deviceId: "auth-dev", ts: new Date().toISOString(), temperature: 20 });
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

describe("API keys", () => {
  test("no key or a wrong key: 401 problem+json with WWW-Authenticate, the key never echoed", async () => {
    const attempts: Record<string, string>[] = [
      {},
      bearer("sk_wrong_key_123"),
      { "x-api-key": "sk_wrong_key_123" },
      { authorization: "Basic abc" },
    ];
    for (const headers of attempts) {
      for (const [method, path] of [
        ["POST", "/v1/sensors/readings"],
        ["GET", "/v1/sensors/readings"],
        ["GET", "/v1/traffic/aggregates"],
        ["GET", "/v1/weather/latest"],
      ] as const) {
        const response = await call(path, {
          method,
          headers,
          body: method === "POST" ? reading() : undefined,
        });
        expect(response.status).toBe(401);
        expect(response.headers.get("content-type")).toBe("application/problem+json");
        expect(response.headers.get("www-authenticate")).toContain("Bearer");
        expect(await response.text()).not.toContain("sk_wrong_key_123");
      }
    }
  });

  test("the 401 says whether the key is missing, malformed or not valid", async () => {
    const detail = async (headers: Record<string, string>) =>
      ((await (await call("/v1/sensors/latest", { headers })).json()) as { detail: string }).detail;
    expect(await detail({})).toStartWith("an API key is required");
    expect(await detail({ authorization: "Basic abc" })).toBe(
      "the Authorization header is not valid: send `Bearer <key>`",
    );
    expect(await detail({ authorization: "Bearer" })).toStartWith("the Authorization header is not valid");
    expect(await detail(bearer("sk_wrong_key_123"))).toBe("the API key is not valid");
  });

  test("the static key works as a Bearer token and as X-API-Key", async () => {
    expect(
      (await call("/v1/sensors/readings", { method: "POST", headers: bearer(testKey), body: reading() }))
        .status,
    ).toBe(202);
    expect((await call("/v1/sensors/latest", { headers: { "x-api-key": testKey } })).status).toBe(200);
  });

  test("health, the spec and the docs stay open", async () => {
    for (const path of ["/healthz", "/readyz", "/openapi.json", "/docs"])
      expect((await call(path)).status).toBe(200);
  });

  test("managed keys are confined to their scopes: 403 outside them", async () => {
    const { key: ingestSensors } = await createKey(runtime.db, ["ingest:sensors"], "sensor fleet");
    const { key: readAll } = await createKey(runtime.db, ["read:*"], "dashboard");
    const { key: admin } = await createKey(runtime.db, ["admin"]);
    const expectations: [string, string, string, number][] = [
      [ingestSensors, "POST", "/v1/sensors/readings", 202],
      [ingestSensors, "POST", "/v1/traffic/counts", 403],
      [ingestSensors, "GET", "/v1/sensors/readings", 403],
      [ingestSensors, "GET", "/v1/kinds", 200],
      [ingestSensors, "GET", "/v1/deadletters", 403],
      [readAll, "GET", "/v1/sensors/readings", 200],
      [readAll, "GET", "/v1/traffic/aggregates", 200],
      [readAll, "POST", "/v1/weather/observations", 403],
      [admin, "POST", "/v1/traffic/counts", 202],
      [admin, "GET", "/v1/weather/latest", 200],
    ];
    for (const [key, method, path, status] of expectations) {
      const body =
        path === "/v1/traffic/counts"
          ? { storeId: "s", ts: new Date().toISOString(), visitorsIn: 1 }
          : path === "/v1/weather/observations"
            ? { stationId: "w", ts: new Date().toISOString(), temperature: 1 }
            : reading();
      const response = await call(path, {
        method,
        headers: bearer(key),
        body: method === "POST" ? body : undefined,
      });
      expect(`${method} ${path} ${response.status}`).toBe(`${method} ${path} ${status}`);
      if (status === 403) {
        const problem = (await response.json()) as { detail: string };
        expect(problem.detail).toMatch(/lacks the scope (ingest|read):/);
        expect(problem.detail).not.toContain(key);
      }
    }
  });

  test("a revoked key stops working within seconds", async () => {
    const { id, key } = await createKey(runtime.db, ["read:*"]);
    expect((await call("/v1/sensors/latest", { headers: bearer(key) })).status).toBe(200);
    expect(await revokeKey(runtime.db, id)).toBe(true);
    const revokedAt = Date.now();
    await eventually(
      async () => (await call("/v1/sensors/latest", { headers: bearer(key) })).status === 401,
      5000,
    );
    expect(Date.now() - revokedAt).toBeLessThan(3000);
  });

  test("bun run keys create | list | revoke: the key is printed once, on the last line", async () => {
    const env = { ...process.env, DATABASE_URL: runtime.config.DATABASE_URL };
    const run = (...args: string[]) =>
      Bun.spawnSync(["bun", "run", "src/main.ts", "keys", ...args], { cwd: `${import.meta.dir}/..`, env });
    const created = run("create", "--scopes", "read:sensors,ingest:sensors", "--name", "cli key");
    expect(created.exitCode).toBe(0);
    const lines = created.stdout.toString().trim().split("\n");
    const key = lines.at(-1) ?? "";
    expect(key).toMatch(/^sk_[A-Za-z0-9_-]{40,}$/);
    const id = lines[0]?.match(/created (key_\w+)/)?.[1] ?? "";
    expect((await call("/v1/sensors/latest", { headers: bearer(key) })).status).toBe(200);

    const listed = run("list").stdout.toString();
    expect(listed).toContain(id);
    expect(listed).toContain("cli key");
    expect(listed).not.toContain(key);

    expect(run("revoke", id).exitCode).toBe(0);
    await eventually(
      async () => (await call("/v1/sensors/latest", { headers: bearer(key) })).status === 401,
      5000,
    );
    expect(run("create", "--scopes", "write:everything").exitCode).toBe(2);
  }, 60_000);

  test("keys appear in no log line, no Kafka record and no error message", async () => {
    const lines: string[] = [];
    const capture: Logger = {
      debug: (message, fields) => lines.push(JSON.stringify({ message, ...fields })),
      info: (message, fields) => lines.push(JSON.stringify({ message, ...fields })),
      warn: (message, fields) => lines.push(JSON.stringify({ message, ...fields })),
      error: (message, fields) => lines.push(JSON.stringify({ message, ...fields })),
    };
    const watched = await startRuntime({ MQTT_CONNECTIONS: "0", LOG_LEVEL: "debug" }, { logger: capture });
    try {
      const { key } = await createKey(watched.db, ["ingest:*"]);
      const send = (body: unknown, headers: Record<string, string>) =>
        watched.app.fetch(
          new Request("http://sluice/v1/sensors/readings", {
            method: "POST",
            headers: { "content-type": "application/json", ...headers },
            body: typeof body === "string" ? body : JSON.stringify(body),
          }),
        );
      expect((await send(reading(), bearer(key))).status).toBe(202);
      expect((await send([reading(), { deviceId: "x", ts: 1 }], { "x-api-key": key })).status).toBe(202);
      expect((await send("{broken", bearer(key))).status).toBe(400);
      expect((await send(reading(), bearer(`${key}x`))).status).toBe(401);
      const topics = await recordTopics(allTopics(watched.config.KAFKA_TOPIC_PREFIX));
      await topics.waitFor((records) => records.filter((r) => r.topic.endsWith("deadletter")).length >= 2);
      await topics.stop();
      const everything = [...lines, ...topics.records.map((record) => JSON.stringify(record))].join("\n");
      expect(topics.records.length).toBeGreaterThanOrEqual(4);
      expect(everything).not.toContain(key);
      expect(everything).not.toContain(testKey);
    } finally {
      await watched.close();
    }
  }, 60_000);
});

describe("rate limits", () => {
  test("per key, in Redis: 429 with Retry-After and the limit named, once the burst is spent", async () => {
    const limited = await startRuntime({
      MQTT_CONNECTIONS: "0",
      RATE_LIMIT_PER_SECOND: "2",
      RATE_LIMIT_BURST: "4",
    });
    try {
      const statuses: number[] = [];
      let refused: Response | undefined;
      for (let i = 0; i < 6; i++) {
        const response = await limited.app.request("/v1/sensors/latest");
        statuses.push(response.status);
        if (response.status === 429) refused ??= response;
      }
      expect(statuses.slice(0, 4)).toEqual([200, 200, 200, 200]);
      expect(statuses.slice(4)).toContain(429);
      expect(refused?.headers.get("retry-after")).toBe("1");
      const problem = (await refused?.json()) as { type: string; detail: string };
      expect(problem.type).toBe("urn:sluice:problem:rate-limited");
      expect(problem.detail).toContain("2 requests per second (burst 4)");
      await Bun.sleep(1100);
      expect((await limited.app.request("/v1/sensors/latest")).status).toBe(200);
      // Another key has a bucket of its own.
      const { key } = await createKey(limited.db, ["read:*"]);
      expect((await limited.app.request("/v1/sensors/latest", { headers: bearer(key) })).status).toBe(200);
    } finally {
      await limited.close();
    }
  }, 60_000);

  test("with Redis down the limits fail open and say so", async () => {
    const open = await startRuntime({
      MQTT_CONNECTIONS: "0",
      RATE_LIMIT_PER_SECOND: "1",
      REDIS_URL: "redis://127.0.0.1:1/0",
    });
    try {
      for (let i = 0; i < 5; i++) expect((await open.app.request("/v1/sensors/latest")).status).toBe(200);
      expect(await counterValue(open.metrics.rateLimitFailOpen)).toBeGreaterThanOrEqual(5);
    } finally {
      await open.close();
    }
  }, 60_000);
});

describe("the spec", () => {
  test("declares the key schemes and the 401, 403 and 429 answers of every protected route that has them", async () => {
    const spec = (await (await call("/openapi.json")).json()) as {
      components: { securitySchemes: Record<string, unknown> };
      paths: Record<string, Record<string, { security?: unknown; responses: Record<string, unknown> }>>;
    };
    expect(Object.keys(spec.components.securitySchemes).sort()).toEqual(["apiKey", "bearer"]);
    for (const [path, operations] of Object.entries(spec.paths)) {
      for (const operation of Object.values(operations)) {
        if (!path.startsWith("/v1/")) {
          // Open endpoints say so: probes and scrapers carry no key.
          expect(operation.security).toEqual([]);
          continue;
        }
        expect(operation.security).toEqual([{ bearer: [] }, { apiKey: [] }]);
        // Any valid key may read the registry; everything else under /v1 needs a scope.
        const statuses = path === "/v1/kinds" ? ["401", "429"] : ["401", "403", "429"];
        for (const status of statuses) expect(operation.responses[status], `${path} ${status}`).toBeDefined();
        if (path === "/v1/kinds") expect(operation.responses["403"]).toBeUndefined();
      }
    }
  });
});
