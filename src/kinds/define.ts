import { z } from "@hono/zod-openapi";

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

export const timestampSchema = z
  .union([
    z.iso.datetime({ offset: true }),
    z.number().int().min(0).max(8.64e15),
    z.string().regex(/^\d{1,16}$/, "epoch milliseconds as digits"),
  ])
  .openapi({
    description: "Measurement time: ISO 8601 with an offset, or epoch milliseconds.",
    example: "2026-11-22T08:30:00Z",
  });

export type MetricShape = Record<string, z.ZodType>;

interface KindSpec<Name extends string, Source extends string, Shape extends z.ZodRawShape> {
  /** URL segment, Kafka topic suffix and MQTT topic segment. */
  name: Name;
  /** Collection name under /v1/<name>/. */
  resource: string;
  /** OpenAPI component name of one record. */
  title: string;
  description: string;
  sourceField: Source;
  /** The payload's own fields, besides id, ts and the source field. */
  fields: Shape;
  /** Numeric fields that roll up into time buckets. */
  metrics: readonly (keyof Shape & string)[];
  /** Cross-field rules, e.g. "at least one metric". */
  check?: (data: z.infer<z.ZodObject<Shape>>, ctx: z.RefinementCtx) => void;
  /**
   * Values that are physically possible but not plausible (a counter spike): records holding one are stored
   * with a quality flag and left out of aggregates unless asked for.
   */
  plausible?: Partial<Record<keyof Shape & string, readonly [number, number]>>;
  /** Metrics whose value repeated this many times in a row means a stuck sensor. */
  stuck?: { metrics: readonly (keyof Shape & string)[]; after: number };
  /** Values derived from a bucket's sums, served beside the metrics (e.g. a store's conversion rate). */
  derived?: Record<string, (sums: Partial<Record<keyof Shape & string, number>>) => number | null>;
  /** Another accepted input format, turned into the record's own shape before validation. */
  alternate?: { title: string; detect: (input: Record<string, unknown>) => boolean; schema: z.ZodType };
}

export type JsonObject = Record<string, unknown>;

/** A kind as the rest of Sluice sees it. */
export interface Kind {
  name: string;
  resource: string;
  title: string;
  description: string;
  sourceField: string;
  fields: z.ZodRawShape;
  metrics: readonly string[];
  /** Validates one record: strict (unknown fields are errors), bounds checked, defaults applied. */
  schema: z.ZodType<JsonObject>;
  plausible?: Partial<Record<string, readonly [number, number]>>;
  stuck?: { metrics: readonly string[]; after: number };
  derived?: Record<string, (sums: Partial<Record<string, number>>) => number | null>;
  alternate?: { title: string; detect: (input: JsonObject) => boolean; schema: z.ZodType };
}

/** Everything the rest of Sluice knows about a kind comes from this. */
export function defineKind<Name extends string, Source extends string, Shape extends z.ZodRawShape>(
  spec: KindSpec<Name, Source, Shape>,
): Kind & { name: Name; sourceField: Source; metrics: readonly (keyof Shape & string)[] } {
  const base = z.strictObject({
    id: idempotencyKeySchema.optional(),
    ts: timestampSchema,
    [spec.sourceField]: sourceIdSchema,
    ...spec.fields,
  } as { id: z.ZodOptional<z.ZodString>; ts: typeof timestampSchema } & Record<
    Source,
    typeof sourceIdSchema
  > &
    Shape);
  const check = spec.check;
  const schema = (
    check ? base.superRefine((data, ctx) => check(data as z.infer<z.ZodObject<Shape>>, ctx)) : base
  ).openapi(spec.title, { description: spec.description });
  return { ...spec, schema: schema as unknown as z.ZodType<JsonObject> };
}

// biome-ignore lint/suspicious/noExplicitAny: reads zod's internal definition tree
type ZodDef = { type: string; innerType?: { _zod: { def: ZodDef } }; shape?: Record<string, any> };

/** A schema's definition with optional, default and nullable wrappers removed. */
function unwrap(schema: unknown): ZodDef | undefined {
  let def = (schema as { _zod?: { def: ZodDef } } | undefined)?._zod?.def;
  while (def?.innerType) def = def.innerType._zod.def;
  return def;
}

/** Whether the field at a dotted path is a number, so that its CSV cells are read as numbers. */
export function isNumberAt(shape: z.ZodRawShape, path: string[]): boolean {
  const [first = "", ...rest] = path;
  let def = Object.hasOwn(shape, first) ? unwrap(shape[first]) : undefined;
  for (const key of rest) def = def?.type === "object" && def.shape ? unwrap(def.shape[key]) : undefined;
  return def?.type === "number";
}

/** Every leaf field as a path (`location.lat`), for flat formats such as CSV. */
export function fieldPaths(shape: z.ZodRawShape, prefix: string[] = []): string[][] {
  return Object.entries(shape).flatMap(([key, schema]) => {
    const def = unwrap(schema);
    return def?.type === "object" && def.shape ? fieldPaths(def.shape, [...prefix, key]) : [[...prefix, key]];
  });
}
