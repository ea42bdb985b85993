import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Config } from "../config";
import { isUnavailable } from "../db/client";
import { type Kind, kinds } from "../kinds";
import { invalidParameter, unavailable } from "../problem";
import type { Aggregates } from "../query/aggregates";
import { contentTypes, type Format, recordsCsv } from "../query/formats";
import { decodeCursor, type Records } from "../query/records";
import { negotiate } from "./http";
import { MAX_SOURCES, type QueryRoutes, queryRoutes } from "./query.routes";
import type { AppRouteHandler } from "./types";

interface QueryDeps {
  config: Config;
  records: Records;
  aggregates: Aggregates;
}

type Handler<Name extends keyof QueryRoutes> = AppRouteHandler<QueryRoutes[Name]>;

const tabular: [Format, Format] = ["json", "csv"];
const byteOrderMark = new Uint8Array([0xef, 0xbb, 0xbf]);

/** A CSV answer, after a byte order mark when asked (Excel reads UTF-8 only then). */
function csv(body: string | Uint8Array, bom: boolean) {
  const text = typeof body === "string" ? new TextEncoder().encode(body) : body;
  return new Response(bom ? Buffer.concat([byteOrderMark, text]) : text, {
    status: 200,
    headers: { "content-type": contentTypes.csv, vary: "accept" },
  });
}

/** The `from` and `to` of a read, which must come in that order. */
function rangeOf(query: { from?: string; to?: string }) {
  const from = query.from === undefined ? undefined : new Date(query.from);
  const to = query.to === undefined ? undefined : new Date(query.to);
  if (from && to && from >= to) throw invalidParameter("from", "must be before to");
  return { from, to };
}

/** A kind's read handlers. */
export function queryHandlers(kind: Kind, deps: QueryDeps) {
  const { config, records, aggregates } = deps;

  /** PostgreSQL down is a 503 the client can retry, not a 500. */
  async function fromDatabase<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (isUnavailable(error)) {
        throw unavailable("database-unavailable", "PostgreSQL is not reachable", config.RETRY_AFTER_SECONDS);
      }
      throw error;
    }
  }

  /** The source filter: one id, or several separated by commas, in a stable order. */
  function sourcesOf(query: Record<string, unknown>): string[] | undefined {
    const value = query[kind.sourceField];
    if (typeof value !== "string") return undefined;
    const ids = [...new Set(value.split(","))].sort();
    if (ids.length > MAX_SOURCES) throw invalidParameter(kind.sourceField, `at most ${MAX_SOURCES} sources`);
    return ids;
  }

  const list: Handler<"list"> = async (c) => {
    const query = c.req.valid("query");
    const format = negotiate(c.req.header("accept"), tabular);
    const cursor = query.cursor !== undefined ? decodeCursor(query.cursor) : undefined;
    if (query.cursor !== undefined && !cursor)
      throw invalidParameter("cursor", "not a cursor this API gave out");
    const filter = { sourceIds: sourcesOf(query), ...rangeOf(query), cursor, limit: query.limit };
    const page = await fromDatabase(() => records.list(kind, filter));
    if (format === "csv") return csv(recordsCsv(kind, page.items), query.bom === "true");
    return c.json(page, 200, { vary: "accept" });
  };

  const aggregate: Handler<"aggregates"> = async (c) => {
    const query = c.req.valid("query");
    const request = {
      bucket: query.bucket,
      ...rangeOf(query),
      sourceIds: sourcesOf(query),
      bySource: query.groupBy === "source",
      includeSuspect: query.includeSuspect === "true",
      metrics: query.metrics?.split(","),
      format: negotiate(c.req.header("accept"), tabular),
    };
    const { body, contentType } = await fromDatabase(() => aggregates.answer(kind, request));
    const bytes = typeof body === "string" ? body : new Uint8Array(body);
    if (request.format === "csv") return csv(bytes, query.bom === "true");
    return c.body(bytes, 200, { "content-type": contentType, vary: "accept" });
  };

  const latest: Handler<"latest"> = async (c) => {
    negotiate(c.req.header("accept"), ["json"]);
    const items = await fromDatabase(() => records.latest(kind, sourcesOf(c.req.valid("query"))));
    return c.json({ items }, 200);
  };

  return { list, aggregate, latest };
}

export function registerQuery(app: OpenAPIHono, deps: QueryDeps) {
  for (const kind of kinds) {
    const routes = queryRoutes(kind);
    const handlers = queryHandlers(kind, deps);
    app.openapi(routes.list, handlers.list);
    app.openapi(routes.aggregates, handlers.aggregate);
    app.openapi(routes.latest, handlers.latest);
  }
}
