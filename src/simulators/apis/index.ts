import { aviationStackApi } from "./aviationstack";
import {
  type ApiDefinition,
  type ApiName,
  type ApiServerOptions,
  type ApiStats,
  createLimits,
  sameKey,
} from "./common";
import { openWeatherApi } from "./openweather";
import { storeApi } from "./store";

export type { ApiName, ApiServerOptions, ApiStats } from "./common";

export const apiNames: readonly ApiName[] = ["openweather", "aviationstack", "store"];

export const isApiName = (name: unknown): name is ApiName => apiNames.includes(name as ApiName);

const definitions: Record<ApiName, (options: ApiServerOptions) => ApiDefinition> = {
  openweather: openWeatherApi,
  aviationstack: aviationStackApi,
  store: storeApi,
};

/** The path and a query that answers, for examples and smoke tests. */
export const examplePaths: Record<ApiName, string> = {
  openweather: "/data/2.5/weather?q=Casablanca&units=metric",
  aviationstack: "/v1/flights?limit=10",
  store: "/visitors?hours=1&limit=50",
};

export interface ApiHandler {
  fetch(request: Request): Response;
  stats: ApiStats;
}

/**
 * One simulated API as a fetch handler: path, credential, monthly quota and per-minute rate checked in that order
 * (a request without a valid credential counts against neither), then the API's own answer.
 */
export function createApiHandler(api: ApiName, options: ApiServerOptions = {}): ApiHandler {
  const definition = definitions[api](options);
  const limits = createLimits(options.perMinute, options.perMonth);
  const clock = () => {
    const now = options.now?.() ?? Date.now();
    return typeof now === "number" ? now : now.getTime();
  };
  const stats: ApiStats = { requests: 0, byStatus: {} };
  const handle = (request: Request): Response => {
    const url = new URL(request.url);
    if (url.pathname.replace(/\/$/, "") !== definition.path) return definition.notFound();
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response(null, { status: 405, headers: { allow: "GET, HEAD" } });
    }
    if (options.apiKey !== undefined) {
      const key = definition.credential(request, url);
      if (!key) return definition.refuse({ reason: "missing-key" });
      if (!sameKey(key, options.apiKey)) return definition.refuse({ reason: "invalid-key" });
    }
    const now = clock();
    const refusal = limits.take(now);
    if (refusal) return definition.refuse(refusal);
    return definition.answer(request, url, now);
  };
  return {
    stats,
    fetch(request) {
      const response = handle(request);
      stats.requests++;
      stats.byStatus[response.status] = (stats.byStatus[response.status] ?? 0) + 1;
      return response;
    },
  };
}

export interface ApiServer {
  /** The base URL, without a trailing slash: `http://127.0.0.1:<port>`. */
  url: string;
  port: number;
  stats: ApiStats;
  stop(): Promise<void>;
}

/** Serves one simulated API over HTTP on `Bun.serve` (a free port on 127.0.0.1 unless told otherwise). */
export function startApiServer(api: ApiName, options: ApiServerOptions = {}): ApiServer {
  const handler = createApiHandler(api, options);
  const hostname = options.hostname ?? "127.0.0.1";
  const server = Bun.serve({ port: options.port ?? 0, hostname, fetch: handler.fetch });
  const port = server.port ?? 0;
  // Bound to every interface, the server is still reached on loopback.
  const reach = hostname === "0.0.0.0" ? "127.0.0.1" : hostname === "::" ? "::1" : hostname;
  return {
    url: `http://${reach.includes(":") ? `[${reach}]` : reach}:${port}`,
    port,
    stats: handler.stats,
    stop: () => server.stop(true),
  };
}
