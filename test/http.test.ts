import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { deflateSync, gunzipSync, gzipSync } from "node:zlib";
import { deadLetterTopic, kindTopic } from "../src/kafka/client";
import type { Runtime } from "../src/runtime";
import { authHeader, eventually, recordTopics, startRuntime } from "./helpers";

let runtime: Runtime;
let server: ReturnType<typeof Bun.serve>;
let base: string;
let topics: Awaited<ReturnType<typeof recordTopics>>;
const allowedOrigin = "https://ops.example.com";

beforeAll(async () => {
  runtime = await startRuntime({ MAX_BODY_BYTES: "1000000", CORS_ORIGINS: allowedOrigin });
  server = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: runtime.app.fetch });
  base = `http://127.0.0.1:${server.port}`;
  const prefix = runtime.config.KAFKA_TOPIC_PREFIX;
  topics = await recordTopics([kindTopic(prefix, "sensors"), deadLetterTopic(prefix)]);
}, 30_000);

afterAll(async () => {
  server.stop(true);
  await topics.stop();
  await runtime.close();
}, 60_000);

const reading = (deviceId: string, extra: Record<string, unknown> = {}) => ({
  deviceId,
  ts: new Date().toISOString(),
  temperature: 20.5,
  ...extra,
});

const ingest = (body: string | Uint8Array, headers: Record<string, string> = {}) =>
  fetch(`${base}/v1/sensors/readings`, {
    method: "POST",
    headers: { ...authHeader, "content-type": "application/json", ...headers },
    body,
  });

const stored = (deviceId: string) =>
  eventually(async () => {
    const response = await fetch(`${base}/v1/sensors/readings?deviceId=${deviceId}`, { headers: authHeader });
    const page = (await response.json()) as { items: { id: string }[] };
    return page.items.length > 0 && page.items;
  });

describe("compressed request bodies", () => {
  test("gzip and deflate bodies are decoded, and their records stored", async () => {
    const gzip = await ingest(gzipSync(JSON.stringify([reading("gz-1"), reading("gz-2")])), {
      "content-encoding": "gzip",
    });
    expect(gzip.status).toBe(202);
    const deflate = await ingest(deflateSync(JSON.stringify(reading("deflate-1"))), {
      "content-encoding": "deflate",
    });
    expect(deflate.status).toBe(202);
    for (const id of ["gz-1", "gz-2", "deflate-1"]) expect(await stored(id)).toHaveLength(1);
  });

  test("a small gzip of 100 MB of zeros is 413, decoding stopped at the limit, memory flat", async () => {
    const bomb = gzipSync(Buffer.alloc(100 * 1024 * 1024));
    expect(bomb.length).toBeLessThan(200_000);
    Bun.gc(true);
    const before = process.memoryUsage().rss;
    const response = await ingest(bomb, { "content-encoding": "gzip" });
    const after = process.memoryUsage().rss;
    expect(response.status).toBe(413);
    expect(((await response.json()) as { detail: string }).detail).toBe(
      "decoded body of more than 1000000 bytes exceeds the limit of 1000000 bytes",
    );
    expect(after - before).toBeLessThan(40 * 1024 * 1024);
  });

  test("an encoding Sluice cannot decode is 415 naming the ones it can; a corrupt gzip is 400", async () => {
    const brotli = await ingest("{}", { "content-encoding": "br" });
    expect(brotli.status).toBe(415);
    expect(brotli.headers.get("accept-encoding")).toBe("gzip, deflate");
    expect(((await brotli.json()) as { detail: string }).detail).toBe(
      "content encoding 'br' is not one of gzip, deflate",
    );
    const corrupt = await ingest("not gzip at all", { "content-encoding": "gzip" });
    expect(corrupt.status).toBe(400);
    expect(((await corrupt.json()) as { type: string }).type).toBe("urn:sluice:problem:malformed-body");
    await topics.waitFor((records) =>
      records.find(
        (record) =>
          record.topic === deadLetterTopic(runtime.config.KAFKA_TOPIC_PREFIX) &&
          record.value.reason === "unsupported-encoding",
      ),
    );
  });
});

