import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { loadConfig } from "../src/config";
import { type ConnectorConfig, ConnectorsFileError, loadConnectors } from "../src/connectors/config";
import { redactUrl } from "../src/connectors/fetch";
import { nextSlot } from "../src/connectors/runner";
import { nextLink } from "../src/connectors/sources";
import { allTopics } from "../src/kafka/client";
import type { Logger } from "../src/log";
import type { Runtime } from "../src/runtime";
import { type ApiServer, startApiServer } from "../src/simulators/apis";
import {
  counterValue,
  eventually,
  recordTopics,
  startGatewayProcess,
  startRuntime,
  testConfig,
  testDatabase,
  testKey,
} from "./helpers";

const folder = mkdtempSync(`${tmpdir()}/sluice-connectors-`);

/** A logger that keeps every line, to look for secrets in. */
function keepingLogger() {
  const lines: string[] = [];
  const log = (level: string) => (message: string, fields?: Record<string, unknown>) => {
    lines.push(JSON.stringify({ level, message, ...fields }));
  };
  const logger: Logger = { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
  return { logger, lines };
}

// biome-ignore lint/suspicious/noExplicitAny: JSON answers are checked field by field
const get = async (runtime: Runtime, path: string): Promise<any> => (await runtime.app.request(path)).json();

describe("the connectors file", () => {
  const write = async (name: string, text: string) => {
    await Bun.write(`${folder}/${name}`, text);
    return `${folder}/${name}`;
  };

  test("YAML with $VAR references from the environment; JSON is YAML too", async () => {
    const yaml = await write(
      "ok.yaml",
      `connectors:
  - name: owm
    type: openweather
    every: 10m
    apiKey: \${OWM_KEY}
    locations: [{ id: 2553604 }, { q: "Paris,FR" }, { lat: 33.57, lon: -7.59 }]
  - name: store-api
    type: http
    kind: traffic
    every: "0 * * * *"
    url: http://shop.local/visitors
    headers: { authorization: "Bearer \${SHOP_TOKEN}" }
    items: data
`,
    );
    const connectors = await loadConnectors(yaml, { OWM_KEY: "k1", SHOP_TOKEN: "t2" });
    expect(connectors.map((connector) => connector.name)).toEqual(["owm", "store-api"]);
    expect(connectors[0]).toMatchObject({ apiKey: "k1", units: "metric", timeoutMs: 10_000 });
    expect(connectors[1]).toMatchObject({ headers: { authorization: "Bearer t2" }, method: "GET" });
    const json = await write("ok.json", JSON.stringify({ connectors: [{ ...connectors[0], apiKey: "x" }] }));
    expect((await loadConnectors(json, {}))[0]?.name).toBe("owm");
  });

  test("a bad file is refused with the path of every error", async () => {
    const file = await write(
      "bad.yaml",
      `connectors:
  - { name: owm, type: openweather, every: 10m, apiKey: "\${MISSING_KEY}", locations: [{ id: 1 }] }
  - { name: owm, type: openweather, every: sometimes, apiKey: k, locations: [] }
  - { name: x, type: ftp, every: 1h }
`,
    );
    const error = await loadConnectors(file, {}).catch((caught: Error) => caught);
    expect(error).toBeInstanceOf(ConnectorsFileError);
    const message = (error as Error).message;
    expect(message).toContain("connectors[0].apiKey: environment variable MISSING_KEY is not set");
    expect(message).toContain("connectors[1].every: a duration (30s, 10m, 1h)");
    expect(message).toContain("connectors[1].locations:");
    expect(message).toContain("connectors[2].type:");
    expect(message).not.toContain("connectors[0].every");
  });

  test("the shipped example is a valid file, and a file turns the connectors role on", async () => {
    const env = { OPENWEATHER_API_KEY: "a", AVIATIONSTACK_API_KEY: "b", SHOP_TOKEN: "c" };
    const example = `${import.meta.dir}/../deploy/connectors/connectors.example.yaml`;
    expect((await loadConnectors(example, env)).map((connector) => connector.type)).toEqual([
      "openweather",
      "aviationstack",
      "http",
    ]);
    expect(loadConfig({ CONNECTORS_FILE: example }).ROLES).toEqual(["gateway", "sink", "connectors"]);
    expect(loadConfig({}).ROLES).toEqual(["gateway", "sink"]);
  });

  test("schedules: durations from the first slot, cron expressions by their next match", () => {
    const first = new Date("2026-12-01T10:00:00Z");
    expect(nextSlot("10m", new Date("2026-12-01T10:25:00Z"), first).toISOString()).toBe(
      "2026-12-01T10:30:00.000Z",
    );
    expect(nextSlot("0 * * * *", new Date("2026-12-01T10:25:00Z"), first).toISOString()).toBe(
      "2026-12-01T11:00:00.000Z",
    );
  });

  test("secrets in URLs are redacted; Link headers give the next page", () => {
    expect(redactUrl("http://api/x?q=Paris&appid=abc123&access_key=zz")).toBe(
      "http://api/x?q=Paris&appid=[redacted]&access_key=[redacted]",
    );
    expect(
      nextLink('<https://a/b?page=2>; rel="next", <https://a/b?page=9>; rel="last"', "https://a/b"),
    ).toBe("https://a/b?page=2");
    expect(nextLink('</visitors?cursor=x>; rel="prev"', "http://h/visitors")).toBeUndefined();
    expect(nextLink("</visitors?cursor=x>; rel=next", "http://h/visitors")).toBe(
      "http://h/visitors?cursor=x",
    );
  });
});

describe("polling real HTTP servers speaking the APIs' shapes", () => {
  const servers: Record<string, ApiServer> = {};
  const keys = { owm: "owm-secret-7f3a9c", aviation: "avs-secret-2b8e1d", shop: "shop-secret-9c4d2a" };
  let runtime: Runtime;
  let topics: Awaited<ReturnType<typeof recordTopics>>;
  const logs = keepingLogger();

  beforeAll(async () => {
    servers.owm = startApiServer("openweather", { apiKey: keys.owm });
    servers.aviation = startApiServer("aviationstack", { apiKey: keys.aviation, devices: 25 });
    servers.store = startApiServer("store", { apiKey: keys.shop, devices: 4 });
    const store = (name: string, pagination: Extract<ConnectorConfig, { type: "http" }>["pagination"]) =>
      ({
        name,
        type: "http",
        kind: "traffic",
        every: "2s",
        timeoutMs: 5000,
        url: `${servers.store?.url}/visitors`,
        method: "GET",
        headers: { authorization: `Bearer ${keys.shop}` },
        query: { hours: 2 },
        items: "data",
        pagination,
        maxPages: 20,
      }) as ConnectorConfig;
    const connectors: ConnectorConfig[] = [
      {
        name: "owm",
        type: "openweather",
        every: "2s",
        timeoutMs: 5000,
        baseUrl: servers.owm.url,
        apiKey: keys.owm,
        units: "metric",
        locations: [{ id: 2553604 }, { q: "Paris,FR" }, { lat: 34.02, lon: -6.84 }],
      },
      {
        name: "flights",
        type: "aviationstack",
        every: "2s",
        timeoutMs: 5000,
        baseUrl: servers.aviation.url,
        apiKey: keys.aviation,
        params: {},
        limit: 10,
        maxPages: 5,
      },
      store("store-offset", { type: "offset", offsetParam: "offset", limitParam: "limit", limit: 7 }),
      store("store-cursor", { type: "cursor", path: "next_cursor", param: "cursor" }),
      store("store-link", { type: "link" }),
    ];
    runtime = await startRuntime(
      { ROLES: "gateway,sink,connectors", LOG_LEVEL: "info" },
      { connectors, logger: logs.logger },
    );
    topics = await recordTopics(allTopics(runtime.config.KAFKA_TOPIC_PREFIX));
  }, 30_000);

  afterAll(async () => {
    await topics.stop();
    await runtime.close();
    for (const server of Object.values(servers)) await server.stop();
  }, 30_000);

  const polled = (origin: string) => topics.records.filter((record) => record.value.origin === origin);

  test("OpenWeather: one record per location, via poll, named by its connector", async () => {
    const records = await topics.waitFor((all) => {
      const mine = all.filter((record) => record.value.origin === "owm");
      return mine.length >= 3 && mine;
    });
    expect(new Set(records.map((record) => record.value.sourceId))).toEqual(
      new Set(["owm-2553604", "owm-2988507", "owm-2538475"]),
    );
    expect(records[0]?.value).toMatchObject({ kind: "weather", via: "poll", origin: "owm" });
  });

  test("AviationStack: paged by offset until pagination.total, every flight once", async () => {
    const flights = await topics.waitFor((all) => {
      const ids = new Set(
        all.filter((record) => record.value.origin === "flights").map((r) => r.value.sourceId),
      );
      return ids.size >= 25 && ids;
    });
    expect(flights.size).toBe(25);
    expect(servers.aviation?.stats.byStatus[200]).toBeGreaterThanOrEqual(3);
  });

  test("any JSON API: offset, cursor and Link pagination give the same records", async () => {
    const idsOf = (origin: string) => new Set(polled(origin).map((record) => record.value.id as string));
    await eventually(
      () => idsOf("store-offset").size > 0 && idsOf("store-cursor").size > 0 && idsOf("store-link").size > 0,
    );
    const expected = await fetch(`${servers.store?.url}/visitors?hours=2&limit=1000`, {
      headers: { authorization: `Bearer ${keys.shop}` },
    }).then((response) => response.json() as Promise<{ data: { id: string }[] }>);
    const all = new Set(expected.data.map((item) => item.id));
    expect(all.size).toBeGreaterThan(20);
    for (const origin of ["store-offset", "store-cursor", "store-link"]) {
      await eventually(() => idsOf(origin).size >= all.size);
      expect(idsOf(origin)).toEqual(all);
    }
  });

  test("polls that overlap store each record once; an unchanged ETag gives no records", async () => {
    await eventually(
      async () =>
        (await counterValue(runtime.metrics.connectorPolls, { connector: "owm", outcome: "not-modified" })) >=
        1,
      20_000,
    );
    const stored = await get(runtime, "/v1/weather/observations?limit=1000");
    const ids = stored.items.map((item: { id: string }) => item.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(
      stored.items.every(
        (item: { via: string; origin: string }) => item.via === "poll" && item.origin === "owm",
      ),
    ).toBe(true);
  });

  test("GET /v1/connectors tells each one's state", async () => {
    const { items } = await get(runtime, "/v1/connectors");
    expect(items.map((item: { name: string }) => item.name)).toEqual([
      "owm",
      "flights",
      "store-offset",
      "store-cursor",
      "store-link",
    ]);
    for (const item of items) {
      expect(item.lastSuccess).not.toBeNull();
      expect(item.nextRun).not.toBeNull();
    }
  });

  test("no secret in the logs or in Kafka", async () => {
    const everything = [...logs.lines, ...topics.records.map((record) => JSON.stringify(record))].join("\n");
    expect(logs.lines.some((line) => line.includes("connector polled"))).toBe(true);
    for (const secret of Object.values(keys)) expect(everything).not.toContain(secret);
  });
});

describe("failures, quotas and one poller per deployment", () => {
  test("a timeout, 503, 429 and 500 are retried (after Retry-After or a backoff); then the poll completes", async () => {
    const answers = [
      () => Bun.sleep(3000).then(() => new Response("late", { status: 200 })),
      () => new Response("busy", { status: 503, headers: { "retry-after": "1" } }),
      () => new Response("slow down", { status: 429, headers: { "retry-after": "1" } }),
      () => new Response("oops", { status: 500 }),
    ];
    const arrivals: number[] = [];
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: () => {
        arrivals.push(Date.now());
        const answer = answers.shift();
        if (answer) return answer();
        return Response.json({
          items: [{ storeId: "flaky-1", ts: new Date().toISOString(), visitorsIn: 4 }],
        });
      },
    });
    const runtime = await startRuntime(
      { ROLES: "gateway,sink,connectors" },
      {
        connectors: [
          {
            name: "flaky",
            type: "http",
            kind: "traffic",
            every: "1m",
            timeoutMs: 2000,
            url: `http://127.0.0.1:${server.port}/counts`,
            method: "GET",
            headers: {},
            query: {},
            items: "items",
            maxPages: 1,
          },
        ],
      },
    );
    try {
      const stored = await eventually(async () => {
        const page = await get(runtime, "/v1/traffic/counts?storeId=flaky-1");
        return page.items.length === 1 && page;
      }, 20_000);
      expect(stored.items[0]).toMatchObject({ via: "poll", origin: "flaky" });
      expect(arrivals).toHaveLength(5);
      const gaps = arrivals.slice(1).map((at, i) => at - (arrivals[i] ?? 0));
      // The timeout (2 s) and its backoff (about 1 s), then Retry-After: 1 twice, then a backoff again.
      expect(gaps[0]).toBeGreaterThanOrEqual(2700);
      expect(gaps[1]).toBeGreaterThanOrEqual(950);
      expect(gaps[2]).toBeGreaterThanOrEqual(950);
    } finally {
      await runtime.close();
      await server.stop(true);
    }
  }, 30_000);

  test("a poll still running when its next slot comes makes that slot be skipped, never two at once", async () => {
    let open = 0;
    let most = 0;
    const server = Bun.serve({
      port: 0,
      hostname: "127.0.0.1",
      fetch: async () => {
        most = Math.max(most, ++open);
        await Bun.sleep(2500);
        open--;
        return Response.json([]);
      },
    });
    const runtime = await startRuntime(
      { ROLES: "gateway,connectors" },
      {
        connectors: [
          {
            name: "slow",
            type: "http",
            kind: "traffic",
            every: "1s",
            timeoutMs: 5000,
            url: `http://127.0.0.1:${server.port}/counts`,
            method: "GET",
            headers: {},
            query: {},
            items: "",
            maxPages: 1,
          },
        ],
      },
    );
    try {
      const skipped = () =>
        counterValue(runtime.metrics.connectorPolls, { connector: "slow", outcome: "skipped" });
      await eventually(async () => (await skipped()) >= 2, 10_000);
      expect(most).toBe(1);
    } finally {
      await runtime.close();
      await server.stop(true);
    }
  }, 20_000);

  test("a quota survives a restart, and a second instance stands by while the first polls", async () => {
    const server = startApiServer("openweather", {});
    const database = await testDatabase();
    const connector: ConnectorConfig = {
      name: "owm-quota",
      type: "openweather",
      every: "1s",
      timeoutMs: 2000,
      baseUrl: server.url,
      apiKey: "k",
      units: "metric",
      locations: [{ id: 2553604 }],
      maxPerDay: 3,
    };
    const start = () =>
      startRuntime({ ROLES: "gateway,connectors", DATABASE_URL: database.url }, { connectors: [connector] });
    try {
      const first = await start();
      const second = await start();
      await eventually(() => server.stats.requests >= 3, 15_000);
      await Bun.sleep(1500);
      expect(server.stats.requests).toBe(3);
      const [one] = (await get(first, "/v1/connectors")).items;
      const [other] = (await get(second, "/v1/connectors")).items;
      const states = [one.state, other.state].sort();
      expect(states).toContain("standby");
      expect([one, other].find((item) => item.state !== "standby").quota).toEqual([
        expect.objectContaining({ period: "day", limit: 3, used: 3, left: 0 }),
      ]);
      await first.close();
      await second.close();
      const again = await start();
      await Bun.sleep(2500);
      expect(server.stats.requests).toBe(3);
      expect((await get(again, "/v1/connectors")).items[0].quota[0]).toMatchObject({ used: 3, left: 0 });
      await again.close();
    } finally {
      await server.stop();
      await database.drop();
    }
  }, 40_000);

  test("two gateways, one poller; when it is killed the other takes over", async () => {
    const server = startApiServer("openweather", {});
    const database = await testDatabase();
    const file = `${folder}/takeover.yaml`;
    await Bun.write(
      file,
      `connectors:\n  - { name: owm-one, type: openweather, every: 1s, baseUrl: "${server.url}", apiKey: k, locations: [{ id: 2553604 }] }\n`,
    );
    const config = testConfig();
    const env = {
      CONNECTORS_FILE: file,
      DATABASE_URL: database.url,
      KAFKA_BROKERS: config.KAFKA_BROKERS.join(","),
      KAFKA_TOPIC_PREFIX: config.KAFKA_TOPIC_PREFIX,
      REDIS_KEY_PREFIX: config.REDIS_KEY_PREFIX,
      API_KEYS: testKey,
      MQTT_CONNECTIONS: "0",
    };
    const gateways = [await startGatewayProcess(env), await startGatewayProcess(env)];
    const stateOf = async (url: string) => {
      const answer = await fetch(`${url}/v1/connectors`, { headers: { authorization: `Bearer ${testKey}` } });
      return ((await answer.json()) as { items: { state: string }[] }).items[0]?.state;
    };
    try {
      await eventually(() => server.stats.requests >= 2, 20_000);
      // Both have tried for the lock by their second slot: one polls, the other stands by.
      await Bun.sleep(2000);
      const states = await Promise.all(gateways.map((gateway) => stateOf(gateway.url)));
      expect(states.filter((state) => state === "standby")).toHaveLength(1);
      const owner = gateways[states.indexOf("standby") === 0 ? 1 : 0];
      const survivor = gateways.find((gateway) => gateway !== owner);
      owner?.proc.kill("SIGKILL");
      await owner?.proc.exited;
      const before = server.stats.requests;
      await eventually(
        async () => server.stats.requests > before + 1 && (await stateOf(survivor?.url ?? "")) !== "standby",
        10_000,
      );
    } finally {
      for (const gateway of gateways) gateway.proc.kill("SIGKILL");
      await Promise.all(gateways.map((gateway) => gateway.proc.exited));
      await server.stop();
      await database.drop();
    }
  }, 90_000);
});
