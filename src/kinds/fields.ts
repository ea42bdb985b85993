import type { z } from "@hono/zod-openapi";
import type { JsonObject } from "../record";

/** What the kinds' field descriptions are read through: zod's own definition tree. */
interface ZodNode {
  description?: string;
  _zod?: { def: { type: string; innerType?: ZodNode; shape?: Record<string, ZodNode> } };
}

/** A field's type with optional, default and nullable wrappers removed, and a description from any of them. */
function unwrap(schema: ZodNode | undefined): {
  type?: string;
  shape?: Record<string, ZodNode>;
  description?: string;
} {
  let node = schema;
  let description: string | undefined;
  while (node) {
    description ??= node.description;
    const def = node._zod?.def;
    if (!def?.innerType) return { type: def?.type, shape: def?.shape, description };
    node = def.innerType;
  }
  return {};
}

/** The schema of the field at a path (`["location", "lat"]`), or undefined when there is none. */
export function fieldAt(shape: z.ZodRawShape, path: readonly string[]): ZodNode | undefined {
  let fields: Record<string, ZodNode> | undefined = shape as Record<string, ZodNode>;
  let field: ZodNode | undefined;
  for (const key of path) {
    field = fields && Object.hasOwn(fields, key) ? fields[key] : undefined;
    fields = unwrap(field).shape;
  }
  return field;
}

export function describeField(shape: z.ZodRawShape, path: readonly string[]) {
  const { type, description } = unwrap(fieldAt(shape, path));
  return { type, description };
}

/** Whether the field at a path holds a number or a boolean, so that text cells (CSV) can be read as such. */
export function fieldType(shape: z.ZodRawShape, path: readonly string[]): "number" | "boolean" | "other" {
  const { type } = unwrap(fieldAt(shape, path));
  return type === "number" || type === "boolean" ? type : "other";
}

/** Every leaf field as a path (`location.lat`), for flat formats such as CSV. */
export function fieldPaths(shape: z.ZodRawShape, prefix: string[] = []): string[][] {
  return Object.entries(shape as Record<string, ZodNode>).flatMap(([key, schema]) => {
    const { type, shape: nested } = unwrap(schema);
    return type === "object" && nested
      ? fieldPaths(nested as z.ZodRawShape, [...prefix, key])
      : [[...prefix, key]];
  });
}

/** An object without its undefined fields: what an alternate format leaves unknown is absent, not null. */
export function definedOnly(value: JsonObject): JsonObject {
  return Object.fromEntries(Object.entries(value).filter(([, field]) => field !== undefined));
}

/** The value at a path of a parsed record, own properties only. */
export function valueAt(data: unknown, path: readonly string[]): unknown {
  let node = data;
  for (const key of path) {
    if (typeof node !== "object" || node === null || !Object.hasOwn(node, key)) return undefined;
    node = (node as Record<string, unknown>)[key];
  }
  return node;
}
