// What holds for one kind is proven for every kind in the registry: a new kind is tested without test code.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import mqtt, { type MqttClient } from "mqtt";
import { parseCsv } from "../src/csv";
import { allTopics, deadLetterTopic, kindTopic } from "../src/kafka/client";
import { type Kind, kinds } from "../src/kinds";
import { fieldPaths, valueAt } from "../src/kinds/fields";
import type { JsonObject } from "../src/record";
import type { Runtime } from "../src/runtime";
import { eventually, post, recordTopics, startMosquitto, startRuntime } from "./helpers";

const HOUR = 3_600_000;
const MINUTE = 60_000;
// An hour that closed at least two hours ago, so that every bucket asked for is closed.
const base = Math.floor((Date.now() - 3 * HOUR) / HOUR) * HOUR;
const shifts = [0, 1, 2];

let mosquitto: Awaited<ReturnType<typeof startMosquitto>>;
let runtime: Runtime;
let topics: Awaited<ReturnType<typeof recordTopics>>;
let device: MqttClient;

beforeAll(async () => {
  mosquitto = await startMosquitto();
  runtime = await startRuntime({
    ...mosquitto.gatewayEnv,
    MQTT_CONNECTIONS: "2",
    MQTT_CLIENT_ID: "conformance",
  });
  topics = await recordTopics(allTopics(runtime.config.KAFKA_TOPIC_PREFIX));
  device = await mqtt.connectAsync(mosquitto.url, {
    clientId: `device-${crypto.randomUUID()}`,
    ...mosquitto.fleet,
  });
  await eventually(() => runtime.mqtt?.connected());
}, 30_000);

afterAll(async () => {
  await device.endAsync();
  await topics.stop();
  await runtime.close();
  await mosquitto.stop();
}, 30_000);

// biome-ignore lint/suspicious/noExplicitAny: JSON answers are checked field by field
async function get(path: string, accept = "application/json"): Promise<any> {
  const response = await runtime.app.request(path, { headers: { accept } });
  expect(response.status).toBe(200);
  return accept === "text/csv" ? response.text() : response.json();
}

/** The kind's example at a moment, from another source, with every metric moved up by `shift`. */
function example(kind: Kind, sourceId: string, at: number, shift = 0): JsonObject {
  const record = structuredClone(kind.example(new Date(at)));
  record[kind.sourceField] = sourceId;
  for (const metric of kind.metrics) {
    const value = valueAt(record, metric.path);
    if (typeof value !== "number") continue;
    const parent = valueAt(record, metric.path.slice(0, -1)) as JsonObject;
    parent[metric.path.at(-1) as string] = value + shift;
  }
  return record;
}

/** What the record's `data` must be once stored: the record without its id, time and source. */
function dataOf(kind: Kind, record: JsonObject) {
  const { id: _id, ts: _ts, [kind.sourceField]: _source, ...data } = record;
  return data;
}

