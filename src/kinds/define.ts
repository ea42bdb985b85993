import { z } from "@hono/zod-openapi";
import type { JsonObject } from "../record";
import { describeField, fieldAt } from "./fields";

export { fieldPaths, fieldType } from "./fields";

/**
 * Free text: bounded, and without control characters or lone surrogates, which JSON carries but PostgreSQL
 * cannot store (a record it refuses would stop the sink).
 */
export const textSchema = (max: number) =>
  z
    .string()
    .min(1)
    .max(max)
    .refine((text) => !/\p{Cc}/u.test(text) && text.isWellFormed(), "control characters or broken Unicode");

/** A source id travels in URLs, MQTT topics and Kafka keys, so it keeps to characters safe in all three. */
export const sourceIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._~-]+$/, "only letters, digits and . _ ~ - are allowed");

export const idempotencyKeySchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[\x21-\x7e]+$/, "printable ASCII without spaces")
  .openapi({
    description: "The client's idempotency key; a record posted twice with one id is stored once.",
  });

const ACCEPTED_TIMES =
  "ts takes ISO 8601 with an offset, such as 2026-12-01T18:00:00Z or 2026-12-01T19:00:00+01:00, or epoch milliseconds";
const RFC_3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/;

/** Why a time is not one Sluice takes, in words that say what it does take; undefined when it is fine. */
export function timestampProblem(value: unknown): string | undefined {
  const milliseconds =
    typeof value === "number"
      ? value
      : typeof value === "string" && /^\d+$/.test(value)
        ? Number(value)
        : undefined;
  if (milliseconds !== undefined) {
    if (!Number.isSafeInteger(milliseconds) || milliseconds > 8.64e15) return `not a time: ${ACCEPTED_TIMES}`;
    // Ten digits is now in epoch seconds; in milliseconds it would be January 1970.
    if (milliseconds < 1e11)
      return `ts takes epoch milliseconds; ${milliseconds} looks like seconds (${milliseconds}000)`;
    return undefined;
  }
  if (typeof value !== "string") return `not a time: ${ACCEPTED_TIMES}`;
  const upper = value.toUpperCase();
  if (RFC_3339.test(upper) && Number.isFinite(Date.parse(upper))) return undefined;
  if (/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$/.test(upper)) {
    return `a time without an offset is ambiguous, add Z or ±hh:mm: ${ACCEPTED_TIMES}`;
  }
  return `not a time: ${ACCEPTED_TIMES}`;
}

