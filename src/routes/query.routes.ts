import { createRoute, z } from "@hono/zod-openapi";
import type { Kind } from "../kinds";
import { problemResponses } from "../problem";
import { buckets } from "../query/buckets";
import { recordSchema } from "../record";
import { security } from "./auth";

const isoTime = (description: string) =>
  z.iso.datetime({ offset: true }).optional().openapi({ description, example: "2026-11-22T00:00:00Z" });

export const MAX_SOURCES = 100;

const MetricStatsSchema = z
  .object({
    count: z.number().int(),
    sum: z.number().nullable(),
    min: z.number().nullable(),
    max: z.number().nullable(),
    avg: z.number().nullable(),
  })
  .openapi("MetricStats");

const csvContent = {
  "text/csv": {
    schema: z.string().openapi({
      description:
        "The same rows as CSV (`Accept: text/csv`); text cells that a spreadsheet would run as a formula start with `'`.",
    }),
  },
};

/** The query parameters and answers of a kind's read endpoints. */
function schemasOf(kind: Kind) {
  const sources = {
    [kind.sourceField]: z
      .string()
      .max(MAX_SOURCES * 129)
      .regex(/^[A-Za-z0-9._~-]{1,128}(,[A-Za-z0-9._~-]{1,128})*$/, "source ids separated by commas")
      .optional()
      .openapi({
        description: `Only this ${kind.sourceField}, or these (comma-separated, at most ${MAX_SOURCES}).`,
      }),
  };
  const range = { from: isoTime("Inclusive start."), to: isoTime("Exclusive end.") };
  const bom = {
    bom: z.enum(["true", "false"]).default("false").openapi({
      description: "With `Accept: text/csv`: start the CSV with a UTF-8 byte order mark, for Excel.",
    }),
  };
  const item = recordSchema
    .extend({
      kind: z.literal(kind.name),
      data: z.object(kind.fields).partial().openapi(`${kind.title}Data`),
    })
    .openapi(`${kind.title}Item`);
  const metricNames = kind.metrics.map((metric) => metric.name);
  const metricList = metricNames.join("|");
  const derived = Object.fromEntries(
    Object.entries(kind.derived).map(([name, { description }]) => [
      name,
      z.number().nullable().openapi({ description }),
    ]),
  );
  const bucketItem = z
    .object({
      bucketStart: z.string(),
      sourceId: z.string().optional().openapi({ description: "With groupBy=source." }),
      count: z.number().int(),
      metrics: z
        .record(z.string(), MetricStatsSchema)
        .openapi({ description: `Of ${metricNames.join(", ")}.` }),
      ...derived,
    })
    .openapi(`${kind.title}Bucket`);
  return {
    listQuery: z.strictObject({
      ...sources,
      ...range,
      limit: z.coerce.number().int().min(1).max(1000).default(100),
      cursor: z.string().max(512).optional().openapi({ description: "`nextCursor` of the previous page." }),
      ...bom,
    }),
    aggregateQuery: z.strictObject({
      ...sources,
      ...range,
      bucket: z.enum(Object.keys(buckets) as [keyof typeof buckets]).default("1h"),
      metrics: z
        .string()
        .regex(new RegExp(`^(${metricList})(,(${metricList}))*$`), `a list of ${metricNames.join(", ")}`)
        .optional()
        .openapi({ description: `Comma-separated; default all: ${metricNames.join(", ")}.` }),
      groupBy: z.enum(["none", "source"]).default("none"),
      includeSuspect: z.enum(["true", "false"]).default("false").openapi({
        description: "Include records flagged as implausible (counter spikes, stuck sensors).",
      }),
      ...bom,
    }),
    latestQuery: z.strictObject(sources),
    page: z.object({ items: z.array(item), nextCursor: z.string().nullable() }).openapi(`${kind.title}Page`),
    latest: z.object({ items: z.array(item) }).openapi(`${kind.title}Latest`),
    aggregates: z
      .object({ bucket: z.string(), from: z.string(), to: z.string(), items: z.array(bucketItem) })
      .openapi(`${kind.title}Aggregates`),
  };
}

/** A kind's read endpoints: raw records, time buckets, the newest record per source. */
export function queryRoutes(kind: Kind) {
  const schemas = schemasOf(kind);
  const errors = problemResponses(400, 401, 403, 406, 429, 503);
  const base = `/v1/${kind.name}`;
  return {
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

export type QueryRoutes = ReturnType<typeof queryRoutes>;
