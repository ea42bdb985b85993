import { OpenAPIHono } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import type { Authenticate } from "./auth/keys";
import type { Cache } from "./cache/redis";
import type { Config } from "./config";
import type { Connectors } from "./connectors/runner";
import { databaseError } from "./db/client";
import type { Ingest } from "./ingest/pipeline";
import { issuesToErrors } from "./ingest/validate";
import { kinds } from "./kinds";
import { type Logger, logContext } from "./log";
import type { Metrics } from "./metrics";
import { ProblemError } from "./problem";
import type { Aggregates } from "./query/aggregates";
import type { Records } from "./query/records";
import { registerAuth } from "./routes/auth";
import { registerConnectors } from "./routes/connectors";
import { registerDashboard } from "./routes/dashboard";
import { registerDocs } from "./routes/docs";
import { type Probe, registerHealth } from "./routes/health";
import { cors, jsonOnlyUnless, sizedResponses } from "./routes/http";
import { registerIngest } from "./routes/ingest";
import { registerKinds } from "./routes/kinds";
import { registerQuery } from "./routes/query.handlers";

export interface AppDeps {
  config: Config;
  logger: Logger;
  ingest: Ingest;
  records: Records;
  /** The connectors this process runs, when its roles include them. */
  connectors?: Connectors;
  aggregates: Aggregates;
  authenticate: Authenticate;
  cache: Cache;
  metrics: Metrics;
  probes: Probe[];
}

/** Every router comes from here, so parameter validation errors are answered the same way everywhere. */
export function createRouter() {
  return new OpenAPIHono({
    defaultHook: (result) => {
      if (result.success) return;
      const errors = issuesToErrors(result.error.issues);
      throw new ProblemError(
        400,
        "invalid-parameters",
        `invalid ${errors.map((error) => error.path || result.target).join(", ")}`,
        errors,
      );
    },
  });
}

/** The methods each fixed path answers (HEAD with GET); middleware and patterns are left out. */
function allowedMethods(routes: readonly { path: string; method: string }[]) {
  const methods = new Map<string, Set<string>>();
  for (const { path, method } of routes) {
    if (method === "ALL" || /[:*]/.test(path)) continue;
    const set = methods.get(path) ?? new Set<string>();
    set.add(method);
    if (method === "GET") set.add("HEAD");
    methods.set(path, set);
  }
  return methods;
}

export function createApp(deps: AppDeps) {
  const app = createRouter();
  app.onError((error, c) => {
    if (error instanceof ProblemError) return error.toResponse();
    if (error instanceof HTTPException && error.status < 500) {
      const status = error.status === 415 ? 415 : error.status === 413 ? 413 : 400;
      return new ProblemError(status, "bad-request", error.message).toResponse();
    }
    deps.logger.error("unhandled error", { error: databaseError(error), path: c.req.path });
    return new ProblemError(500, "internal", "an unexpected error occurred").toResponse();
  });
  // A path that exists with other methods is a 405 naming them (RFC 9110), not a 404.
  let methodsByPath: Map<string, Set<string>> | undefined;
  app.notFound((c) => {
    methodsByPath ??= allowedMethods(app.routes);
    const allowed = methodsByPath.get(c.req.path);
    if (allowed) {
      const allow = [...allowed].sort().join(", ");
      const detail = `${c.req.method} is not allowed on ${c.req.path}; it takes ${allow}`;
      return new ProblemError(405, "method-not-allowed", detail, undefined, { allow }).toResponse();
    }
    return new ProblemError(404, "not-found", `no route for ${c.req.method} ${c.req.path}`).toResponse();
  });

  // One wide log line per request, every line logged meanwhile carrying its id; HTTP metrics.
  app.use("*", async (c, next) => {
    const given = c.req.header("x-request-id");
    const requestId = given && /^[\w.:-]{1,64}$/.test(given) ? given : Bun.randomUUIDv7();
    const context: Record<string, unknown> = { requestId };
    const started = performance.now();
    deps.metrics.httpInFlight.inc();
    try {
      await logContext.run(context, next);
    } finally {
      deps.metrics.httpInFlight.dec();
      const route = c.req.matchedRoutes.findLast(
        (matched) => matched.path !== "/*" && matched.path !== "*",
      )?.path;
      const labels = { method: c.req.method, route: route ?? "unmatched" };
      const seconds = (performance.now() - started) / 1000;
      deps.metrics.httpRequests.inc({ ...labels, status: String(c.res.status) });
      deps.metrics.httpRequestSeconds.observe(labels, seconds);
      c.res.headers.set("x-request-id", requestId);
      logContext.run(context, () =>
        deps.logger.info("request", {
          method: c.req.method,
          path: c.req.path,
          route: labels.route,
          status: c.res.status,
          durationMs: Math.round(seconds * 10_000) / 10,
          bytesIn: Number(c.req.header("content-length") ?? 0),
        }),
      );
    }
  });

  app.use("*", cors(deps.config.CORS_ORIGINS));
  app.use("*", sizedResponses);
  registerHealth(app, deps);
  // A sink-only process answers its health probes and nothing else.
  if (deps.config.ROLES.includes("gateway")) {
    registerAuth(app, deps);
    const tabular = kinds.flatMap((kind) => [
      `/v1/${kind.name}/${kind.resource}`,
      `/v1/${kind.name}/aggregates`,
    ]);
    app.use("/v1/*", jsonOnlyUnless(new Set(tabular)));
    registerIngest(app, deps);
    registerQuery(app, deps);
    registerKinds(app, deps);
    registerConnectors(app, deps);
    registerDashboard(app, deps);
    registerDocs(app);
  }
  return app;
}

export type App = ReturnType<typeof createApp>;
