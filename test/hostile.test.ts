import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { validateItem } from "../src/ingest/validate";
import { kinds } from "../src/kinds";
import type { Runtime } from "../src/runtime";
import { eventually, startRuntime } from "./helpers";

let runtime: Runtime;
beforeAll(async () => {
  runtime = await startRuntime({ MQTT_CONNECTIONS: "0", MAX_BODY_BYTES: "200000" });
}, 30_000);
afterAll(() => runtime.close(), 30_000);

const now = () => new Date().toISOString();
const post = (path: string, body: string | Uint8Array, contentType = "application/json") =>
  runtime.app.request(path, { method: "POST", headers: { "content-type": contentType }, body });
const deep = (depth: number) => `${"[".repeat(depth)}${"]".repeat(depth)}`;

const hostileBodies: [string, string | Uint8Array, string?][] = [
  ["malformed JSON", '{"deviceId": "a", "ts": '],
  ["truncated JSON array", `[{"deviceId":"a","ts":"${now()}","temperature":1},{"deviceId":`],
  ["deep nesting", deep(5000)],
  [
    "deep nesting inside a record",
    `{"deviceId":"a","ts":"${now()}","temperature":1,"location":${deep(200)}}`,
  ],
  ["prototype pollution", `{"__proto__":{"admin":true},"deviceId":"a","ts":"${now()}","temperature":1}`],
  [
    "constructor pollution",
    `{"constructor":{"prototype":{"x":1}},"deviceId":"a","ts":"${now()}","humidity":1}`,
  ],
  ["invalid UTF-8", new Uint8Array([0x7b, 0x22, 0x64, 0xc3, 0x28, 0x22, 0x7d])],
  ["overlong UTF-8", new Uint8Array([0x22, 0xc0, 0xaf, 0x22])],
  [
    "lone surrogate",
    `{"deviceId":"a","ts":"${now()}","temperature":1,"location":{"lat":0,"lon":0,"city":"\\ud800"}}`,
  ],
  [
    "NUL in text",
    `{"deviceId":"a","ts":"${now()}","temperature":1,"location":{"lat":0,"lon":0,"city":"a\\u0000b"}}`,
  ],
  ["huge number", `{"deviceId":"a","ts":"${now()}","temperature":1e400}`],
  ["negative huge number", `{"deviceId":"a","ts":"${now()}","temperature":-1e400}`],
  ["NaN literal", `{"deviceId":"a","ts":"${now()}","temperature":NaN}`],
  ["Infinity literal", `{"deviceId":"a","ts":"${now()}","temperature":Infinity}`],
  ["unsafe integer ts", `{"deviceId":"a","ts":9007199254740993,"temperature":1}`],
  ["huge string", `{"deviceId":"${"x".repeat(150_000)}","ts":"${now()}","temperature":1}`],
  ["huge key", `{"${"k".repeat(100_000)}":1,"deviceId":"a","ts":"${now()}","temperature":1}`],
  ["empty batch", "[]"],
  ["empty body", ""],
  ["whitespace body", "   \n  "],
  ["null", "null"],
  ["array of nulls", "[null,null]"],
  ["string", '"hello"'],
  ["number", "42"],
  ["SQL in a field", `{"deviceId":"a'; drop table sensors_records;--","ts":"${now()}","temperature":1}`],
  ["source id with a slash", `{"deviceId":"a/b","ts":"${now()}","temperature":1}`],
  ["timestamp in year 275760", `{"deviceId":"a","ts":"+275760-09-13T00:00:00Z","temperature":1}`],
  ["timestamp as object", `{"deviceId":"a","ts":{"$date":1},"temperature":1}`],
  ["duplicate keys", `{"deviceId":"a","deviceId":"b/c","ts":"${now()}","temperature":1}`],
  ["NDJSON garbage", "{}\n{{{\n\u0000\n", "application/x-ndjson"],
  ["CSV with a formula", `deviceId,ts,temperature\n=cmd|' /C calc'!A0,${now()},1`, "text/csv"],
  ["CSV header pollution", `__proto__.admin,deviceId,ts,temperature\ntrue,a,${now()},1`, "text/csv"],
  ["CSV ragged rows", `deviceId,ts,temperature\na,${now()}\nb,${now()},1,2,3`, "text/csv"],
  ["content type lies", `{"deviceId":"a","ts":"${now()}","temperature":1}`, "application/xml"],
];

