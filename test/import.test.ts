import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { appendFile, mkdtemp, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import fc from "fast-check";
import { Kafka, logLevel } from "kafkajs";
import { parseCsv } from "../src/csv";
import { csvSplitter } from "../src/import/csv";
import { jsonArraySplitter } from "../src/import/json";
import type { Splitter } from "../src/import/pending";
import { runImportCommand } from "../src/import/run";
import type { Runtime } from "../src/runtime";
import { brokers, freePort, recordTopics, runSluice, startRuntime, testKey } from "./helpers";

let runtime: Runtime;
let server: ReturnType<typeof Bun.serve>;
let kafka: Awaited<ReturnType<typeof recordTopics>>;
let dir: string;

beforeAll(async () => {
  runtime = await startRuntime();
  server = Bun.serve({ port: await freePort(), hostname: "127.0.0.1", fetch: runtime.app.fetch });
  kafka = await recordTopics([`${runtime.config.KAFKA_TOPIC_PREFIX}.sensors`]);
  dir = await mkdtemp(`${tmpdir()}/sluice-import-`);
}, 30_000);

afterAll(async () => {
  await kafka.stop();
  server.stop(true);
  await runtime.close();
  await rm(dir, { recursive: true, force: true });
}, 30_000);

/** `bun src/main.ts import ...`, as a user runs it; its exit code and output. */
async function importer(args: string[], options: { url?: string; stdin?: string; key?: string } = {}) {
  const env = { SLUICE_URL: options.url ?? server.url.href, API_KEY: options.key ?? testKey };
  return runSluice(["import", ...args], env, options.stdin);
}

const ts = () => new Date().toISOString();
/** The records of these devices in Kafka, by device, once all of them are there. */
const arrived = (prefix: string, count: number) =>
  kafka.waitFor((records) => {
    const mine = records.filter((record) => String(record.value.sourceId).startsWith(prefix));
    return mine.length >= count && new Map(mine.map((record) => [record.value.sourceId, record.value]));
  });
// biome-ignore lint/suspicious/noExplicitAny: envelopes read back from Kafka
const data = (value: any) => value?.data;
const summary = (stdout: string) =>
  stdout.match(/(\d+) records sent, (\d+) accepted, (\d+) refused/)?.slice(1);

describe("bun run import", () => {
  test("CSV: quoted cells, a quoted line break and CRLF survive batching; the header goes with each batch", async () => {
    const path = `${dir}/quoted.csv`;
    await writeFile(
      path,
      "deviceId,ts,temperature,location.lat,location.lon,location.city\r\n" +
        `csv-1,${ts()},21.5,33.57,-7.58,"Casablanca, ""Anfa"""\r\n` +
        `csv-2,${ts()},"22",34.02,-6.83,"Rabat\nAgdal"\n` +
        `"csv-3",${ts()},23,31.63,-8.01,Marrakesh\n` +
        `csv-4,${ts()},24,31.63,-8.01,"Fès"`,
    );
    const { code, stdout, stderr } = await importer([path, "--kind", "sensors", "--batch", "2"]);
    // The row with the line break arrives whole, and is judged as one: free text may not hold control characters.
    expect(stderr).toBe("line 3: location.city: control characters or broken Unicode\n");
    expect(code).toBe(1);
    expect(summary(stdout)).toEqual(["4", "3", "1"]);
    const got = await arrived("csv-", 3);
    expect(data(got.get("csv-1")).location).toEqual({ lat: 33.57, lon: -7.58, city: 'Casablanca, "Anfa"' });
    expect(data(got.get("csv-3")).temperature).toBe(23);
    expect(data(got.get("csv-4")).location.city).toBe("Fès");
  });

  test("NDJSON, a pretty-printed JSON array, and NDJSON on stdin", async () => {
    await writeFile(`${dir}/a.ndjson`, `{"deviceId":"nd-1","ts":"${ts()}","humidity":40}\n\n  \n`);
    await appendFile(`${dir}/a.ndjson`, `{"deviceId":"nd-2","ts":"${ts()}","humidity":41}`);
    const items = [1, 2, 3].map((n) => ({
      deviceId: `js-${n}`,
      ts: ts(),
      pm25: n,
      location: { lat: 1, lon: 2 },
    }));
    await writeFile(`${dir}/b.json`, JSON.stringify(items, null, 2));
    const results = await Promise.all([
      importer([`${dir}/a.ndjson`, "--kind", "sensors"]),
      importer([`${dir}/b.json`, "--kind", "sensors", "--batch", "2"]),
      importer(["-", "--kind", "sensors", "--format", "ndjson"], {
        stdin: `{"deviceId":"in-1","ts":"${ts()}","co2":500}\n{"deviceId":"in-2","ts":"${ts()}","co2":501}\n`,
      }),
    ]);
    expect(results.map(({ code, stdout }) => [code, summary(stdout)])).toEqual([
      [0, ["2", "2", "0"]],
      [0, ["3", "3", "0"]],
      [0, ["2", "2", "0"]],
    ]);
    expect(data((await arrived("nd-", 2)).get("nd-2")).humidity).toBe(41);
    expect(data((await arrived("js-", 3)).get("js-3"))).toEqual({ pm25: 3, location: { lat: 1, lon: 2 } });
    expect(data((await arrived("in-", 2)).get("in-1")).co2).toBe(500);
  });

  test("refused rows are reported by the file line they start on, and the exit code is 1", async () => {
    const path = `${dir}/bad.csv`;
    const row = (id: string, rest: string) => `${id},${ts()},${rest}\n`;
    const bytes = Buffer.concat([
      Buffer.from(`deviceId,ts,temperature,humidity,location.lat,location.lon,location.city\n`),
      Buffer.from(`${row("bad-1", '20,50,1,2,"two\nlines"')}${row("bad-2", "20,150,1,2,x")}\n`),
      Buffer.from(`${row("bad-3", "warm,50,1,2,x")}bad-4,${ts()},20,50,1,2,caf`),
      Buffer.from([0xff, 0x0a]), // not UTF-8: the gateway refuses the whole body; halving finds the row
      Buffer.from(`${row("bad-5", "21,51,1,2,ok")}${row("bad-6", "21,51,1,2,ok")}`),
      // A batch refused whole: 422.
      Buffer.from(`,${ts()},20,50,1,2,x\nbad-8,,20,50,1,2,x\n${row("bad-9", "20,-5,1,2,x")}`),
    ]);
    await writeFile(path, bytes);
    const { code, stdout, stderr } = await importer([path, "--kind", "sensors", "--batch", "3"]);
    expect(code).toBe(1);
    expect(summary(stdout)).toEqual(["9", "2", "7"]);
    // Batches are answered in any order; within one, in file order.
    const lines = stderr
      .split("\n")
      .filter((line) => line.startsWith("line "))
      .sort((a, b) => Number(a.split(/[ :]/)[1]) - Number(b.split(/[ :]/)[1]));
    expect(lines.map((line) => line.split(":")[0])).toEqual([
      "line 2",
      "line 4",
      "line 6",
      "line 7",
      "line 10",
      "line 11",
      "line 12",
    ]);
    expect(lines[1]).toBe("line 4: humidity: Too big: expected number to be <=100");
    expect(lines[3]).toBe("line 7: 400 Bad Request: body is not valid UTF-8");
    expect([...(await arrived("bad-", 2)).keys()].sort()).toEqual(["bad-5", "bad-6"]);

    // NDJSON: blank lines count, a line that is not JSON is refused by its number, the first 20 are shown.
    const invalid = Array.from(
      { length: 25 },
      (_, i) => `{"deviceId":"many-${i}","ts":"${ts()}","humidity":150}`,
    );
    await writeFile(`${dir}/many.ndjson`, ["", "{not json", ...invalid, ""].join("\n"));
    const many = await importer([`${dir}/many.ndjson`, "--kind", "sensors"]);
    expect(many.code).toBe(1);
    expect(many.stderr).toStartWith("line 2: line is not valid JSON");
    expect(many.stderr).toContain("\nline 3: humidity: Too big");
    expect(many.stderr).toContain("\nline 21: humidity");
    expect(many.stderr).not.toContain("line 22:");
    expect(many.stderr).toContain("... and 6 more refused");
  });

  test("503 with Retry-After is waited out and retried; other 4xx stop the import with the detail", async () => {
    let refusals = 2;
    const proxy = Bun.serve({
      port: await freePort(),
      hostname: "127.0.0.1",
      async fetch(request) {
        if (refusals-- > 0)
          return Response.json(
            { title: "Service Unavailable", detail: "test" },
            {
              status: 503,
              headers: { "retry-after": "1" },
            },
          );
        const url = new URL(new URL(request.url).pathname, server.url);
        const body = await request.arrayBuffer();
        const answer = await fetch(url, { method: "POST", headers: request.headers, body });
        return new Response(await answer.arrayBuffer(), { status: answer.status, headers: answer.headers });
      },
    });
    try {
      const rows = [1, 2, 3, 4].map((n) => `retry-${n},${ts()},${n}`).join("\n");
      await writeFile(`${dir}/retry.csv`, `deviceId,ts,temperature\n${rows}\n`);
      const started = performance.now();
      const result = await importer([`${dir}/retry.csv`, "--kind", "sensors", "--batch", "2"], {
        url: proxy.url.href,
      });
      expect(result.code).toBe(0);
      expect(summary(result.stdout)).toEqual(["4", "4", "0"]);
      expect(result.stderr).toContain("503 Service Unavailable: test; retrying in 1 s");
      expect(performance.now() - started).toBeGreaterThan(1000);
      expect((await arrived("retry-", 4)).size).toBe(4);
    } finally {
      proxy.stop(true);
    }
    const wrongKey = await importer([`${dir}/retry.csv`, "--kind", "sensors"], { key: "sk_wrong" });
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toContain("import stopped: the gateway answered 401");
  });

  test("bad arguments exit 2 with the usage", async () => {
    const errors: string[] = [];
    const io = {
      env: {},
      out: { write() {} },
      err: { write: (text: string) => errors.push(text) },
      tty: false,
    };
    for (const args of [
      [],
      ["x.csv"],
      ["x.csv", "--kind", "parcels"],
      [`${dir}/retry.csv`, "--kind", "sensors", "--batch", "5001"],
      ["-", "--kind", "sensors"],
      ["x.txt", "--kind", "sensors"],
      [`${dir}/missing.csv`, "--kind", "sensors"],
      [`${dir}/b.json`, "--kind", "sensors", "--follow"],
    ])
      expect(await runImportCommand(args, io)).toBe(2);
    expect(await runImportCommand(["--help"], io)).toBe(0);
    expect(errors.join("")).toContain("cannot read");
    expect(errors.join("")).toContain("usage: bun run import");
  });

  test("--follow sends appended lines within a second and survives rotation and truncation", async () => {
    const path = `${dir}/live.csv`;
    await writeFile(path, `deviceId,ts,temperature\nlive-1,${ts()},1\n`);
    const proc = Bun.spawn(["bun", "src/main.ts", "import", path, "--kind", "sensors", "--follow"], {
      cwd: `${import.meta.dir}/..`,
      env: { ...process.env, SLUICE_URL: server.url.href, API_KEY: testKey },
      stdout: "pipe",
      stderr: "pipe",
    });
    await arrived("live-1", 1);
    await appendFile(path, `live-2,${ts()},2\nlive-3,${ts()}`); // the last line still being written
    await arrived("live-2", 1);
    const appended = performance.now();
    await appendFile(path, ",3\n");
    await arrived("live-3", 1);
    expect(performance.now() - appended).toBeLessThan(2000);
    // Rotation: renamed away, written a last time, then a new file (its own header) in its place.
    await rename(path, `${path}.1`);
    await appendFile(`${path}.1`, `live-4,${ts()},4\n`);
    await Bun.sleep(300);
    await writeFile(path, `temperature,deviceId,ts\n5,live-5,${ts()}\n`);
    await arrived("live-5", 1);
    await arrived("live-4", 1);
    // Truncated in place (copytruncate), then written again from the start.
    await writeFile(path, "");
    await Bun.sleep(500);
    await writeFile(path, `deviceId,ts,humidity\nlive-6,${ts()},60\n`);
    expect(data((await arrived("live-6", 1)).get("live-6")).humidity).toBe(60);
    proc.kill("SIGTERM");
    const [code, stdout, stderr] = await Promise.all([
      proc.exited,
      new Response(proc.stdout).text(),
      new Response(proc.stderr).text(),
    ]);
    expect(stderr).toContain("was replaced (rotated)");
    expect(stderr).toContain("was truncated");
    expect(code).toBe(0);
    expect(summary(stdout)).toEqual(["6", "6", "0"]);
  }, 60_000);
});

/** What a splitter finds in `text` fed in the given chunk sizes. */
function split(
  make: (sink: Parameters<typeof csvSplitter>[0]) => Splitter,
  bytes: Uint8Array,
  cuts: number[],
) {
  const found: { header?: string; records: string[]; refused: number } = { records: [], refused: 0 };
  const decode = (b: Uint8Array) => Buffer.from(b).toString("utf8");
  const splitter = make({
    header: (b) => {
      found.header = decode(b);
    },
    record: (b, start, end) => found.records.push(decode(b.subarray(start, end))),
    refuse: () => found.refused++,
  });
  let at = 0;
  for (const cut of [...cuts.filter((c) => c < bytes.length).sort((a, b) => a - b), bytes.length]) {
    splitter.push(new Uint8Array(bytes.subarray(at, Math.max(at, cut))));
    at = Math.max(at, cut);
  }
  splitter.end();
  return found;
}

describe("splitters, in chunks cut anywhere", () => {
  test("CSV rows are the rows the gateway's parser reads", () => {
    const text = fc.string({
      unit: fc.constantFrom("a", "b", ",", '"', "\n", "\r", " ", "é"),
      maxLength: 80,
    });
    fc.assert(
      fc.property(text, fc.array(fc.nat(100)), (csv, cuts) => {
        const found = split((sink) => csvSplitter(sink, 1 << 20), Buffer.from(csv), cuts);
        let rows: string[][];
        try {
          rows = parseCsv(csv).filter((row) => row.some((cell) => cell !== ""));
        } catch {
          expect(found.refused).toBe(1);
          return;
        }
        expect(found.refused).toBe(0);
        const again = (record: string) => parseCsv(record)[0];
        expect(found.header === undefined ? undefined : again(found.header)).toEqual(rows[0]);
        expect(found.records.map(again)).toEqual(rows.slice(1));
      }),
      { numRuns: 2000 },
    );
  });

  test("JSON array elements are the array's elements", () => {
    fc.assert(
      fc.property(
        fc.array(fc.jsonValue()),
        fc.constantFrom(0, 2, "\t"),
        fc.array(fc.nat(300)),
        (items, indent, cuts) => {
          const found = split(
            (sink) => jsonArraySplitter(sink, 1 << 20),
            Buffer.from(JSON.stringify(items, null, indent)),
            cuts,
          );
          expect(found.refused).toBe(0);
          expect(found.records.map((record) => JSON.parse(record))).toEqual(
            JSON.parse(JSON.stringify(items)),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});

test("1,000,000 CSV rows, a few bad ones reported by line, every good one in Kafka", async () => {
  const gateway = await startRuntime({ ROLES: "gateway" });
  const direct = Bun.serve({ port: await freePort(), hostname: "127.0.0.1", fetch: gateway.app.fetch });
  const path = `${dir}/million.csv`;
  const bad = new Map([
    [2, "humidity"],
    [123_457, "temperature"],
    [500_001, "deviceId"],
    [1_000_001, "humidity"],
  ]);
  try {
    const writer = Bun.file(path).writer();
    writer.write("deviceId,ts,temperature,humidity\n");
    const now = Date.now();
    for (let line = 2; line <= 1_000_001; line++) {
      const field = bad.get(line);
      const id = field === "deviceId" ? "" : `m-${line % 997}`;
      writer.write(
        `${id},${now - line},${field === "temperature" ? "hot" : (line % 300) / 10},${field === "humidity" ? 101 : line % 100}\n`,
      );
    }
    await writer.end();
    const result = await importer([path, "--kind", "sensors", "--batch", "2000"], { url: direct.url.href });
    expect(result.code).toBe(1);
    expect(summary(result.stdout)).toEqual(["1000000", "999996", "4"]);
    const reported = [...(result.stderr.match(/^line \d+: [a-zA-Z]+/gm) ?? [])].sort(
      (a, b) => Number(a.split(/[ :]/)[1]) - Number(b.split(/[ :]/)[1]),
    );
    expect(reported).toEqual([...bad].map(([line, field]) => `line ${line}: ${field}`));
    const admin = new Kafka({ brokers: brokers.split(","), logLevel: logLevel.NOTHING }).admin();
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets(`${gateway.config.KAFKA_TOPIC_PREFIX}.sensors`);
    await admin.disconnect();
    expect(offsets.reduce((sum, { high, low }) => sum + Number(high) - Number(low), 0)).toBe(999_996);
  } finally {
    direct.stop(true);
    await gateway.close();
  }
}, 90_000);
