import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { RecordItem } from "../cache/redis";
import type { Config } from "../config";
import { toCsv } from "../csv";
import { isUnavailable } from "../db/client";
import type { BucketRow } from "../db/queries";
import { type Kind, kinds } from "../kinds";
import { fieldPaths, sourceIdSchema } from "../kinds/define";
import { ProblemError, problemResponses } from "../problem";
import { type Bucket, buckets, decodeCursor, type Reader } from "../reader";
import { security } from "./auth";

const isoTime = (description: string) =>
  z.iso.datetime({ offset: true }).optional().openapi({ description, example: "2026-11-22T00:00:00Z" });

const MetricStatsSchema = z
  .object({
    count: z.number().int(),
    sum: z.number().nullable(),
    min: z.number().nullable(),
    max: z.number().nullable(),
    avg: z.number().nullable(),
  })
  .openapi("MetricStats");

const csvContent = { "text/csv": { schema: z.string().openapi({ description: "The same rows as CSV." }) } };

function schemasOf(kind: Kind) {
  const sourceFilter = {
    [kind.sourceField]: sourceIdSchema.optional().openapi({ description: `Only this ${kind.sourceField}.` }),
  };
  const range = {
    from: isoTime("Inclusive start."),
    to: isoTime("Exclusive end."),
  };
  const item = z
    .object({
      id: z.string(),
      sourceId: z.string(),
      ts: z.string(),
      receivedAt: z.string(),
      via: z.enum(["http", "mqtt"]),
      data: z.object(kind.fields).partial().openapi(`${kind.title}Data`),
      flags: z
        .array(z.string())
        .openapi({ description: "Quality flags; empty when the record is plausible." }),
    })
    .openapi(`${kind.title}Item`);
  const metricNames = kind.metrics.join(", ");
  const derived = Object.fromEntries(
    Object.keys(kind.derived ?? {}).map((name) => [name, z.number().nullable()]),
  );
  const bucketItem = z
    .object({
      bucketStart: z.string(),
      sourceId: z.string().optional().openapi({ description: "With groupBy=source." }),
      count: z.number().int(),
      metrics: z.record(z.string(), MetricStatsSchema).openapi({ description: `Of ${metricNames}.` }),
      ...derived,
    })
    .openapi(`${kind.title}Bucket`);
  return {
    listQuery: z.strictObject({
      ...sourceFilter,
      ...range,
      limit: z.coerce.number().int().min(1).max(1000).default(100),
      cursor: z.string().max(512).optional().openapi({ description: "`nextCursor` of the previous page." }),
    }),
    aggregateQuery: z.strictObject({
      ...sourceFilter,
      ...range,
      bucket: z.enum(Object.keys(buckets) as [Bucket, ...Bucket[]]).default("1h"),
      metrics: z
        .string()
        .regex(
          new RegExp(`^(${kind.metrics.join("|")})(,(${kind.metrics.join("|")}))*$`),
          `a list of ${metricNames}`,
        )
        .optional()
        .openapi({ description: `Comma-separated; default all: ${metricNames}.` }),
      groupBy: z.enum(["none", "source"]).default("none"),
      includeSuspect: z.enum(["true", "false"]).default("false").openapi({
        description: "Include records flagged as implausible (counter spikes, stuck sensors).",
      }),
    }),
    latestQuery: z.strictObject(sourceFilter),
    page: z.object({ items: z.array(item), nextCursor: z.string().nullable() }).openapi(`${kind.title}Page`),
    latest: z.object({ items: z.array(item) }).openapi(`${kind.title}Latest`),
    aggregates: z
      .object({ bucket: z.string(), from: z.string(), to: z.string(), items: z.array(bucketItem) })
      .openapi(`${kind.title}Aggregates`),
  };
}

