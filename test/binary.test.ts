import { afterAll, expect, test } from "bun:test";
import { readKindParquet } from "../src/archive/parquet";
import { authHeader, eventually, freePort, testConfig, testDatabase, testKey } from "./helpers";

const root = `${import.meta.dir}/..`;
const cleanups: (() => Promise<unknown>)[] = [];
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
}, 30_000);

test("bun run build makes linux x64 and arm64 executables; the x64 one runs Sluice (archive too) without Bun or the sources", async () => {
  const build = Bun.spawnSync(["bun", "run", "build"], { cwd: root, stdout: "pipe", stderr: "pipe" });
  expect(build.exitCode).toBe(0);
  const machine = async (path: string) =>
    new DataView(await Bun.file(path).slice(0, 20).arrayBuffer()).getUint16(18, true);
  expect(await machine(`${root}/dist/sluice-linux-x64`)).toBe(0x3e); // EM_X86_64
  expect(await machine(`${root}/dist/sluice-linux-arm64`)).toBe(0xb7); // EM_AARCH64

  // Run it from an empty folder, with a PATH that has no bun: everything it needs is inside.
  const folder = `/tmp/sluice-binary-${process.pid}`;
  await Bun.$`rm -rf ${folder} && mkdir -p ${folder} && cp ${root}/dist/sluice-linux-x64 ${folder}/sluice`;
  cleanups.push(() => Bun.$`rm -rf ${folder}`.quiet());
  const database = await testDatabase();
  await database.drop(); // the binary must create and migrate it itself
  cleanups.push(() => database.drop());
  const config = testConfig();
  const port = await freePort();
  const proc = Bun.spawn([`${folder}/sluice`, "start"], {
    cwd: folder,
    env: {
      PATH: "/usr/bin:/bin",
      PORT: String(port),
      KAFKA_BROKERS: config.KAFKA_BROKERS.join(","),
      KAFKA_TOPIC_PREFIX: config.KAFKA_TOPIC_PREFIX,
      REDIS_KEY_PREFIX: config.REDIS_KEY_PREFIX,
      DATABASE_URL: database.url,
      MQTT_CONNECTIONS: "0",
      // The archive too: the Parquet writer must work inside the executable.
      ARCHIVE_URL: `file://${folder}/archive`,
      ARCHIVE_FLUSH_SECONDS: "1",
      API_KEYS: testKey,
      LOG_LEVEL: "warn",
    },
    stdout: "ignore",
    stderr: "ignore",
  });
  cleanups.push(async () => {
    proc.kill("SIGTERM");
    await proc.exited;
  });
  const url = `http://127.0.0.1:${port}`;
  await eventually(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.ok, 30_000);
  const posted = await fetch(`${url}/v1/weather/observations`, {
    method: "POST",
    headers: { "content-type": "application/json", ...authHeader },
    body: JSON.stringify({ stationId: "binary-station", ts: new Date().toISOString(), temperature: 9.5 }),
  });
  expect(posted.status).toBe(202);
  const stored = await eventually(async () => {
    const page = (await (
      await fetch(`${url}/v1/weather/observations?stationId=binary-station`, { headers: authHeader })
    ).json()) as {
      items: { data: unknown }[];
    };
    return page.items.length === 1 && page;
  });
  expect(stored.items[0]?.data).toEqual({ temperature: 9.5 });
  const archived = await eventually(
    () => [...new Bun.Glob("archive/weather/*/*/*.parquet").scanSync({ cwd: folder })][0],
    30_000,
  );
  const [row] = await readKindParquet(await Bun.file(`${folder}/${archived}`).bytes());
  expect(row).toMatchObject({ sourceId: "binary-station", data: { temperature: 9.5 } });
  // The dashboard's page and scripts travel inside the executable.
  const script = await fetch(`${url}/dashboard/app.js`);
  expect(script.headers.get("content-type")).toStartWith("text/javascript");
  expect(await script.text()).toContain('from "./chart.js"');
  // So does the API reference's bundle, which /docs links instead of a CDN.
  const docs = await (await fetch(`${url}/docs`)).text();
  const bundle = docs.match(/<script src="(\/docs\/scalar\.js\?v=\w+)"/)?.[1];
  expect(bundle).toBeDefined();
  const scalar = await fetch(`${url}${bundle}`, { headers: { "accept-encoding": "identity" } });
  expect(scalar.status).toBe(200);
  expect(scalar.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
  const scalarSource = await scalar.text();
  expect(scalarSource.length).toBe(
    (await Bun.file(`${root}/node_modules/@scalar/api-reference/dist/browser/standalone.js`).text()).length,
  );
  expect(scalarSource).toContain("createApiReference");
  proc.kill("SIGTERM");
  expect(await proc.exited).toBe(0);
}, 120_000);
