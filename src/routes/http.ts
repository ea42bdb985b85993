import { gzipSync } from "node:zlib";
import type { MiddlewareHandler } from "hono";
import { parseAccept } from "hono/utils/accept";
import { ProblemError } from "../problem";
import { contentTypes, type Format } from "../query/formats";

const requestHeaders = "authorization, content-type, content-encoding, x-api-key, x-request-id";
const exposedHeaders = "retry-after, x-request-id, allow, www-authenticate, sluice-spooled";

/**
 * CORS for the configured origins only: their preflights are answered here, before the key check (a browser
 * sends none with them); requests from any other origin get no CORS headers at all.
 */
export function cors(origins: readonly string[]): MiddlewareHandler {
  const allowed = (origin: string | undefined) =>
    origin !== undefined && (origins.includes("*") || origins.includes(origin));
  return async (c, next) => {
    if (origins.length === 0) return next();
    const origin = c.req.header("origin");
    if (!allowed(origin) || origin === undefined) {
      await next();
      c.res.headers.append("vary", "origin");
      return;
    }
    if (c.req.method === "OPTIONS" && c.req.header("access-control-request-method")) {
      return c.body(null, 204, {
        "access-control-allow-origin": origin,
        "access-control-allow-methods": "GET, HEAD, POST",
        "access-control-allow-headers": requestHeaders,
        "access-control-max-age": "600",
        vary: "origin",
      });
    }
    await next();
    c.res.headers.set("access-control-allow-origin", origin);
    c.res.headers.set("access-control-expose-headers", exposedHeaders);
    c.res.headers.append("vary", "origin");
  };
}

/** The quality a client gives a media type: that of the most specific range in its Accept header naming it. */
function qualityOf(ranges: ReturnType<typeof parseAccept>, mediaType: string) {
  const [main] = mediaType.split("/");
  const specificity = (range: string) =>
    range === mediaType ? 3 : range === `${main}/*` ? 2 : range === "*/*" || range === "*" ? 1 : 0;
  let best = { specificity: 0, q: 0 };
  for (const range of ranges) {
    const rank = specificity(range.type.toLowerCase());
    if (rank > best.specificity) best = { specificity: rank, q: range.q };
  }
  return best.q;
}

/**
 * The format to answer in, by the Accept header's quality values (RFC 9110 §12.5.1); the first offered on a
 * tie or without the header; 406 when the client takes none of them.
 */
export function negotiate<F extends Format>(accept: string | undefined, offered: readonly [F, ...F[]]): F {
  if (!accept?.trim()) return offered[0];
  const ranges = parseAccept(accept);
  let chosen: { format: F; q: number } | undefined;
  for (const format of offered) {
    const q = qualityOf(ranges, contentTypes[format].split(";")[0] as string);
    if (q > 0 && (!chosen || q > chosen.q)) chosen = { format, q };
  }
  if (chosen) return chosen.format;
  const types = offered.map((format) => contentTypes[format].split(";")[0]).join(", ");
  throw new ProblemError(406, "not-acceptable", `this resource is available as ${types}; Accept: ${accept}`);
}

const compressible = /^(application\/([\w.+-]*json|javascript|x-ndjson)|text\/)/i;
const minimumToCompress = 1024;
const compressedBodies = new Map<bigint, Uint8Array>();

function gzipped(body: Uint8Array) {
  // Large bodies are mostly the same static asset, asked again and again.
  if (body.length < 256 * 1024) return gzipSync(body);
  const hash = BigInt(Bun.hash(body));
  let compressed = compressedBodies.get(hash);
  if (!compressed) {
    compressed = gzipSync(body);
    if (compressedBodies.size >= 16) compressedBodies.clear();
    compressedBodies.set(hash, compressed);
  }
  return compressed;
}

/**
 * Answers to GET and HEAD carry their Content-Length (HEAD the same as GET's), and large text ones are
 * gzip-compressed for clients that accept it. Ingest's small answers are left alone.
 */
export const sizedResponses: MiddlewareHandler = async (c, next) => {
  await next();
  if (c.req.method !== "GET" && c.req.method !== "HEAD") return;
  const response = c.res;
  if (!response.body || response.headers.has("content-encoding")) return;
  let body: Uint8Array = new Uint8Array(await response.arrayBuffer());
  let encoding: string | undefined;
  const compress =
    compressible.test(response.headers.get("content-type") ?? "") && body.length >= minimumToCompress;
  if (compress) {
    const accepted = c.req.header("accept-encoding");
    const noTransform = /(^|,)\s*no-transform\s*(,|$)/i.test(response.headers.get("cache-control") ?? "");
    if (accepted && !noTransform && qualityOf(parseAccept(accepted), "gzip") > 0) {
      body = gzipped(body);
      encoding = "gzip";
    }
  }
  c.res = new Response(body, response);
  if (compress) c.res.headers.append("vary", "accept-encoding");
  if (encoding) c.res.headers.set("content-encoding", encoding);
  c.res.headers.set("content-length", String(body.length));
};

/** Every GET under /v1 answers JSON unless it is one of `tabular` (JSON or CSV, negotiated by its handler). */
export function jsonOnlyUnless(tabular: ReadonlySet<string>): MiddlewareHandler {
  return async (c, next) => {
    if ((c.req.method === "GET" || c.req.method === "HEAD") && !tabular.has(c.req.path)) {
      negotiate(c.req.header("accept"), ["json"]);
    }
    await next();
  };
}