describe("responses", () => {
  const get = (path: string, headers: Record<string, string> = {}, method = "GET") =>
    fetch(`${base}${path}`, { method, headers: { ...authHeader, ...headers }, decompress: false });

  test("large answers are gzip-compressed for clients that accept it, small ones and others not", async () => {
    const plain = await get("/openapi.json", { "accept-encoding": "identity" });
    const text = await plain.text();
    expect(plain.headers.get("content-encoding")).toBeNull();
    expect(plain.headers.get("vary")).toContain("accept-encoding");
    const compressed = await get("/openapi.json", { "accept-encoding": "br;q=1, gzip;q=0.8" });
    expect(compressed.headers.get("content-encoding")).toBe("gzip");
    const bytes = new Uint8Array(await compressed.arrayBuffer());
    expect(bytes.length).toBeLessThan(text.length / 4);
    expect(gunzipSync(bytes).toString()).toBe(text);
    const small = await get("/healthz", { "accept-encoding": "gzip" });
    expect(small.headers.get("content-encoding")).toBeNull();
  });

  test("HEAD's Content-Length is GET's, compressed or not", async () => {
    for (const encoding of ["identity", "gzip"]) {
      for (const path of ["/openapi.json", "/v1/kinds", "/healthz"]) {
        const got = await get(path, { "accept-encoding": encoding });
        const length = (await got.arrayBuffer()).byteLength;
        const head = await get(path, { "accept-encoding": encoding }, "HEAD");
        expect([path, head.status, head.headers.get("content-length")]).toEqual([path, 200, String(length)]);
      }
    }
  });

  test("Accept's quality values choose the format; 406 when nothing offered is acceptable", async () => {
    const type = async (path: string, accept: string) => {
      const response = await get(path, { accept });
      await response.arrayBuffer();
      return `${response.status} ${response.headers.get("content-type")}`;
    };
    const list = "/v1/sensors/readings";
    expect(await type(list, "text/csv;q=0.5, application/json;q=0.9")).toBe("200 application/json");
    expect(await type(list, "text/csv, application/json;q=0.1")).toBe("200 text/csv; charset=utf-8");
    expect(await type(list, "text/*")).toBe("200 text/csv; charset=utf-8");
    expect(await type(list, "*/*")).toBe("200 application/json");
    expect(await type(list, "text/csv;q=0, */*;q=0.5")).toBe("200 application/json");
    expect(await type("/v1/sensors/aggregates", "application/json;q=0.2, text/csv;q=0.3")).toBe(
      "200 text/csv; charset=utf-8",
    );
    expect(await type(list, "application/xml")).toBe("406 application/problem+json");
    expect(await type("/v1/sensors/latest", "text/csv")).toBe("406 application/problem+json");
    expect(await type("/v1/kinds", "text/html")).toBe("406 application/problem+json");
    const refused = await get(list, { accept: "application/xml" });
    expect(((await refused.json()) as { detail: string }).detail).toBe(
      "this resource is available as application/json, text/csv; Accept: application/xml",
    );
  });

  test("bom=true starts a CSV export with a UTF-8 byte order mark", async () => {
    await stored("gz-1");
    for (const path of ["/v1/sensors/readings?deviceId=gz-1", "/v1/sensors/aggregates?deviceId=gz-1"]) {
      const withBom = new Uint8Array(
        await (await get(`${path}&bom=true`, { accept: "text/csv" })).arrayBuffer(),
      );
      expect([...withBom.slice(0, 3)]).toEqual([0xef, 0xbb, 0xbf]);
      const without = new Uint8Array(await (await get(path, { accept: "text/csv" })).arrayBuffer());
      expect(Buffer.from(withBom.slice(3)).toString()).toBe(Buffer.from(without).toString());
      expect(without[0]).not.toBe(0xef);
    }
  });
});

describe("CORS", () => {
  test("a listed origin's preflight is answered without a key; its requests can read the answer", async () => {
    const preflight = await fetch(`${base}/v1/sensors/readings`, {
      method: "OPTIONS",
      headers: {
        origin: allowedOrigin,
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(allowedOrigin);
    expect(preflight.headers.get("access-control-allow-methods")).toContain("POST");
    expect(preflight.headers.get("access-control-allow-headers")).toContain("authorization");
    const answer = await fetch(`${base}/v1/kinds`, { headers: { ...authHeader, origin: allowedOrigin } });
    expect(answer.status).toBe(200);
    expect(answer.headers.get("access-control-allow-origin")).toBe(allowedOrigin);
    expect(answer.headers.get("vary")).toContain("origin");
    // An error's body is readable too, with the headers a client needs.
    const unauthorized = await fetch(`${base}/v1/kinds`, { headers: { origin: allowedOrigin } });
    expect(unauthorized.status).toBe(401);
    expect(unauthorized.headers.get("access-control-allow-origin")).toBe(allowedOrigin);
    expect(unauthorized.headers.get("access-control-expose-headers")).toContain("www-authenticate");
  });

  test("any other origin gets no CORS headers, its preflight no 204 but the key check", async () => {
    const origin = "https://evil.example.net";
    const preflight = await fetch(`${base}/v1/sensors/readings`, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(401);
    const answer = await fetch(`${base}/v1/kinds`, { headers: { ...authHeader, origin } });
    expect(answer.status).toBe(200);
    for (const response of [preflight, answer]) {
      const cors = [...response.headers.keys()].filter((name) => name.startsWith("access-control-"));
      expect(cors).toEqual([]);
    }
  });
});

describe("pipelining", () => {
  test("Bun closes a connection pipelining a request behind one being answered: retried ids store once", async () => {
    const bodies = [reading("pipe-1", { id: "pipe-record-1" }), reading("pipe-1", { id: "pipe-record-2" })];
    const request = (body: unknown) => {
      const text = JSON.stringify(body);
      return (
        `POST /v1/sensors/readings HTTP/1.1\r\nhost: sluice\r\nauthorization: ${authHeader.authorization}\r\n` +
        `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`
      );
    };
    let received = "";
    const closed = Promise.withResolvers<void>();
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: server.port as number,
      socket: {
        data: (_socket, data) => {
          received += data.toString();
        },
        close: () => closed.resolve(),
        error: () => closed.resolve(),
      },
    });
    socket.write(bodies.map(request).join(""));
    const timeout = Bun.sleep(5000).then(() => "open");
    const outcome = await Promise.race([closed.promise.then(() => "closed"), timeout]);
    socket.end();
    // When this fails, Bun answers pipelined requests: update the README's HTTP contract and this test.
    expect({ outcome, answers: received.match(/HTTP\/1\.1 \d+/g) ?? [] }).toEqual({
      outcome: "closed",
      answers: [],
    });
    for (const body of bodies) expect((await ingest(JSON.stringify(body))).status).toBe(202);
    await Bun.sleep(500);
    const items = await stored("pipe-1");
    expect(items.map((item) => item.id).sort()).toEqual(["pipe-record-1", "pipe-record-2"]);
  });
});
