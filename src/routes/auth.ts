import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context, Next } from "hono";
import { type Authenticate, allows } from "../auth/keys";
import { createRateLimiter } from "../auth/ratelimit";
import type { Cache } from "../cache/redis";
import type { Config } from "../config";
import { isUnavailable } from "../db/client";
import { findKind } from "../kinds";
import { logContext } from "../log";
import type { Metrics } from "../metrics";
import { ProblemError, unavailable } from "../problem";

export const security: Record<string, string[]>[] = [{ bearer: [] }, { apiKey: [] }];

/** The key a request presents, or the reason its Authorization header is not one. */
function keyOf(c: Context): { key?: string; malformed?: string } {
  const authorization = c.req.header("authorization");
  const bearer = authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
  const key = bearer ?? c.req.header("x-api-key");
  if (key) return { key };
  if (authorization !== undefined)
    return { malformed: "the Authorization header is not valid: send `Bearer <key>`" };
  return {};
}

/**
 * Every /v1 request needs a key whose scopes cover the kind and the action (POST ingests, GET reads), and
 * a token from the key's rate-limit bucket. The key itself is never logged, stored in Kafka or echoed.
 */
export function registerAuth(
  app: OpenAPIHono,
  deps: { config: Config; authenticate: Authenticate; cache: Cache; metrics: Metrics },
) {
  const { config, authenticate, cache, metrics } = deps;
  const rate = config.RATE_LIMIT_PER_SECOND;
  const burst = config.RATE_LIMIT_BURST ?? rate;
  const takeToken = createRateLimiter(cache, rate, burst);
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });
  app.openAPIRegistry.registerComponent("securitySchemes", "apiKey", {
    type: "apiKey",
    in: "header",
    name: "X-API-Key",
  });

  app.use("/v1/*", async (c: Context, next: Next) => {
    const unauthorized = (detail: string) =>
      new ProblemError(401, "unauthorized", detail, undefined, {
        "www-authenticate": 'Bearer realm="sluice"',
      });
    const { key, malformed } = keyOf(c);
    if (malformed) throw unauthorized(malformed);
    if (!key) throw unauthorized("an API key is required: Authorization: Bearer <key>, or X-API-Key: <key>");
    let principal: Awaited<ReturnType<Authenticate>>;
    try {
      principal = await authenticate(key);
    } catch (error) {
      if (!isUnavailable(error)) throw error;
      throw unavailable("database-unavailable", "the key cannot be verified now", config.RETRY_AFTER_SECONDS);
    }
    if (!principal) throw unauthorized("the API key is not valid");
    const context = logContext.getStore();
    if (context) context.keyId = principal.keyId;
    // /v1/<kind>/... needs that kind's scope, /v1/kinds any valid key, anything else (dead letters) the wildcard.
    const segment = c.req.path.split("/")[2] ?? "";
    const kind = findKind(segment) ? segment : "*";
    const action = c.req.method === "POST" ? "ingest" : "read";
    if (c.req.path !== "/v1/kinds" && !allows(principal, action, kind)) {
      throw new ProblemError(403, "forbidden", `this key lacks the scope ${action}:${kind}`);
    }
    const token = takeToken(principal.keyId);
    const wait = typeof token === "number" ? token : await token;
    if (wait) {
      metrics.rateLimitRefusals.inc();
      throw new ProblemError(
        429,
        "rate-limited",
        `rate limit of ${rate} requests per second (burst ${burst}) for key ${principal.keyId} exceeded`,
        undefined,
        { "retry-after": String(Math.max(1, Math.ceil(wait / 1000))) },
      );
    }
    await next();
  });
}
