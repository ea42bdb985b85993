import { $, type Subprocess } from "bun";
import { Kafka, logLevel } from "kafkajs";
import { allTopics } from "../src/kafka/client";

export const root = `${import.meta.dir}/..`;

/** wrk comes from Debian's packages; install it when missing. */
export async function ensureWrk() {
  if (Bun.which("wrk")) return;
  console.error("installing wrk from Debian's packages...");
  await $`apt-get install -y -qq wrk`.quiet().nothrow();
  if (!Bun.which("wrk")) {
    await $`apt-get update -qq`.quiet().nothrow();
    await $`apt-get install -y -qq wrk`.quiet();
  }
}

/** A connected admin client of the brokers; the caller disconnects it. */
export async function benchAdmin(brokers: string) {
  const admin = new Kafka({
    clientId: "bench",
    brokers: brokers.split(","),
    logLevel: logLevel.NOTHING,
  }).admin();
  await admin.connect();
  return admin;
}

/** Deletes a benchmark's topics, so that its records neither pile up on disk nor load the next benchmark. */
export async function deleteTopics(brokers: string, prefix: string) {
  const admin = await benchAdmin(brokers);
  await admin.deleteTopics({ topics: allTopics(prefix) }).catch(() => {});
  await admin.disconnect();
}

export async function waitForPort(port: number, path = "/healthz", timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}${path}`)).ok) return;
    } catch {}
    if (Date.now() > deadline) throw new Error(`nothing answered on port ${port}`);
    await Bun.sleep(200);
  }
}

/** Starts a Bun process from a file of the project and waits until it answers. */
export async function serve(args: string[], env: Record<string, string>, port: number, readyPath?: string) {
  const proc: Subprocess = Bun.spawn(["bun", ...args], {
    cwd: root,
    env: { ...process.env, ...env, PORT: String(port), LOG_LEVEL: "warn" },
    stdout: "inherit",
    stderr: "inherit",
  });
  await waitForPort(port, readyPath);
  return {
    proc,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
  };
}

export interface WrkResult {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  non2xx: number;
  errors: number;
}

function toMs(value: string) {
  const match = value.match(/^([\d.]+)(us|ms|s|m)$/);
  if (!match) return Number.NaN;
  const n = Number(match[1]);
  return { us: n / 1000, ms: n, s: n * 1000, m: n * 60_000 }[match[2] as "us" | "ms" | "s" | "m"];
}

export async function wrk(options: {
  url: string;
  script: string;
  connections: number;
  seconds: number;
  env?: Record<string, string>;
}): Promise<WrkResult> {
  const { url, script, connections, seconds } = options;
  const threads = Math.min(2, connections);
  const output = await $`wrk -t${threads} -c${connections} -d${seconds}s --latency -s ${script} ${url}`
    .env({ ...process.env, ...options.env })
    .text();
  const number = (pattern: RegExp) => Number(output.match(pattern)?.[1] ?? 0);
  const errors = output.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  return {
    requestsPerSecond: number(/Requests\/sec:\s+([\d.]+)/),
    p50Ms: toMs(output.match(/^\s+50%\s+(\S+)/m)?.[1] ?? ""),
    p99Ms: toMs(output.match(/^\s+99%\s+(\S+)/m)?.[1] ?? ""),
    requests: number(/(\d+) requests in/),
    non2xx: number(/Non-2xx or 3xx responses: (\d+)/),
    errors: errors ? errors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0,
  };
}

export function machine() {
  const cpus = require("node:os").cpus();
  const memory = Math.round(require("node:os").totalmem() / 2 ** 30);
  return `${cpus.length} × ${cpus[0]?.model ?? "cpu"}, ${memory} GiB, Bun ${Bun.version}`;
}