export const timestampSchema = z
  .union([z.string(), z.number()])
  .superRefine((value, ctx) => {
    const problem = timestampProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .openapi({
    description:
      "Measurement time: ISO 8601 / RFC 3339 with an offset (`T` and `Z` in either case), or epoch milliseconds.",
    example: "2026-11-22T08:30:00Z",
  });

/** The moment the documentation's examples describe. */
export const EXAMPLE_TIME = new Date("2026-11-22T08:30:00Z");

interface MetricSpec {
  /** Where the number is in the record, dotted for nested fields; the metric's name when absent. */
  path?: string;
  /** The statistic that sums a bucket up: totals for counts, averages (the default) for measurements. */
  summary?: "sum" | "avg";
}

interface DerivedSpec<Metric extends string> {
  description: string;
  unit: string;
  /** From the sums of a bucket's metrics; null when it cannot be told (no visitors, no rate). */
  compute: (sums: Record<Metric, number>) => number | null;
}

interface KindSpec<
  Name extends string,
  Source extends string,
  Shape extends z.ZodRawShape,
  Metric extends string,
> {
  /** URL segment, Kafka topic suffix and MQTT topic segment. */
  name: Name;
  /** Collection name under /v1/<name>/. */
  resource: string;
  /** OpenAPI component name of one record. */
  title: string;
  description: string;
  sourceField: Source;
  /** The payload's own fields, besides id, ts and the source field. Metric fields describe their unit. */
  fields: Shape;
  /** Numeric fields that roll up into time buckets (count, sum, min, max). */
  metrics: Record<Metric, MetricSpec>;
  /** A cross-field rule ("at least one metric"): said in words in the kind's description, then checked. */
  rule?: { description: string; check: (data: z.infer<z.ZodObject<Shape>>, ctx: z.RefinementCtx) => void };
  /**
   * Values that are physically possible but not plausible (a counter spike): records holding one are stored
   * with a quality flag and left out of aggregates unless asked for.
   */
  plausible?: Partial<Record<NoInfer<Metric>, readonly [number, number]>>;
  /** Metrics whose value repeated this many times in a row means a stuck sensor. */
  stuck?: { metrics: readonly NoInfer<Metric>[]; after: number };
  /** Values derived from a bucket's sums, served beside the metrics (e.g. a store's conversion rate). */
  derived?: Record<string, DerivedSpec<NoInfer<Metric>>>;
  /** What sources are grouped by in charts (their city, their airline): a field of the record. */
  group?: { path: string; label: string };
  /** Another accepted input format, turned into the record's own shape before validation. */
  alternate?: {
    title: string;
    description: string;
    detect: (input: JsonObject) => boolean;
    schema: z.ZodType;
    /** One input in that format, at a moment; it must turn into a valid record. */
    example: (at: Date) => JsonObject;
  };
  /** A valid record of the kind at a moment: the documentation's example and the conformance test's input. */
  example: (at: Date) => JsonObject;
}

export interface Metric {
  name: string;
  path: readonly string[];
  unit: string;
  summary: "sum" | "avg";
}

/** A kind as the rest of Sluice sees it. */
export interface Kind {
  name: string;
  resource: string;
  title: string;
  description: string;
  sourceField: string;
  fields: z.ZodRawShape;
  metrics: readonly Metric[];
  /** Validates one record: strict (unknown fields are errors), bounds checked, defaults applied. */
  schema: z.ZodType<JsonObject>;
  plausible: Partial<Record<string, readonly [number, number]>>;
  stuck?: { metrics: readonly string[]; after: number };
  derived: Record<string, DerivedSpec<string>>;
  group?: { path: readonly string[]; label: string };
  alternate?: NonNullable<KindSpec<string, string, z.ZodRawShape, string>["alternate"]>;
  example: (at: Date) => JsonObject;
}

/** Everything the rest of Sluice knows about a kind comes from this. */
export function defineKind<
  const Name extends string,
  const Source extends string,
  Shape extends z.ZodRawShape,
  Metric extends string,
>(spec: KindSpec<Name, Source, Shape, Metric>): Kind & { name: Name; sourceField: Source } {
  const base = z.strictObject({
    id: idempotencyKeySchema.optional(),
    ts: timestampSchema,
    [spec.sourceField]: sourceIdSchema,
    ...spec.fields,
  });
  const rule = spec.rule;
  const description = rule ? `${spec.description} ${rule.description}` : spec.description;
  const schema = (
    rule ? base.superRefine((data, ctx) => rule.check(data as z.infer<z.ZodObject<Shape>>, ctx)) : base
  ).openapi(spec.title, { description, example: spec.example(EXAMPLE_TIME) });
  const metrics = Object.entries<MetricSpec>(spec.metrics).map(([name, metric]) => {
    const path = (metric.path ?? name).split(".");
    // Names become SQL column names and paths SQL literals: code, never input, but kept to plain words.
    if (![name, ...path].every((word) => /^[A-Za-z][A-Za-z0-9]*$/.test(word))) {
      throw new Error(`kind ${spec.name}: metric ${name} and its path must be plain words`);
    }
    const field = describeField(spec.fields, path);
    if (field.type !== "number" || !field.description) {
      throw new Error(
        `kind ${spec.name}: metric ${name} at ${path.join(".")} must be a number field that describes its unit`,
      );
    }
    return { name, path, unit: field.description, summary: metric.summary ?? "avg" };
  });
  const group = spec.group && { path: spec.group.path.split("."), label: spec.group.label };
  if (group && !fieldAt(spec.fields, group.path)) {
    throw new Error(`kind ${spec.name}: group field ${spec.group?.path} is not a field of the kind`);
  }
  return {
    ...spec,
    description,
    metrics,
    group,
    plausible: spec.plausible ?? {},
    derived: (spec.derived ?? {}) as Record<string, DerivedSpec<string>>,
    schema: schema as unknown as z.ZodType<JsonObject>,
  };
}
