import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { S3Client } from "bun";
import { freePort } from "./helpers";

const script = `${import.meta.dir}/../scripts/s3.sh`;

export interface TestS3 {
  /** http://127.0.0.1:PORT: buckets are addressed path-style (Bun's default with a custom endpoint). */
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** A bucket of this server's own, created empty. */
  bucket: string;
  region: string;
  /** The server's folder (S3_DATA): the bucket's objects are files under buckets/BUCKET. */
  dataDir: string;
  /** Stops the server (SIGTERM), keeping its data for `start`. */
  stop(): Promise<void>;
  /** Starts it again after `stop` or `kill`, on the same port with the same data. */
  start(): Promise<void>;
  /** SIGKILL, as a crash would; `start` brings it back. */
  kill(): Promise<void>;
  /** Stops it and removes its folder. */
  remove(): Promise<void>;
}

/**
 * A real S3-compatible server of the test's own: scripts/s3.sh (s3proxy, filesystem backend) on a free port
 * with a fresh folder, so that two checkouts can run the suite at once. s3.sh fetches s3proxy from Maven
 * Central on first use. The bucket is created with an S3 CreateBucket request signed by Bun's client.
 */
export async function startS3(): Promise<TestS3> {
  const port = await freePort();
  const dataDir = await mkdtemp(`${tmpdir()}/sluice-test-s3-`);
  const endpoint = `http://127.0.0.1:${port}`;
  const accessKeyId = "sluice-test";
  const secretAccessKey = `secret-${crypto.randomUUID()}`;
  const region = "us-east-1";
  const bucket = `sluice-test-${crypto.randomUUID().slice(0, 8)}`;
  const env = {
    ...process.env,
    S3_PORT: String(port),
    S3_DATA: dataDir,
    S3_ACCESS_KEY_ID: accessKeyId,
    S3_SECRET_ACCESS_KEY: secretAccessKey,
  };
  const run = async (action: string) => {
    const proc = Bun.spawn(["bash", script, action], { env, stdout: "ignore", stderr: "pipe" });
    const stderr = new Response(proc.stderr).text();
    if ((await proc.exited) !== 0) throw new Error(`s3.sh ${action}: ${await stderr}`);
  };
  await run("start");
  try {
    await createBucket({ endpoint, accessKeyId, secretAccessKey, region }, bucket);
  } catch (error) {
    await run("stop");
    await rm(dataDir, { recursive: true, force: true });
    throw error;
  }
  return {
    endpoint,
    accessKeyId,
    secretAccessKey,
    bucket,
    region,
    dataDir,
    start: () => run("start"),
    stop: () => run("stop"),
    async kill() {
      const pid = Number((await Bun.file(`${dataDir}/s3proxy.pid`).text()).trim());
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        return; // already gone
      }
      // Until it is dead (a zombie counts: PID 1 reaps it late), so that a `start` right after sees it so.
      for (let tries = 0; tries < 250 && alive(pid); tries++) await Bun.sleep(20);
    },
    async remove() {
      await run("stop");
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Linux's /proc/PID/stat reads "PID (COMM) STATE ...": a zombie (Z) is already dead, a missing file too. */
function alive(pid: number) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat[stat.lastIndexOf(")") + 2] !== "Z";
  } catch {
    return false;
  }
}

/**
 * Bun's S3Client has no CreateBucket, but a PUT of /BUCKET is one. Bun presigns it (AWS signature V4):
 * with `virtualHostedStyle` and the bare endpoint, the "key" becomes the first path segment, the bucket.
 */
async function createBucket(
  options: { endpoint: string; accessKeyId: string; secretAccessKey: string; region: string },
  bucket: string,
) {
  const root = new S3Client({ ...options, virtualHostedStyle: true });
  const response = await fetch(root.presign(bucket, { method: "PUT", expiresIn: 60 }), { method: "PUT" });
  if (!response.ok) throw new Error(`CreateBucket ${bucket}: ${response.status} ${await response.text()}`);
}
