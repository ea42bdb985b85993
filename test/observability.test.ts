import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createLogger } from "../src/log";
import type { Runtime } from "../src/runtime";
import { createRuntime } from "../src/runtime";
import { eventually, post, startRuntime, testConfig, withTestKey } from "./helpers";

let runtime: Runtime;
const lines: Record<string, unknown>[] = [];
beforeAll(async () => {
  const logger = createLogger("info", {}, (line) => lines.push(JSON.parse(line)));
  runtime = await startRuntime({ LOG_LEVEL: "info" }, { logger });
}, 30_000);
afterAll(() => runtime.close(), 30_000);

const metricValue = (text: string, name: string, labels = "") =>
  Number(
    text
      .split("\n")
      .find((line) => line.startsWith(`${name}${labels ? `{${labels}}` : ""} `))
      ?.split(" ")[1] ?? Number.NaN,
  );

describe("/metrics", () => {
  test("is Prometheus text, sluice_-prefixed, counters ending in _total, and counts what happened", async () => {
    const ts = new Date().toISOString();
    const response = await post(runtime, "/v1/traffic/counts", [
      { storeId: "m-1", ts, visitorsIn: 4 },
      { storeId: "m-1", ts, visitorsIn: 5 },
      { storeId: "m-1", ts, visitorsIn: -1 },
    ]);
    expect(response.status).toBe(202);
    await post(runtime, "/v1/traffic/counts", "{", "application/json");
    await eventually(() => (runtime.sink?.stats.inserted ?? 0) >= 2);

    const scrape = await runtime.app.fetch(new Request("http://sluice/metrics"));
    expect(scrape.status).toBe(200);
    expect(scrape.headers.get("content-type")).toContain("text/plain");
    const text = await scrape.text();
    for (const line of text.split("\n").filter(Boolean)) {
      if (line.startsWith("# TYPE ")) {
        const [, , name, type] = line.split(" ");
        expect(name).toStartWith("sluice_");
        if (type === "counter") expect(name).toEndWith("_total");
      } else if (!line.startsWith("#")) {
        expect(line).toMatch(
          /^sluice_\w+(\{[^}]*\})? -?[\d.e+-]+$|^sluice_\w+(\{[^}]*\})? (NaN|\+Inf|-Inf)$/,
        );
      }
    }
    expect(metricValue(text, "sluice_records_accepted_total", 'kind="traffic",transport="http"')).toBe(2);
    expect(metricValue(text, "sluice_records_rejected_total", 'kind="traffic",transport="http"')).toBe(1);
    expect(
      metricValue(
        text,
        "sluice_dead_letters_total",
        'kind="traffic",transport="http",reason="malformed-body"',
      ),
    ).toBe(1);
    expect(metricValue(text, "sluice_sink_rows_written_total", 'kind="traffic"')).toBe(2);
    expect(metricValue(text, "sluice_kafka_batch_records_count")).toBeGreaterThanOrEqual(1);
    expect(metricValue(text, "sluice_process_resident_memory_bytes")).toBeGreaterThan(10_000_000);
    expect(text).toContain(
      'sluice_http_requests_total{method="POST",route="/v1/traffic/counts",status="202"} 1',
    );
    expect(text).toMatch(/sluice_sink_lag_records\{topic="[^"]+\.traffic",partition="\d"\} 0/);
  });
});

describe("logs", () => {
  test("one wide JSON line per request, with its id (given or made), the key's id, and what happened", async () => {
    lines.length = 0;
    const response = await runtime.app.request("/v1/sensors/readings", {
      method: "POST",
      headers: { "content-type": "application/json", "x-request-id": "req-abc-123" },
      body: JSON.stringify([{ deviceId: "log-1", ts: new Date().toISOString(), co2: 600 }]),
    });
    expect(response.headers.get("x-request-id")).toBe("req-abc-123");
    const wide = lines.filter((line) => line.message === "request");
    expect(wide).toHaveLength(1);
    expect(wide[0]).toMatchObject({
      level: "info",
      requestId: "req-abc-123",
      keyId: "static-1",
      method: "POST",
      route: "/v1/sensors/readings",
      status: 202,
      accepted: 1,
      rejected: 0,
    });
    expect(typeof wide[0]?.durationMs).toBe("number");
    const made = await runtime.app.request("/v1/sensors/latest");
    expect(made.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("lines logged while a request is handled carry its id", async () => {
    const captured: Record<string, unknown>[] = [];
    const logger = createLogger("info", {}, (line) => captured.push(JSON.parse(line)));
    // Kafka unreachable: the dead letter of a malformed body cannot be written, and that is logged.
    const config = testConfig({
      KAFKA_BROKERS: "127.0.0.1:1",
      KAFKA_ACK_TIMEOUT_MS: "500",
      ROLES: "gateway",
    });
    const offline = withTestKey(createRuntime(config, logger));
    try {
      const response = await offline.app.request("/v1/sensors/readings", {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": "req-offline-1" },
        body: "{broken",
      });
      expect(response.status).toBe(400);
      const warning = captured.find((line) => line.message === "dead-letter write failed");
      expect(warning).toMatchObject({ level: "warn", requestId: "req-offline-1", keyId: "static-1" });
    } finally {
      await offline.close();
    }
  }, 30_000);

  test("secrets are redacted, however deep, and LOG_LEVEL filters", () => {
    const written: string[] = [];
    const logger = createLogger("warn", { service: "sluice" }, (line) => written.push(line));
    logger.info("dropped");
    logger.warn("kept", {
      password: "hunter2",
      nested: { apiKey: "sk_secret", list: [{ token: "t0k" }], authorization: "Bearer sk_x" },
      MQTT_PASSWORD: "mqtt-secret",
      keyId: "key_123",
    });
    expect(written).toHaveLength(1);
    const line = written[0] ?? "";
    for (const secret of ["hunter2", "sk_secret", "t0k", "sk_x", "mqtt-secret"])
      expect(line).not.toContain(secret);
    expect(JSON.parse(line)).toMatchObject({
      level: "warn",
      message: "kept",
      service: "sluice",
      keyId: "key_123",
    });
  });
});