function readRoutes(kind: Kind) {
  const schemas = schemasOf(kind);
  const errors = problemResponses(400, 401, 403, 429, 503);
  const base = `/v1/${kind.name}`;
  return {
    schemas,
    list: createRoute({
      method: "get",
      security,
      path: `${base}/${kind.resource}`,
      tags: [kind.name],
      summary: `List ${kind.title} records, newest first`,
      request: { query: schemas.listQuery },
      responses: {
        200: {
          description: "One page; `nextCursor` is null on the last.",
          content: { "application/json": { schema: schemas.page }, ...csvContent },
        },
        ...errors,
      },
    }),
    aggregates: createRoute({
      method: "get",
      security,
      path: `${base}/aggregates`,
      tags: [kind.name],
      summary: `${kind.title} metrics in time buckets`,
      description:
        "Buckets are aligned on UTC multiples of their width; `from` is rounded down and `to` up to bucket " +
        "boundaries. Buckets without records are left out. Default range: the last 24 hours (30 days for 1d).",
      request: { query: schemas.aggregateQuery },
      responses: {
        200: {
          description: "The buckets, oldest first.",
          content: { "application/json": { schema: schemas.aggregates }, ...csvContent },
        },
        ...errors,
      },
    }),
    latest: createRoute({
      method: "get",
      security,
      path: `${base}/latest`,
      tags: [kind.name],
      summary: `The newest ${kind.title} of each source`,
      request: { query: schemas.latestQuery },
      responses: {
        200: {
          description: "One record per source.",
          content: { "application/json": { schema: schemas.latest } },
        },
        ...errors,
      },
    }),
  };
}

function invalid(path: string, message: string): ProblemError {
  return new ProblemError(400, "invalid-parameters", `invalid ${path}: ${message}`, [{ path, message }]);
}

const wantsCsv = (c: Context) => (c.req.header("accept") ?? "").includes("text/csv");

function csvResponse(body: string) {
  return new Response(body, { status: 200, headers: { "content-type": "text/csv; charset=utf-8" } });
}

function recordsCsv(kind: Kind, items: RecordItem[]) {
  const paths = fieldPaths(kind.fields);
  const header = [
    "id",
    "sourceId",
    "ts",
    "receivedAt",
    "via",
    "flags",
    ...paths.map((path) => path.join(".")),
  ];
  const valueAt = (data: Record<string, unknown>, path: string[]) =>
    path.reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], data);
  const rows = items.map((item) => [
    item.id,
    item.sourceId,
    item.ts,
    item.receivedAt,
    item.via,
    item.flags,
    ...paths.map((path) => valueAt(item.data, path)),
  ]);
  return toCsv(header, rows);
}

function bucketsCsv(kind: Kind, metrics: readonly string[], items: BucketItem[], bySource: boolean) {
  const derived = Object.keys(kind.derived ?? {});
  const stats = ["count", "sum", "min", "max", "avg"] as const;
  const header = [
    "bucketStart",
    ...(bySource ? ["sourceId"] : []),
    "count",
    ...metrics.flatMap((metric) => stats.map((stat) => `${metric}.${stat}`)),
    ...derived,
  ];
  const rows = items.map((item) => [
    item.bucketStart,
    ...(bySource ? [item.sourceId] : []),
    item.count,
    ...metrics.flatMap((metric) => stats.map((stat) => item.metrics[metric]?.[stat])),
    ...derived.map((name) => item[name]),
  ]);
  return toCsv(header, rows);
}

type MetricStats = z.infer<typeof MetricStatsSchema>;
type BucketItem = Omit<BucketRow, "metrics"> & { metrics: Record<string, MetricStats> } & Record<
    string,
    unknown
  >;

/** Buckets as served: the chosen metrics with their averages, and the kind's derived values. */
function shapeBuckets(kind: Kind, rows: BucketRow[], metrics: readonly string[]): BucketItem[] {
  return rows.map((row) => {
    const sums = Object.fromEntries(kind.metrics.map((metric) => [metric, row.metrics[metric]?.sum ?? 0]));
    const derived = Object.fromEntries(
      Object.entries(kind.derived ?? {}).map(([name, derive]) => [name, derive(sums)]),
    );
    return {
      ...row,
      metrics: Object.fromEntries(
        metrics.map((metric) => {
          const stats = row.metrics[metric] ?? { count: 0, sum: null, min: null, max: null };
          return [
            metric,
            { ...stats, avg: stats.count > 0 && stats.sum !== null ? stats.sum / stats.count : null },
          ];
        }),
      ),
      ...derived,
    };
  });
}

