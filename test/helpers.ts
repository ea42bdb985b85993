import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import { type Consumer, Kafka, logLevel } from "kafkajs";
import postgres from "postgres";
import { type Config, loadConfig } from "../src/config";
import { migrateDatabase } from "../src/db/client";
import { allTopics } from "../src/kafka/client";
import { createLogger, type Logger } from "../src/log";
import { createRuntime, type Runtime } from "../src/runtime";

export const brokers = process.env.KAFKA_BROKERS ?? "127.0.0.1:9092";

/** The static key every test runtime accepts (full access). */
export const testKey = "sk_test_full_access";
export const authHeader = { authorization: `Bearer ${testKey}` };

/**
 * Lets `runtime.app.request` send the test key unless the request names a key of its own; tests of
 * authentication itself call `runtime.app.fetch` directly.
 */
export function withTestKey(runtime: Runtime): Runtime {
  const request = runtime.app.request.bind(runtime.app);
  runtime.app.request = ((input: string | Request | URL, init?: RequestInit) => {
    const headers = new Headers(init?.headers);
    if (!headers.has("authorization") && !headers.has("x-api-key"))
      headers.set("authorization", authHeader.authorization);
    return request(input, { ...init, headers });
  }) as typeof runtime.app.request;
  return runtime;
}

/** A config of its own for each test file: topics under a fresh prefix, so files never see each other's records. */
export function testConfig(overrides: Record<string, string> = {}): Config {
  const prefix = `test-${crypto.randomUUID().slice(0, 8)}`;
  return loadConfig({
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: prefix,
    REDIS_KEY_PREFIX: prefix,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    API_KEYS: testKey,
    RATE_LIMIT_PER_SECOND: "100000",
    // Tests that need MQTT start their own Mosquitto and say so.
    MQTT_CONNECTIONS: "0",
    ...overrides,
  });
}

/** A database of the test's own, migrated, dropped again by the returned function. */
export async function testDatabase() {
  const name = `sluice_test_${crypto.randomUUID().replace(/-/g, "").slice(0, 12)}`;
  const url = `postgres://postgres@127.0.0.1:5432/${name}`;
  await migrateDatabase(url, createLogger("silent"));
  return {
    url,
    name,
    async drop() {
      const admin = postgres("postgres://postgres@127.0.0.1:5432/postgres", { max: 1, onnotice: () => {} });
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    },
  };
}

/** A whole Sluice (gateway and sink) on a database, topics and Redis keys of its own. */
export async function startRuntime(
  overrides: Record<string, string> = {},
  options: Parameters<typeof createRuntime>[2] & { logger?: Logger } = {},
): Promise<Runtime> {
  const database = overrides.DATABASE_URL ? undefined : await testDatabase();
  const config = testConfig({ ...(database ? { DATABASE_URL: database.url } : {}), ...overrides });
  const runtime = withTestKey(
    createRuntime(config, options.logger ?? createLogger(config.LOG_LEVEL), options),
  );
  await runtime.ready;
  const close = runtime.close;
  runtime.close = async () => {
    await close();
    await database?.drop();
    await deleteTopics(config);
  };
  return runtime;
}

