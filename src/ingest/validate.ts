import type { z } from "@hono/zod-openapi";
import type { Kind } from "../kinds";
import type { Envelope, FieldError, JsonObject, Via } from "../record";
import type { DecodedItem } from "./decode";

export interface Rejection {
  index: number;
  errors: FieldError[];
  item: DecodedItem;
}

export interface ValidationContext {
  via: Via;
  receivedAt: Date;
  /** receivedAt as ISO 8601, formatted once for the whole batch. */
  receivedAtIso: string;
  /** How far ahead of receivedAt a measurement may be, and how far behind. */
  maxFutureMs: number;
  maxAgeMs: number;
  /** Set when the transport names the source (an MQTT topic); the payload must agree with it. */
  sourceId?: string;
  /** The connector that polled the records. */
  origin?: string;
}

/** `location.lat`, `weather[0].description`; the empty string for the record itself. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((key, i) => (typeof key === "number" ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`))
    .join("");
}

/** JSON.parse reads a number beyond the float range (1e400) as Infinity, which zod reports as such. */
const tooLarge = (issue: z.core.$ZodIssue) =>
  issue.code === "invalid_type" && "received" in issue && String(issue.received).endsWith("Infinity");

export function issuesToErrors(issues: readonly z.core.$ZodIssue[]): FieldError[] {
  return issues.flatMap((issue) =>
    issue.code === "unrecognized_keys"
      ? issue.keys.map((key) => ({ path: formatPath([...issue.path, key]), message: "unknown field" }))
      : [{ path: formatPath(issue.path), message: tooLarge(issue) ? "number too large" : issue.message }],
  );
}

function parseTimestamp(ts: string | number): number {
  // RFC 3339 allows a lowercase t and z, which Date.parse does not read.
  return typeof ts === "number" || /^\d+$/.test(ts) ? Number(ts) : Date.parse(ts.toUpperCase());
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Validates one decoded record and wraps it in its envelope, or says every reason it is invalid. */
export function validateItem(
  kind: Kind,
  item: DecodedItem,
  context: ValidationContext,
): { envelope: Envelope } | { errors: FieldError[] } {
  if ("error" in item) return { errors: [{ path: "", message: item.error }] };
  if (!isObject(item.value)) return { errors: [{ path: "", message: "a record must be a JSON object" }] };
  let input = item.value;
  const { sourceField } = kind;
  if (context.sourceId !== undefined && !Object.hasOwn(input, sourceField)) {
    input = { ...input, [sourceField]: context.sourceId };
  }
  if (kind.alternate?.detect(input)) {
    const alternate = kind.alternate.schema.safeParse(input);
    if (!alternate.success) return { errors: issuesToErrors(alternate.error.issues) };
    input = alternate.data as JsonObject;
  }
  const parsed = kind.schema.safeParse(input);
  if (!parsed.success) return { errors: issuesToErrors(parsed.error.issues) };

  const {
    id,
    ts,
    [sourceField]: sourceId,
    ...data
  } = parsed.data as JsonObject & {
    id?: string;
    ts: string | number;
  };
  const errors: FieldError[] = [];
  if (context.sourceId !== undefined && sourceId !== context.sourceId) {
    errors.push({
      path: sourceField,
      message: `does not match the source id in the topic (${context.sourceId})`,
    });
  }
  const measuredAt = parseTimestamp(ts);
  const received = context.receivedAt.getTime();
  if (!Number.isFinite(measuredAt)) errors.push({ path: "ts", message: "not a valid time" });
  else if (measuredAt > received + context.maxFutureMs) {
    errors.push({ path: "ts", message: `more than ${context.maxFutureMs / 1000} s in the future` });
  } else if (measuredAt < received - context.maxAgeMs) {
    errors.push({ path: "ts", message: `older than ${context.maxAgeMs / 86_400_000} days` });
  }
  if (errors.length > 0) return { errors };
  return {
    envelope: {
      id: id ?? Bun.randomUUIDv7(),
      kind: kind.name,
      sourceId: String(sourceId),
      ts: new Date(measuredAt).toISOString(),
      receivedAt: context.receivedAtIso,
      via: context.via,
      ...(context.origin === undefined ? {} : { origin: context.origin }),
      data,
    },
  };
}

export function validateItems(kind: Kind, items: DecodedItem[], context: ValidationContext) {
  const envelopes: Envelope[] = [];
  const rejections: Rejection[] = [];
  items.forEach((item, index) => {
    const result = validateItem(kind, item, context);
    if ("envelope" in result) envelopes.push(result.envelope);
    else rejections.push({ index, errors: result.errors, item });
  });
  return { envelopes, rejections };
}
