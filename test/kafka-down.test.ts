import { afterAll, describe, expect, test } from "bun:test";
import { kindTopic } from "../src/kafka/client";
import { createLogger } from "../src/log";
import { createRuntime, type Runtime } from "../src/runtime";
import {
  eventually,
  post,
  privateBroker,
  recordTopics,
  testConfig,
  testDatabase,
  withTestKey,
} from "./helpers";

const reading = (deviceId: string) => ({ deviceId, ts: new Date().toISOString(), temperature: 20 });
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
}, 60_000);

async function timed<T>(work: () => Promise<T>) {
  const started = performance.now();
  const result = await work();
  return { result, ms: performance.now() - started };
}

describe("Kafka unreachable", () => {
  test("ingest answers 503 with Retry-After within a few seconds, and /readyz says 503", async () => {
    const config = testConfig({
      KAFKA_BROKERS: "127.0.0.1:1",
      KAFKA_ACK_TIMEOUT_MS: "2000",
      RETRY_AFTER_SECONDS: "7",
    });
    const runtime = withTestKey(createRuntime(config, createLogger("silent")));
    cleanups.push(() => runtime.close());
    const { result: response, ms } = await timed(() =>
      post(runtime, "/v1/sensors/readings", reading("down-1")),
    );
    expect(response.status).toBe(503);
    expect(response.headers.get("retry-after")).toBe("7");
    expect(response.headers.get("content-type")).toBe("application/problem+json");
    expect(ms).toBeLessThan(5000);
    const ready = await runtime.app.request("/readyz");
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: "unavailable", checks: { kafka: { ok: false } } });
  });
});

describe("Kafka stopped, then started again", () => {
  let runtime: Runtime;

  test("503 while the broker is down, ingestion resumes by itself, and every 202 is in Kafka", async () => {
    const broker = await privateBroker();
    cleanups.push(() => broker.remove());
    const database = await testDatabase();
    cleanups.push(() => database.drop());
    runtime = withTestKey(
      createRuntime(
        testConfig({
          KAFKA_BROKERS: broker.brokers,
          KAFKA_ACK_TIMEOUT_MS: "3000",
          DATABASE_URL: database.url,
        }),
        createLogger("silent"),
      ),
    );
    cleanups.push(() => runtime.close());
    await runtime.ready;
    const acknowledged: string[] = [];
    const send = async (deviceId: string) => {
      const response = await post(runtime, "/v1/sensors/readings", reading(deviceId));
      if (response.status === 202) acknowledged.push(...((await response.json()) as { ids: string[] }).ids);
      return response;
    };
    expect((await send("before")).status).toBe(202);

    await broker.stop();
    const { result: refused, ms } = await timed(() => send("during"));
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(ms).toBeLessThan(10_000);
    expect((await runtime.app.request("/readyz")).status).toBe(503);

    await broker.start();
    let resumed = false;
    for (let attempt = 0; attempt < 60 && !resumed; attempt++) {
      resumed = (await send(`after-${attempt}`)).status === 202;
      if (!resumed) await Bun.sleep(1000);
    }
    expect(resumed).toBe(true);
    await eventually(async () => (await runtime.app.request("/readyz")).status === 200, 10_000);

    const topics = await recordTopics(
      [kindTopic(runtime.config.KAFKA_TOPIC_PREFIX, "sensors")],
      broker.brokers,
    );
    cleanups.push(() => topics.stop());
    const ids = new Set(acknowledged);
    await topics.waitFor(
      (records) => records.filter((record) => ids.has(record.value.id as string)).length === ids.size,
    );
  }, 120_000);
});
