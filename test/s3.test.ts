import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { S3Client } from "bun";
import { startS3, type TestS3 } from "./s3";

// The archive's S3 server (s3proxy, see scripts/s3.sh) as Sluice will use it: through Bun's own S3 client.
let s3: TestS3;
let client: S3Client;

beforeAll(async () => {
  s3 = await startS3();
  const { endpoint, accessKeyId, secretAccessKey, bucket, region } = s3;
  client = new S3Client({ endpoint, accessKeyId, secretAccessKey, bucket, region });
}, 120_000); // the first run on a machine fetches s3proxy from Maven Central

afterAll(async () => {
  await s3?.remove();
});

/** Bytes that differ from part to part, so that a part written twice or out of order would show. */
function pattern(size: number, seed: number) {
  const bytes = new Uint8Array(size);
  let state = seed;
  for (let i = 0; i < size; i += 4) {
    state = (Math.imul(state, 1_103_515_245) + 12_345) | 0;
    bytes[i] = state >>> 24;
    bytes[i + 1] = state >>> 16;
    bytes[i + 2] = state >>> 8;
    bytes[i + 3] = state;
  }
  return bytes;
}

async function readBytes(key: string) {
  return new Uint8Array(await client.file(key).arrayBuffer());
}

/**
 * What Bun's client says when the server is gone: ConnectionRefused on a new connection; ConnectionClosed when
 * it reused a kept-alive connection whose far end had just died (seen right after SIGKILL). Bun retries neither.
 */
const serverGone: (string | undefined)[] = ["ConnectionRefused", "ConnectionClosed"];

async function failure(work: () => Promise<unknown>) {
  const started = performance.now();
  try {
    await work();
  } catch (error) {
    return { error: error as Error & { code?: string }, ms: performance.now() - started };
  }
  throw new Error("expected the call to fail");
}

describe("S3 server (s3proxy) with Bun's S3 client", () => {
  test("writes, reads back, stats and deletes a small object", async () => {
    const key = "raw/small.json";
    const body = JSON.stringify({ deviceId: "d-1", pm25: 7, note: "ünïcødé" });
    await client.write(key, body, { type: "application/json" });
    expect(await client.file(key).text()).toBe(body);
    const stat = await client.stat(key);
    expect(stat.size).toBe(Buffer.byteLength(body));
    expect(stat.type).toBe("application/json;charset=utf-8"); // Bun adds the charset when it sends
    // The object is a real file in the server's folder: the filesystem backend, not memory.
    expect(await Bun.file(`${s3.dataDir}/buckets/${s3.bucket}/${key}`).text()).toBe(body);

    await client.delete(key);
    expect(await client.exists(key)).toBe(false);
    const { error } = await failure(() => client.file(key).text());
    expect(error.code).toBe("NoSuchKey");
  });

  test("a large object goes up in parts with writer() and comes back byte-equal", async () => {
    const partSize = 5 * 1024 * 1024;
    const body = pattern(12 * 1024 * 1024 + 1234, 1); // three parts, the last one short
    const writer = client.file("raw/large-multipart.bin").writer({ partSize, queueSize: 2 });
    for (let offset = 0; offset < body.length; offset += 1024 * 1024)
      writer.write(body.subarray(offset, offset + 1024 * 1024));
    await writer.end();
    const stat = await client.stat("raw/large-multipart.bin");
    expect(stat.size).toBe(body.length);
    // A multipart upload's ETag is MD5-of-part-MD5s with "-<parts>": this one did go up in 3 parts.
    expect(stat.etag).toMatch(/-3"?$/);
    expect(Buffer.compare(await readBytes("raw/large-multipart.bin"), body)).toBe(0);
  });

  test("write() of a large in-memory body stores it whole", async () => {
    // Bun 1.4 sends this as one PUT (no multipart) however large: fine up to S3's 5 GiB single-PUT limit.
    const body = pattern(11 * 1024 * 1024 + 7, 2);
    await client.write("raw/large-single.bin", body);
    expect((await client.stat("raw/large-single.bin")).size).toBe(body.length);
    expect(Buffer.compare(await readBytes("raw/large-single.bin"), body)).toBe(0);
  });

  test("lists with a prefix, page by page", async () => {
    const keys = ["list/2026-12-01/a.parquet", "list/2026-12-01/b.parquet", "list/2026-12-02/a.parquet"];
    for (const key of keys) await client.write(key, key);
    await client.write("other/list-decoy.parquet", "x");

    const day = await client.list({ prefix: "list/2026-12-01/" });
    expect(day.contents?.map((object) => object.key)).toEqual(keys.slice(0, 2));
    expect(day.contents?.[0]?.size).toBe(keys[0]?.length);
    expect(day.isTruncated).toBe(false);

    const first = await client.list({ prefix: "list/", maxKeys: 2 });
    expect(first.contents?.map((object) => object.key)).toEqual(keys.slice(0, 2));
    expect(first.isTruncated).toBe(true);
    const rest = await client.list({
      prefix: "list/",
      maxKeys: 2,
      continuationToken: first.nextContinuationToken,
    });
    expect(rest.contents?.map((object) => object.key)).toEqual(keys.slice(2));
    expect(rest.isTruncated).toBe(false);
  });

  test("checks signatures: a wrong secret or a missing bucket is refused", async () => {
    const { endpoint, accessKeyId, secretAccessKey, bucket, region } = s3;
    const wrong = new S3Client({ endpoint, accessKeyId, secretAccessKey: "not-the-secret", bucket, region });
    expect((await failure(() => wrong.write("raw/forged.txt", "x"))).error.code).toBe(
      "SignatureDoesNotMatch",
    );
    expect(await client.exists("raw/forged.txt")).toBe(false);
    const elsewhere = new S3Client({
      endpoint,
      accessKeyId,
      secretAccessKey,
      bucket: `${bucket}-missing`,
      region,
    });
    expect((await failure(() => elsewhere.write("x.txt", "x"))).error.code).toBe("NoSuchBucket");
  });

  test("server stopped: calls fail at once; started again: same data, writes work", async () => {
    const kept = pattern(64 * 1024, 3);
    await client.write("raw/kept.bin", kept);

    await s3.stop();
    const write = await failure(() => client.write("raw/while-down.txt", "x"));
    expect(write.error.name).toBe("S3Error");
    expect(serverGone).toContain(write.error.code);
    expect(write.ms).toBeLessThan(5_000);
    expect(serverGone).toContain((await failure(() => client.file("raw/kept.bin").arrayBuffer())).error.code);

    await s3.start();
    expect(Buffer.compare(await readBytes("raw/kept.bin"), kept)).toBe(0);
    await client.write("raw/after-restart.txt", "back");
    expect(await client.file("raw/after-restart.txt").text()).toBe("back");
    expect(await client.exists("raw/while-down.txt")).toBe(false);
  });

  test("server killed (SIGKILL): started again, acknowledged objects are all there", async () => {
    const keys = Array.from({ length: 20 }, (_, i) => `raw/crash/${String(i).padStart(2, "0")}.json`);
    for (const key of keys) await client.write(key, key);

    await s3.kill();
    expect(serverGone).toContain((await failure(() => client.list({ prefix: "raw/crash/" }))).error.code);
    await s3.start();

    const listed = await client.list({ prefix: "raw/crash/" });
    expect(listed.contents?.map((object) => object.key)).toEqual(keys);
    for (const key of keys) expect(await client.file(key).text()).toBe(key);
  });
});