export function registerQuery(app: OpenAPIHono, deps: { config: Config; reader: Reader }) {
  const { config, reader } = deps;
  const retryAfter = { "retry-after": String(config.RETRY_AFTER_SECONDS) };

  /** PostgreSQL down is a 503 the client can retry, not a 500. */
  async function fromDatabase<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      if (isUnavailable(error)) {
        throw new ProblemError(
          503,
          "database-unavailable",
          "PostgreSQL is not reachable",
          undefined,
          retryAfter,
        );
      }
      throw error;
    }
  }

  function range(query: { from?: string; to?: string }) {
    const from = query.from ? new Date(query.from) : undefined;
    const to = query.to ? new Date(query.to) : undefined;
    if (from && to && from >= to) throw invalid("from", "must be before to");
    return { from, to };
  }

  for (const kind of kinds) {
    const routes = readRoutes(kind);
    const sourceOf = (query: Record<string, unknown>) => {
      const value = query[kind.sourceField];
      return typeof value === "string" ? value : undefined;
    };

    app.openapi(routes.list, async (c) => {
      const query = c.req.valid("query");
      const cursor = query.cursor !== undefined ? decodeCursor(query.cursor) : undefined;
      if (query.cursor !== undefined && !cursor) throw invalid("cursor", "not a cursor this API gave out");
      const page = await fromDatabase(() =>
        reader.list(kind, { ...range(query), sourceId: sourceOf(query), cursor, limit: query.limit }),
      );
      if (wantsCsv(c)) return csvResponse(recordsCsv(kind, page.items));
      return c.json(page, 200);
    });

    app.openapi(routes.aggregates, async (c) => {
      const query = c.req.valid("query");
      const stepMs = buckets[query.bucket];
      const requested = range(query);
      const to = Math.ceil((requested.to ?? new Date()).getTime() / stepMs) * stepMs;
      const defaultSpan = query.bucket === "1d" ? 30 * 86_400_000 : 86_400_000;
      const from = Math.floor((requested.from?.getTime() ?? to - defaultSpan) / stepMs) * stepMs;
      const count = (to - from) / stepMs;
      if (count > config.AGGREGATE_MAX_BUCKETS) {
        throw invalid(
          "from",
          `the range holds ${count} buckets of ${query.bucket}, more than the ${config.AGGREGATE_MAX_BUCKETS} ` +
            "one answer may hold: narrow from/to or choose a wider bucket",
        );
      }
      const bySource = query.groupBy === "source";
      const metrics = query.metrics?.split(",") ?? kind.metrics;
      const csv = wantsCsv(c);
      const render = (rows: BucketRow[]) => {
        const items = shapeBuckets(kind, rows, metrics);
        if (csv) return bucketsCsv(kind, metrics, items, bySource);
        const answer: z.infer<typeof routes.schemas.aggregates> = {
          bucket: query.bucket,
          from: new Date(from).toISOString(),
          to: new Date(to).toISOString(),
          items,
        };
        return JSON.stringify(answer);
      };
      const body = await fromDatabase(() =>
        reader.aggregate(
          kind,
          {
            bucket: query.bucket,
            from: new Date(from),
            to: new Date(to),
            sourceId: sourceOf(query),
            bySource,
            includeSuspect: query.includeSuspect === "true",
            metrics,
          },
          render,
          csv ? "csv" : "json",
        ),
      );
      return new Response(body, {
        status: 200,
        headers: { "content-type": csv ? "text/csv; charset=utf-8" : "application/json" },
      });
    });

    app.openapi(routes.latest, async (c) => {
      const items = await fromDatabase(() => reader.latest(kind, sourceOf(c.req.valid("query"))));
      return c.json({ items }, 200);
    });
  }
}