describe("hostile input", () => {
  test("every hostile body is a 4xx problem, never a 5xx, and the process goes on", async () => {
    for (const kind of kinds) {
      for (const [name, body, contentType] of hostileBodies) {
        const response = await post(`/v1/${kind.name}/${kind.resource}`, body, contentType);
        const label = `${kind.name}: ${name} → ${response.status}`;
        expect(response.status >= 400 && response.status < 500, label).toBe(true);
        expect(response.headers.get("content-type"), label).toBe("application/problem+json");
        const problem = (await response.json()) as { status: number; detail: string };
        expect(problem.status).toBe(response.status);
      }
    }
    expect((await runtime.app.request("/healthz")).status).toBe(200);
  }, 60_000);

  test("hostile query parameters are 400s", async () => {
    const cases = [
      "/v1/sensors/readings?cursor=%00%00",
      "/v1/sensors/readings?cursor=eyJ0cyI6MX0",
      `/v1/sensors/readings?cursor=${Buffer.from(JSON.stringify(["not a date", 1])).toString("base64url")}`,
      "/v1/sensors/readings?limit=1e9",
      "/v1/sensors/readings?limit=-1",
      "/v1/sensors/readings?limit=NaN",
      "/v1/sensors/readings?deviceId=%27%20OR%201%3D1--",
      "/v1/sensors/readings?from=2026-13-45T99:99:99Z",
      "/v1/sensors/aggregates?bucket=1m;DROP%20TABLE%20x",
      "/v1/sensors/aggregates?metrics=temperature)%20from%20x;--",
      "/v1/sensors/aggregates?groupBy=source%27",
      "/v1/sensors/aggregates?includeSuspect=yes",
      `/v1/sensors/readings?cursor=${"A".repeat(600)}`,
    ];
    for (const path of cases) {
      const response = await runtime.app.request(path);
      expect(`${path} ${response.status}`).toBe(`${path} 400`);
    }
  });

  test("nothing stored breaks its kind's schema", async () => {
    // Valid records around the hostile ones must still arrive, and only they.
    const id = crypto.randomUUID();
    await post(
      "/v1/sensors/readings",
      JSON.stringify([{ id, deviceId: "after-hostile", ts: now(), temperature: 3 }]),
    );
    await eventually(async () => {
      const page = (await (
        await runtime.app.request("/v1/sensors/readings?deviceId=after-hostile")
      ).json()) as {
        items: unknown[];
      };
      return page.items.length === 1;
    });
    for (const kind of kinds) {
      const page = (await (
        await runtime.app.request(`/v1/${kind.name}/${kind.resource}?limit=1000`)
      ).json()) as {
        items: { id: string; sourceId: string; ts: string; data: Record<string, unknown> }[];
      };
      for (const item of page.items) {
        const record = { ...item.data, id: item.id, ts: item.ts, [kind.sourceField]: item.sourceId };
        expect(kind.schema.safeParse(record).success, JSON.stringify(record)).toBe(true);
      }
    }
  });
});

describe("property-based fuzz of the schemas", () => {
  const context = () => ({
    via: "http" as const,
    receivedAt: new Date(),
    receivedAtIso: new Date().toISOString(),
    maxFutureMs: 300_000,
    maxAgeMs: 30 * 86_400_000,
  });
  // Records close to valid ones, with any field replaced by anything JSON can carry.
  const jsonValue = fc.jsonValue({ maxDepth: 3 });
  const nearlyValid = (kind: (typeof kinds)[number]) =>
    fc.record(
      {
        [kind.sourceField]: fc.oneof(
          fc.constantFrom("dev-1", "store-1"),
          fc.string({ maxLength: 200 }),
          jsonValue,
        ),
        ts: fc.oneof(
          fc
            .date({ min: new Date(Date.now() - 40 * 86_400_000), max: new Date(Date.now() + 86_400_000) })
            .map((d) => (Number.isNaN(d.getTime()) ? "x" : d.toISOString())),
          fc.integer(),
          jsonValue,
        ),
        ...Object.fromEntries(
          kind.metrics.map((metric) => [
            metric,
            fc.oneof(fc.double(), fc.integer({ min: -10, max: 2000 }), jsonValue),
          ]),
        ),
        extra: jsonValue,
      },
      { requiredKeys: [] },
    );

  for (const kind of kinds) {
    test(`${kind.name}: validation never throws, and whatever it accepts passes the schema and survives storage`, () => {
      fc.assert(
        fc.property(fc.oneof(nearlyValid(kind), jsonValue), (value) => {
          const result = validateItem(kind, { value }, context());
          if ("errors" in result) {
            expect(result.errors.length).toBeGreaterThan(0);
            return;
          }
          const { envelope } = result;
          const record = {
            ...envelope.data,
            id: envelope.id,
            ts: envelope.ts,
            [kind.sourceField]: envelope.sourceId,
          };
          expect(kind.schema.safeParse(record).success).toBe(true);
          const json = JSON.stringify(envelope);
          expect(json.includes("\\u0000")).toBe(false);
          expect(json.isWellFormed()).toBe(true);
          for (const value of Object.values(envelope.data)) {
            if (typeof value === "number") expect(Number.isFinite(value)).toBe(true);
          }
        }),
        { numRuns: 2000 },
      );
    });
  }

  test("over HTTP: any JSON body is answered 202 or a 4xx, never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...kinds),
        fc.array(fc.oneof(nearlyValid(kinds[0] as never), fc.jsonValue({ maxDepth: 4 })), { maxLength: 5 }),
        async (kind, body) => {
          const response = await post(`/v1/${kind.name}/${kind.resource}`, JSON.stringify(body));
          expect(response.status === 202 || (response.status >= 400 && response.status < 500)).toBe(true);
        },
      ),
      { numRuns: 150 },
    );
  }, 60_000);
});