async function deleteTopics(config: Config) {
  const kafka = new Kafka({ brokers: config.KAFKA_BROKERS, logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.deleteTopics({ topics: allTopics(config.KAFKA_TOPIC_PREFIX), timeout: 5000 });
  } catch {
    // A broker stopped by the test, or topics never created: nothing to clean.
  } finally {
    await admin.disconnect();
  }
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

/** Runs scripts/kafka.sh for a broker of the test's own (free ports, its own folder), stoppable without disturbing others. */
export async function privateBroker() {
  const port = await freePortPair();
  const data = await mkdtemp(`${tmpdir()}/sluice-test-broker-`);
  const env = { ...process.env, KAFKA_PORT: String(port), KAFKA_DATA: data };
  const run = async (action: string) => {
    const proc = Bun.spawn(["bash", `${import.meta.dir}/../scripts/kafka.sh`, action], {
      env,
      stdout: "ignore",
      stderr: "pipe",
    });
    if ((await proc.exited) !== 0)
      throw new Error(`kafka.sh ${action}: ${await new Response(proc.stderr).text()}`);
  };
  await run("start");
  return {
    brokers: `127.0.0.1:${port}`,
    start: () => run("start"),
    async stop() {
      await run("stop");
    },
    /** Stops it and removes its folder. */
    async remove() {
      await run("stop");
      await rm(data, { recursive: true, force: true });
    },
    /** SIGKILL, as a crash would. */
    async kill() {
      const pid = (await Bun.file(`${data}/broker.pid`).text()).trim();
      await Bun.$`kill -9 ${pid}`.nothrow();
      await Bun.sleep(500);
    },
  };
}

/** A counter's value, summed over the label sets that match `labels`. */
export async function counterValue(
  counter: { get: () => Promise<{ values: { value: number; labels: Record<string, unknown> }[] }> },
  labels: Record<string, string> = {},
) {
  const { values } = await counter.get();
  return values
    .filter((sample) => Object.entries(labels).every(([name, value]) => sample.labels[name] === value))
    .reduce((sum, sample) => sum + sample.value, 0);
}

export async function freePort(): Promise<number> {
  const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = server;
  server.stop(true);
  return port;
}

/** A free port whose next one is free too: Kafka's controller listens on the port after the client's. */
async function freePortPair(): Promise<number> {
  for (;;) {
    const port = await freePort();
    try {
      Bun.listen({ hostname: "127.0.0.1", port: port + 1, socket: { data() {} } }).stop(true);
      return port;
    } catch {}
  }
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

/**
 * Mosquitto with the project's own config and ACL, on a free port with files of its own. Users: the gateway,
 * the simulators' fleet account (what the tests publish with), and any device added with `addDevice`.
 */
export async function startMosquitto() {
  const port = await freePort();
  const dir = await mkdtemp(`${tmpdir()}/sluice-mosquitto-`);
  await Bun.$`chmod 0777 ${dir}`;
  const shipped = await Bun.file(`${import.meta.dir}/../deploy/mosquitto/mosquitto.conf`).text();
  const config = shipped
    .replace(/^listener 1883$/m, `listener ${port} 127.0.0.1`)
    .replace(/^persistence_location .*$/m, `persistence_location ${dir}/`)
    .replace(/^password_file .*$/m, `password_file ${dir}/passwords`)
    .replace(/^acl_file .*$/m, `acl_file ${dir}/acl`);
  if ((config.match(new RegExp(dir, "g")) ?? []).length !== 3) {
    throw new Error("mosquitto.conf no longer has the lines the tests adapt");
  }
  await Bun.write(`${dir}/mosquitto.conf`, config);
  const acl = await Bun.file(`${import.meta.dir}/../deploy/mosquitto/acl`).text();
  // Test-only rules: tests that need a broker of their own topics use prefixes such as kill/v1.
  const testRules = "\nuser sluice-gateway\ntopic read +/v1/#\nuser sluice-simulator\ntopic write +/v1/#\n";
  await Bun.write(`${dir}/acl`, acl + testRules);
  const addUser = async (username: string) => {
    const password = crypto.randomUUID();
    await Bun.$`touch ${dir}/passwords && mosquitto_passwd -b ${dir}/passwords ${username} ${password}`.quiet();
    await Bun.$`chmod 0644 ${dir}/passwords`.quiet();
    return password;
  };
  const gatewayPassword = await addUser("sluice-gateway");
  const fleet = { username: "sluice-simulator", password: await addUser("sluice-simulator") };
  const proc = Bun.spawn(["mosquitto", "-c", `${dir}/mosquitto.conf`], { stdout: "ignore", stderr: "pipe" });
  await waitForTcp(port);
  const url = `mqtt://127.0.0.1:${port}`;
  return {
    url,
    /** What a gateway needs to connect. */
    gatewayEnv: { MQTT_URL: url, MQTT_USERNAME: "sluice-gateway", MQTT_PASSWORD: gatewayPassword },
    fleet,
    /** A device account (username = source id); Mosquitto reads new users on SIGHUP. */
    async addDevice(sourceId: string) {
      const password = await addUser(sourceId);
      proc.kill("SIGHUP");
      await Bun.sleep(200);
      return password;
    },
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** A TCP proxy to a local port that a test can cut and restore: the service seems down to whoever uses it. */
export async function tcpProxy(targetPort: number) {
  const port = await freePort();
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  const start = () =>
    new Promise<void>((resolve) => {
      server = net.createServer((client) => {
        const upstream = net.connect(targetPort, "127.0.0.1");
        sockets.add(client);
        sockets.add(upstream);
        const close = () => {
          client.destroy();
          upstream.destroy();
          sockets.delete(client);
          sockets.delete(upstream);
        };
        for (const socket of [client, upstream]) socket.on("error", close).on("close", close);
        client.pipe(upstream).pipe(client);
      });
      server.listen(port, "127.0.0.1", () => resolve());
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      if (server) server.close(() => resolve());
      else resolve();
    });
  await start();
  return { port, start, stop };
}

/** Polls until `check` returns something truthy. */
export async function eventually<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 15_000,
) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const result = await check();
    if (result) return result;
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await Bun.sleep(100);
  }
}

export interface LoadResult {
  acknowledged: Set<string>;
  statuses: Map<number, number>;
  /** Slowest answer, in ms. */
  slowest: number;
  failures: number;
}

/**
 * Posts single sensor readings with `concurrency` requests in flight until `stop()`; every 202's id is
 * remembered. A request that fails on the network counts as a failure, not as acknowledged.
 */
export function httpLoad(url: string, concurrency = 8, headers: Record<string, string> = authHeader) {
  const result: LoadResult = { acknowledged: new Set(), statuses: new Map(), slowest: 0, failures: 0 };
  let running = true;
  let sent = 0;
  const worker = async () => {
    while (running) {
      const started = performance.now();
      try {
        const response = await fetch(`${url}/v1/sensors/readings`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify({ deviceId: `load-${sent++ % 20}`, ts: new Date().toISOString(), pm25: 5 }),
        });
        result.statuses.set(response.status, (result.statuses.get(response.status) ?? 0) + 1);
        if (response.status === 202)
          for (const id of ((await response.json()) as { ids: string[] }).ids) result.acknowledged.add(id);
        else await response.arrayBuffer();
      } catch {
        result.failures++;
        await Bun.sleep(50);
      }
      result.slowest = Math.max(result.slowest, performance.now() - started);
    }
  };
  const workers = Array.from({ length: concurrency }, worker);
  return {
    result,
    async stop() {
      running = false;
      await Promise.all(workers);
      return result;
    },
  };
}

/** Runs `bun src/main.ts start` with the given environment and waits until it is ready. */
/** `bun src/main.ts <args>` as a user runs it, in the project's folder: its exit code and output. */
export async function runSluice(
  args: string[],
  env: Record<string, string | undefined> = {},
  stdin?: string,
) {
  const proc = Bun.spawn(["bun", "src/main.ts", ...args], {
    cwd: `${import.meta.dir}/..`,
    env: { ...process.env, ...env },
    stdin: stdin === undefined ? "ignore" : new Blob([stdin]),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [code, stdout, stderr] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  return { code, stdout, stderr };
}

export async function startGatewayProcess(env: Record<string, string>) {
  const port = env.PORT ?? String(await freePort());
  // Its log, to say why when it does not become ready.
  const log = `${tmpdir()}/sluice-process-${port}-${crypto.randomUUID().slice(0, 8)}.log`;
  const proc = Bun.spawn(["bun", "src/main.ts", "start"], {
    cwd: `${import.meta.dir}/..`,
    env: { ...process.env, LOG_LEVEL: "warn", ...env, PORT: port },
    stdout: Bun.file(log),
    stderr: Bun.file(log),
  });
  const url = `http://127.0.0.1:${port}`;
  /** The last lines of its log, for a failure to say what the process was doing. */
  const logTail = async (lines = 15) =>
    (
      await Bun.file(log)
        .text()
        .catch(() => "")
    )
      .split("\n")
      .slice(-lines)
      .join("\n");
  try {
    await eventually(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok, 60_000);
  } catch {
    throw new Error(
      `the process on ${port} did not become ready within 60 s; its last lines:\n${await logTail()}`,
    );
  }
  // Kept while the process runs (a test that fails can read it), removed once it has exited.
  void proc.exited.then(() => rm(log, { force: true }));
  return { proc, url, port, logTail };
}
