import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { withTimeout } from "../kafka/client";
import type { Metrics } from "../metrics";

/** A dependency check: critical ones decide readiness, the others are reported only. */
export interface Probe {
  name: string;
  critical: boolean;
  check: () => Promise<unknown>;
  timeoutMs?: number;
  /** Figures reported with the check, such as the spool's depth. */
  details?: () => Record<string, number>;
}

const CheckSchema = z.object({
  ok: z.boolean(),
  critical: z.boolean(),
  latencyMs: z.number(),
  error: z.string().optional(),
  details: z.record(z.string(), z.number()).optional(),
});

const ReadinessSchema = z
  .object({ status: z.enum(["ready", "unavailable"]), checks: z.record(z.string(), CheckSchema) })
  .openapi("Readiness");

const healthz = createRoute({
  method: "get",
  path: "/healthz",
  security: [],
  tags: ["health"],
  summary: "Liveness: the process is up",
  responses: {
    200: {
      description: "Alive",
      content: { "application/json": { schema: z.object({ status: z.literal("ok") }) } },
    },
  },
});

const readyz = createRoute({
  method: "get",
  path: "/readyz",
  security: [],
  tags: ["health"],
  summary: "Readiness: every critical dependency answers",
  responses: {
    200: { description: "Ready", content: { "application/json": { schema: ReadinessSchema } } },
    503: {
      description: "A critical dependency is down",
      content: { "application/json": { schema: ReadinessSchema } },
    },
  },
});

export async function runProbes(probes: Probe[]) {
  const results = await Promise.all(
    probes.map(async (probe) => {
      const started = performance.now();
      const details = probe.details ? { details: probe.details() } : {};
      try {
        await withTimeout(
          probe.check(),
          probe.timeoutMs ?? 2000,
          `no answer within ${probe.timeoutMs ?? 2000} ms`,
        );
        return [
          probe.name,
          {
            ok: true,
            critical: probe.critical,
            latencyMs: Math.round(performance.now() - started),
            ...details,
          },
        ];
      } catch (error) {
        const latencyMs = Math.round(performance.now() - started);
        return [
          probe.name,
          { ok: false, critical: probe.critical, latencyMs, error: (error as Error).message, ...details },
        ];
      }
    }),
  );
  const checks = Object.fromEntries(results) as Record<string, z.infer<typeof CheckSchema>>;
  const ready = Object.values(checks).every((check) => check.ok || !check.critical);
  return { status: ready ? ("ready" as const) : ("unavailable" as const), checks };
}

const metricsRoute = createRoute({
  method: "get",
  path: "/metrics",
  security: [],
  tags: ["health"],
  summary: "Prometheus metrics (text exposition format)",
  responses: {
    200: {
      description: "Every sluice_* metric",
      content: { "text/plain": { schema: z.string() } },
    },
  },
});

export function registerHealth(app: OpenAPIHono, deps: { probes: Probe[]; metrics: Metrics }) {
  app.openapi(metricsRoute, async (c) =>
    c.text(await deps.metrics.exposition(), 200, { "content-type": deps.metrics.registry.contentType }),
  );
  app.openapi(healthz, (c) => c.json({ status: "ok" as const }, 200));
  app.openapi(readyz, async (c) => {
    const readiness = await runProbes(deps.probes);
    return readiness.status === "ready" ? c.json(readiness, 200) : c.json(readiness, 503);
  });
}
