import { readFileSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { Kafka, logLevel } from "kafkajs";
import { freePort } from "./helpers";

export type ClusterNode = 1 | 2 | 3;

export interface PrivateCluster {
  /** "127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3", node 1 first. */
  brokers: string;
  /** The client ports, node 1 first; node N's broker id is N. */
  ports: number[];
  /** The controllers' ports, node 1 first. */
  controllerPorts: number[];
  /** The cluster's folder (node-1, node-2, node-3 in it). */
  data: string;
  /** How long `kafka.sh start` took until all three brokers were registered, in ms. */
  startupMs: number;
  /** SIGKILL, as a crash would; resolves once the process is gone. */
  kill(node: ClusterNode): Promise<void>;
  /** Starts the node again and waits until it has registered with the controllers. */
  start(node: ClusterNode): Promise<void>;
  /** SIGTERM: a graceful shutdown (controlled shutdown moves its leaderships away first). */
  stop(node: ClusterNode): Promise<void>;
  /** Every node down, the folder removed. */
  remove(): Promise<void>;
}

const nodes: ClusterNode[] = [1, 2, 3];

/** `length` consecutive free ports, none of them in `avoid`. */
async function freePorts(length: number, avoid: number[] = []): Promise<number[]> {
  for (;;) {
    const first = await freePort();
    const ports = Array.from({ length }, (_, i) => first + i);
    if (ports.some((port) => avoid.includes(port) || port > 65535)) continue;
    try {
      for (const port of ports.slice(1))
        Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } }).stop(true);
      return ports;
    } catch {}
  }
}

/**
 * A three-node KRaft cluster of the test's own from scripts/kafka.sh (KAFKA_NODES=3): free client and controller
 * ports, a mkdtemp folder, replication factor 3 and min.insync.replicas 2. Resolves once describeCluster lists the
 * three brokers. Nodes still running when the test process exits are killed and the folder removed.
 */
export async function privateCluster(): Promise<PrivateCluster> {
  const ports = await freePorts(3);
  const controllerPorts = await freePorts(3, ports);
  const data = await mkdtemp(`${tmpdir()}/sluice-test-cluster-`);
  const env = {
    ...process.env,
    KAFKA_NODES: "3",
    KAFKA_PORT: String(ports[0]),
    KAFKA_CONTROLLER_PORT: String(controllerPorts[0]),
    KAFKA_DATA: data,
  };
  const run = async (...args: string[]) => {
    const proc = Bun.spawn(["bash", `${import.meta.dir}/../scripts/kafka.sh`, ...args], {
      env,
      stdout: "ignore",
      stderr: "pipe",
    });
    const [code, stderr] = await Promise.all([proc.exited, new Response(proc.stderr).text()]);
    if (code !== 0) throw new Error(`kafka.sh ${args.join(" ")}: ${stderr}`);
  };
  // A crashed or interrupted test must not leave three JVMs behind on a shared machine.
  const cleanUp = () => {
    for (const node of nodes) {
      try {
        process.kill(Number(readFileSync(`${data}/node-${node}/broker.pid`, "utf8")), "SIGKILL");
      } catch {}
    }
    rmSync(data, { recursive: true, force: true });
  };
  process.once("exit", cleanUp);
  const brokers = ports.map((port) => `127.0.0.1:${port}`).join(",");

  const started = performance.now();
  try {
    await run("start");
    await waitForBrokers(brokers, 3);
  } catch (error) {
    await run("stop").catch(() => {});
    cleanUp();
    process.removeListener("exit", cleanUp);
    throw error;
  }
  const startupMs = performance.now() - started;

  return {
    brokers,
    ports,
    controllerPorts,
    data,
    startupMs,
    kill: (node) => run("kill", String(node)),
    start: (node) => run("start", String(node)),
    stop: (node) => run("stop", String(node)),
    async remove() {
      await run("stop");
      await rm(data, { recursive: true, force: true });
      process.removeListener("exit", cleanUp);
    },
  };
}

/** Waits until the cluster's metadata, as kafkajs sees it, lists `count` brokers. */
async function waitForBrokers(brokers: string, count: number, timeoutMs = 30_000) {
  const admin = new Kafka({ brokers: brokers.split(","), logLevel: logLevel.NOTHING }).admin();
  const deadline = Date.now() + timeoutMs;
  try {
    await admin.connect();
    for (;;) {
      const listed = (await admin.describeCluster().catch(() => ({ brokers: [] }))).brokers.length;
      if (listed === count) return;
      if (Date.now() > deadline) throw new Error(`the cluster lists ${listed} brokers, not ${count}`);
      await Bun.sleep(200);
    }
  } finally {
    await admin.disconnect();
  }
}