for (const kind of kinds) {
  describe(`${kind.name}`, () => {
    const paths = { records: `/v1/${kind.name}/${kind.resource}`, base: `/v1/${kind.name}` };
    const httpSource = `conformance-${kind.name}-http`;
    const records = shifts.map((shift) => example(kind, httpSource, base + shift * 10 * MINUTE, shift));
    let ids: string[] = [];

    beforeAll(async () => {
      const response = await post(runtime, paths.records, records);
      expect(response.status).toBe(202);
      ids = ((await response.json()) as { ids: string[] }).ids;
      await eventually(
        async () => (await get(`${paths.records}?${kind.sourceField}=${httpSource}`)).items.length === 3,
      );
    }, 30_000);

    test("its example, posted over HTTP, is in Kafka keyed by its source", async () => {
      const topic = kindTopic(runtime.config.KAFKA_TOPIC_PREFIX, kind.name);
      const found = await topics.waitFor((all) => {
        const mine = all.filter(
          (record) => record.topic === topic && ids.includes(record.value.id as string),
        );
        return mine.length === 3 && mine;
      });
      for (const record of found) {
        expect(record.key).toBe(httpSource);
        expect(record.value).toMatchObject({ kind: kind.name, sourceId: httpSource, via: "http" });
      }
      const first = found.find((record) => record.value.id === ids[0]);
      expect(first?.value.data).toEqual(dataOf(kind, records[0] as JsonObject));
    });

    test("the raw list gives the records back, newest first, and so does CSV", async () => {
      const page = await get(`${paths.records}?${kind.sourceField}=${httpSource}`);
      expect(page.items.map((item: { id: string }) => item.id)).toEqual([...ids].reverse());
      expect(page.items[2]).toMatchObject({
        kind: kind.name,
        sourceId: httpSource,
        ts: new Date(base).toISOString(),
        data: dataOf(kind, records[0] as JsonObject),
        flags: [],
      });
      const [header, ...rows] = parseCsv(
        await get(`${paths.records}?${kind.sourceField}=${httpSource}`, "text/csv"),
      );
      expect(rows).toHaveLength(3);
      for (const path of fieldPaths(kind.fields)) {
        const column = header?.indexOf(path.join(".")) ?? -1;
        expect(column).toBeGreaterThan(-1);
        const value = valueAt(records[0], path);
        if (value !== undefined && typeof value !== "object") expect(rows[2]?.[column]).toBe(String(value));
      }
    });

    test("latest gives its newest record", async () => {
      const latest = await get(`${paths.base}/latest?${kind.sourceField}=${httpSource}`);
      expect(latest.items).toHaveLength(1);
      expect(latest.items[0]).toMatchObject({ id: ids[2], data: dataOf(kind, records[2] as JsonObject) });
    });

    test("aggregates: each metric's count and sum exact, in JSON and CSV", async () => {
      const range = `from=${new Date(base).toISOString()}&to=${new Date(base + HOUR).toISOString()}`;
      const query = `${paths.base}/aggregates?bucket=1h&${range}&${kind.sourceField}=${httpSource}`;
      const answer = await get(query);
      expect(answer.items).toHaveLength(1);
      expect(answer.items[0].count).toBe(3);
      const csv = parseCsv(await get(query, "text/csv"));
      for (const metric of kind.metrics) {
        const values = records
          .map((record) => valueAt(record, metric.path))
          .filter((v) => typeof v === "number");
        expect(values.length, `the example of ${kind.name} holds ${metric.name}`).toBe(3);
        const sum = (values as number[]).reduce((total, value) => total + value, 0);
        const stats = answer.items[0].metrics[metric.name];
        expect(stats.count).toBe(3);
        expect(stats.sum).toBeCloseTo(sum, 9);
        expect(stats.min).toBe(Math.min(...(values as number[])));
        expect(stats.max).toBe(Math.max(...(values as number[])));
        const column = csv[0]?.indexOf(`${metric.name}.sum`) ?? -1;
        expect(Number(csv[1]?.[column])).toBeCloseTo(sum, 9);
      }
      for (const name of Object.keys(kind.derived)) expect(answer.items[0]).toHaveProperty(name);
    });

    test("its example, published over MQTT, is acknowledged into Kafka and stored", async () => {
      const mqttSource = `conformance-${kind.name}-mqtt`;
      const record = example(kind, mqttSource, base + 30 * MINUTE);
      await device.publishAsync(`sluice/v1/${kind.name}/${mqttSource}`, JSON.stringify(record), { qos: 1 });
      const [envelope] = await topics.waitFor((all) => {
        const mine = all.filter((consumed) => consumed.value.sourceId === mqttSource);
        return mine.length > 0 && mine;
      });
      expect(envelope?.value).toMatchObject({ kind: kind.name, via: "mqtt", data: dataOf(kind, record) });
      const stored = await eventually(async () => {
        const page = await get(`${paths.records}?${kind.sourceField}=${mqttSource}`);
        return page.items.length === 1 && page.items[0];
      });
      expect(stored).toMatchObject({ id: envelope?.value.id, via: "mqtt" });
    });

    test("an invalid record is refused with the path of its error and lands in the dead-letter topic", async () => {
      const invalid = { ...example(kind, `conformance-${kind.name}-bad`, base), unexpectedField: 1 };
      const response = await post(runtime, paths.records, invalid);
      expect(response.status).toBe(422);
      const problem = (await response.json()) as {
        errors: { index?: number; path: string; message: string }[];
      };
      expect(problem.errors).toContainEqual({ index: 0, path: "unexpectedField", message: "unknown field" });
      const letter = await topics.waitFor((all) =>
        all.find(
          (consumed) =>
            consumed.topic === deadLetterTopic(runtime.config.KAFKA_TOPIC_PREFIX) &&
            consumed.value.kind === kind.name &&
            String(consumed.value.raw).includes("unexpectedField"),
        ),
      );
      expect(letter.value).toMatchObject({ reason: "invalid-record", via: "http" });
    });

    const alternate = kind.alternate;
    if (alternate) {
      test(`${alternate.title}, posted as its API sends it twice, is stored once and aggregated`, async () => {
        const body = alternate.example(new Date(base + 40 * MINUTE));
        const answers: string[] = [];
        for (let i = 0; i < 2; i++) {
          const response = await post(runtime, paths.records, body);
          expect(response.status).toBe(202);
          answers.push(((await response.json()) as { ids: string[] }).ids[0] as string);
        }
        expect(answers[0]).toBe(answers[1]);
        const envelope = await topics.waitFor((all) =>
          all.find((consumed) => consumed.value.id === answers[0]),
        );
        const sourceId = envelope.value.sourceId as string;
        const stored = await eventually(async () => {
          const page = await get(`${paths.records}?${kind.sourceField}=${sourceId}`);
          return page.items.length > 0 && page;
        });
        await Bun.sleep(500);
        expect((await get(`${paths.records}?${kind.sourceField}=${sourceId}`)).items).toHaveLength(1);
        expect(stored.items[0].id).toBe(answers[0]);
        const range = `from=${new Date(base).toISOString()}&to=${new Date(base + HOUR).toISOString()}`;
        const buckets = await get(
          `${paths.base}/aggregates?bucket=1h&${range}&${kind.sourceField}=${sourceId}`,
        );
        expect(buckets.items[0].count).toBe(1);
        const present = kind.metrics.filter(
          (metric) => typeof valueAt(stored.items[0].data, metric.path) === "number",
        );
        expect(present.length).toBeGreaterThan(0);
        for (const metric of present) {
          expect(buckets.items[0].metrics[metric.name]).toMatchObject({
            count: 1,
            sum: valueAt(stored.items[0].data, metric.path),
          });
        }
      });
    }
  });
}
