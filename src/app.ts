import { OpenAPIHono } from "@hono/zod-openapi";
import { HTTPException } from "hono/http-exception";
import type { Authenticate } from "./auth/keys";
import type { Cache } from "./cache/redis";
import type { Config } from "./config";
import { databaseError } from "./db/client";
import type { Ingest } from "./ingest/pipeline";
import { issuesToErrors } from "./ingest/validate";
import type { Logger } from "./log";
import { ProblemError } from "./problem";
import type { Reader } from "./reader";
import { registerAuth } from "./routes/auth";
import { registerDocs } from "./routes/docs";
import { type Probe, registerHealth } from "./routes/health";
import { registerIngest } from "./routes/ingest";
import { registerQuery } from "./routes/query";

export interface AppDeps {
  config: Config;
  logger: Logger;
  ingest: Ingest;
  reader: Reader;
  authenticate: Authenticate;
  cache: Cache;
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
  app.notFound((c) =>
    new ProblemError(404, "not-found", `no route for ${c.req.method} ${c.req.path}`).toResponse(),
  );

  registerHealth(app, deps);
  // A sink-only process answers its health probes and nothing else.
  if (deps.config.ROLES.includes("gateway")) {
    registerAuth(app, deps);
    registerIngest(app, deps);
    registerQuery(app, deps);
    registerDocs(app);
  }
  return app;
}

export type App = ReturnType<typeof createApp>;
