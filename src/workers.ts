import type { Subprocess } from "bun";
import { AggregatorRegistry, type Registry } from "prom-client";
import type { Logger } from "./log";

/**
 * WORKERS=N: the process the user started (worker 0) runs every role and starts N-1 more gateway processes
 * of the same program, all serving the one port (SO_REUSEPORT: the kernel spreads connections over them),
 * each with its own Kafka producers and MQTT connections. /metrics, whichever worker answers it, sums them all.
 */

const workerFlag = "--worker";

/** Which worker this process is: 0 unless started by another as `start --worker <n>`. */
export function workerIndex(argv = process.argv): number {
  const at = argv.indexOf(workerFlag);
  return at < 0 ? 0 : Number(argv[at + 1] ?? 0);
}

/** The command that starts worker n of this same program, run by bun or as the single executable. */
function workerCommand(n: number): string[] {
  const compiled = Bun.main.startsWith("/$bunfs/");
  return [process.execPath, ...(compiled ? [] : [Bun.main]), "start", workerFlag, String(n)];
}

type Message =
  | { type: "collect"; id: number }
  | { type: "collected"; id: number; metrics: object[] }
  | { type: "exposition?"; id: number }
  | { type: "exposition"; id: number; text: string };

/** Worker 0: starts the others, starts again one that dies, and answers their /metrics with everyone's. */
export function superviseWorkers(count: number, registry: Registry, logger: Logger) {
  const children = new Map<number, Subprocess>();
  const pending = new Map<number, (metrics: object[]) => void>();
  let nextId = 0;
  let stopping = false;

  async function everyone(): Promise<string> {
    const own = await registry.getMetricsAsJSON();
    const theirs = await Promise.all(
      [...children.values()].map(
        (child) =>
          new Promise<object[]>((resolve) => {
            const id = nextId++;
            const timer = setTimeout(() => {
              pending.delete(id);
              resolve([]);
            }, 1000);
            pending.set(id, (metrics) => {
              clearTimeout(timer);
              pending.delete(id);
              resolve(metrics);
            });
            child.send({ type: "collect", id } satisfies Message);
          }),
      ),
    );
    return AggregatorRegistry.aggregate([own, ...theirs.filter((metrics) => metrics.length > 0)]).metrics();
  }

  function spawn(n: number) {
    const child = Bun.spawn(workerCommand(n), {
      env: process.env,
      stdout: "inherit",
      stderr: "inherit",
      ipc: (message: Message) => {
        if (message.type === "collected") pending.get(message.id)?.(message.metrics);
        else if (message.type === "exposition?") {
          void everyone().then((text) =>
            child.send({ type: "exposition", id: message.id, text } satisfies Message),
          );
        }
      },
      onExit: (_process, code, signal) => {
        children.delete(n);
        if (stopping) return;
        logger.error("worker exited; starting it again", { worker: n, code, signal });
        setTimeout(() => !stopping && spawn(n), 1000);
      },
    });
    children.set(n, child);
  }

  for (let n = 1; n < count; n++) spawn(n);
  return {
    metrics: everyone,
    /** SIGTERM to every worker; resolves once they have all exited (each drains as worker 0 does). */
    async stop() {
      stopping = true;
      const exits = [...children.values()].map((child) => {
        child.kill("SIGTERM");
        return child.exited;
      });
      await Promise.all(exits);
    },
  };
}

/** Worker n > 0: its own metrics for worker 0 to sum, and the sum of everyone's for its /metrics. */
export function workerMetrics(registry: Registry): () => Promise<string> {
  const waiting = new Map<number, (text: string) => void>();
  let nextId = 0;
  process.on("message", (message: Message) => {
    if (message.type === "collect") {
      void registry
        .getMetricsAsJSON()
        .then((metrics) => process.send?.({ type: "collected", id: message.id, metrics } satisfies Message));
    } else if (message.type === "exposition") waiting.get(message.id)?.(message.text);
  });
  return () =>
    new Promise<string>((resolve) => {
      const id = nextId++;
      // Worker 0 gone or slow: this worker's own figures are better than none.
      const timer = setTimeout(() => {
        waiting.delete(id);
        resolve(registry.metrics());
      }, 2000);
      waiting.set(id, (text) => {
        clearTimeout(timer);
        waiting.delete(id);
        resolve(text);
      });
      process.send?.({ type: "exposition?", id } satisfies Message);
    });
}
