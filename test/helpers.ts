import { type Consumer, Kafka, logLevel } from "kafkajs";
import { type Config, loadConfig } from "../src/config";
import { createLogger } from "../src/log";
import { createRuntime, type Runtime } from "../src/runtime";

export const brokers = process.env.KAFKA_BROKERS ?? "127.0.0.1:9092";

/** A config of its own for each test file: topics under a fresh prefix, so files never see each other's records. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: `test-${crypto.randomUUID().slice(0, 8)}`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...overrides,
  });
}

export async function startRuntime(overrides: Record<string, string> = {}): Promise<Runtime> {
  const config = testConfig(overrides);
  const runtime = createRuntime(config, createLogger(config.LOG_LEVEL));
  await runtime.ready;
  return runtime;
}

export interface ConsumedRecord {
  topic: string;
  partition: number;
  key: string | null;
  value: Record<string, unknown>;
}

/** Reads every record of the given topics from the beginning, into memory, until stopped. */
export async function recordTopics(topics: string[], kafkaBrokers = brokers) {
  const kafka = new Kafka({
    clientId: "sluice-test",
    brokers: kafkaBrokers.split(","),
    logLevel: logLevel.NOTHING,
  });
  const consumer: Consumer = kafka.consumer({ groupId: `test-${crypto.randomUUID()}`, maxWaitTimeInMs: 100 });
  const records: ConsumedRecord[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      records.push({
        topic,
        partition,
        key: message.key?.toString() ?? null,
        value: JSON.parse(message.value?.toString() ?? "null"),
      });
    },
  });
  return {
    records,
    /** Waits until `predicate` holds for the records read so far. */
    async waitFor<T>(
      select: (records: ConsumedRecord[]) => T | undefined | false,
      timeoutMs = 15_000,
    ): Promise<T> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const result = select(records);
        if (result) return result;
        if (Date.now() > deadline) throw new Error(`timed out with ${records.length} records read`);
        await Bun.sleep(50);
      }
    },
    stop: () => consumer.disconnect(),
  };
}

export async function post(runtime: Runtime, path: string, body: unknown, contentType = "application/json") {
  return await runtime.app.request(path, {
    method: "POST",
    headers: { "content-type": contentType },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Runs scripts/kafka.sh for a broker of the test's own, so that it can be stopped without disturbing others. */
export async function privateBroker(port: number) {
  const env = { ...process.env, KAFKA_PORT: String(port), KAFKA_DATA: `/tmp/sluice-test-broker-${port}` };
  const run = async (action: string) => {
    const proc = Bun.spawn(["bash", `${import.meta.dir}/../scripts/kafka.sh`, action], {
      env,
      stdout: "ignore",
      stderr: "pipe",
    });
    if ((await proc.exited) !== 0)
      throw new Error(`kafka.sh ${action}: ${await new Response(proc.stderr).text()}`);
  };
  await Bun.$`rm -rf /tmp/sluice-test-broker-${port}`;
  await run("start");
  return { brokers: `127.0.0.1:${port}`, start: () => run("start"), stop: () => run("stop") };
}

export const now = () => Date.now();

export async function freePort(): Promise<number> {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = server;
  server.stop(true);
  return port;
}

async function waitForTcp(port: number, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      socket.end();
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`nothing listens on ${port}`);
      await Bun.sleep(50);
    }
  }
}

/** Mosquitto with the project's own config, on a free port and a data directory of its own. */
export async function startMosquitto() {
  const port = await freePort();
  const dir = `/tmp/sluice-mosquitto-${port}`;
  await Bun.$`rm -rf ${dir} && mkdir -p ${dir} && chmod 0777 ${dir}`;
  const shipped = await Bun.file(`${import.meta.dir}/../deploy/mosquitto/mosquitto.conf`).text();
  const config = shipped
    .replace(/^listener 1883$/m, `listener ${port} 127.0.0.1`)
    .replace(/^persistence_location .*$/m, `persistence_location ${dir}/`);
  if (config === shipped) throw new Error("mosquitto.conf no longer has the lines the tests adapt");
  await Bun.write(`${dir}/mosquitto.conf`, config);
  const proc = Bun.spawn(["mosquitto", "-c", `${dir}/mosquitto.conf`], { stdout: "ignore", stderr: "pipe" });
  await waitForTcp(port);
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}
