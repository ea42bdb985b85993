import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { validate } from "@readme/openapi-parser";
import { ConfigError, configSchema, loadConfig } from "../src/config";
import { kinds } from "../src/kinds";
import type { Runtime } from "../src/runtime";
import { startRuntime } from "./helpers";

let runtime: Runtime;
beforeAll(async () => {
  runtime = await startRuntime();
}, 30_000);
afterAll(() => runtime.close());

describe("health", () => {
  test("/healthz answers while the process lives", async () => {
    const response = await runtime.app.request("/healthz");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
  });

  test("/readyz is 200 with Kafka reachable and its topics created", async () => {
    const response = await runtime.app.request("/readyz");
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      status: "ready",
      checks: { kafka: { ok: true, critical: true } },
    });
  });
});

describe("OpenAPI", () => {
  // biome-ignore lint/suspicious/noExplicitAny: a parsed JSON document
  let spec: any;
  beforeAll(async () => {
    spec = await (await runtime.app.request("/openapi.json")).json();
  });

  test("is a valid OpenAPI 3.1 document", async () => {
    expect(spec.openapi).toBe("3.1.0");
    const result = await validate(structuredClone(spec));
    expect(result.valid ? [] : result.errors).toEqual([]);
    // Relative, so that "try it" in any client calls the gateway that served the document.
    expect(spec.servers).toEqual([{ url: "/", description: "This gateway" }]);
  });

  test("every kind's ingest route lists the statuses its handler returns, with problem+json errors", () => {
    for (const kind of kinds) {
      const operation = spec.paths[`/v1/${kind.name}/${kind.resource}`]?.post;
      expect(Object.keys(operation.responses).sort()).toEqual([
        "202",
        "400",
        "401",
        "403",
        "413",
        "415",
        "422",
        "429",
        "503",
      ]);
      expect(Object.keys(operation.requestBody.content).sort()).toEqual([
        "application/json",
        "application/x-ndjson",
        "text/csv",
      ]);
      expect(operation.responses["422"].content["application/problem+json"]).toBeDefined();
      expect(operation.responses["503"].headers["Retry-After"]).toBeDefined();
      expect(spec.components.schemas[kind.title].properties[kind.sourceField]).toBeDefined();
    }
    expect(spec.components.schemas.OpenWeatherCurrent).toBeDefined();
    expect(Object.keys(spec.paths["/readyz"].get.responses).sort()).toEqual(["200", "503"]);
  });

  test("the ingest descriptions state the ts window and the cross-field rules", () => {
    for (const kind of kinds) {
      const { description } = spec.paths[`/v1/${kind.name}/${kind.resource}`].post;
      expect(description).toContain("at most 300 s ahead of the time it is received and at most 30 days old");
      expect(description).toContain("Content-Encoding: gzip, deflate");
    }
    const sensors = spec.components.schemas.SensorReading.description;
    expect(sensors).toContain("At least one metric is required: temperature");
    expect(spec.paths["/v1/sensors/readings"].post.description).toContain("At least one metric is required");
  });

  test("every read endpoint lists 406 for an Accept header it cannot satisfy", () => {
    for (const kind of kinds) {
      for (const path of [
        `/v1/${kind.name}/${kind.resource}`,
        `/v1/${kind.name}/aggregates`,
        `/v1/${kind.name}/latest`,
      ]) {
        expect(spec.paths[path].get.responses["406"]).toBeDefined();
      }
    }
  });

  test("the record schemas say unknown fields are refused", () => {
    for (const kind of kinds) expect(spec.components.schemas[kind.title].additionalProperties).toBe(false);
  });

  test("/docs serves the interactive reference", async () => {
    const response = await runtime.app.request("/docs");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/html");
    expect(await response.text()).toContain("/openapi.json");
  });
});

describe("CORS by default (no CORS_ORIGINS)", () => {
  test("no origin gets CORS headers; a preflight is an OPTIONS like any other, 405 with Allow", async () => {
    const origin = "https://dashboard.example.com";
    const preflight = await runtime.app.request("/v1/sensors/readings", {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(405);
    expect(preflight.headers.get("allow")).toContain("POST");
    const answer = await runtime.app.request("/healthz", { headers: { origin } });
    expect(answer.status).toBe(200);
    for (const response of [preflight, answer]) {
      expect([...response.headers.keys()].filter((name) => name.startsWith("access-control-"))).toEqual([]);
    }
  });
});

describe("configuration", () => {
  test("a bad value stops the start, naming the variable", () => {
    expect(() => loadConfig({ PORT: "eighty" })).toThrow(ConfigError);
    expect(() => loadConfig({ PORT: "eighty" })).toThrow(/PORT/);
    expect(() => loadConfig({ KAFKA_BROKERS: "no-port-here" })).toThrow(/KAFKA_BROKERS/);
    expect(() => loadConfig({ ROLES: "gateway,teapot" })).toThrow(/ROLES/);
  });

  test("defaults hold with an empty environment", () => {
    const config = loadConfig({});
    expect(config.PORT).toBe(8080);
    expect(config.KAFKA_BROKERS).toEqual(["127.0.0.1:9092"]);
    expect(config.KAFKA_TOPIC_PREFIX).toBe("sluice");
  });

  test(".env.example lists every variable with the schema's default", async () => {
    const example = await Bun.file(`${import.meta.dir}/../.env.example`).text();
    const documented = Object.fromEntries(
      example
        .split("\n")
        .filter((line) => /^[A-Z][A-Z0-9_]*=/.test(line))
        .map((line) => line.split(/=(.*)/s).slice(0, 2) as [string, string]),
    );
    expect(Object.keys(documented).sort()).toEqual(Object.keys(configSchema.shape).sort());
    expect(loadConfig(documented)).toEqual(loadConfig({}));
  });
});
