import type { SchemaElement } from "hyparquet-writer";
import type { Kind } from "../kinds";
import { fieldAt, fieldPaths, valueAt } from "../kinds/fields";
import type { Envelope } from "../record";

/**
 * The Parquet columns of the archive, derived from the kind registry alone: a column per envelope field, one
 * per leaf field of the kind (dotted names for nested ones), and the whole payload as JSON, which is what a
 * file is read back from whatever columns its kind had when it was written.
 */

export type ColumnType = "string" | "timestamp" | "double" | "integer" | "boolean" | "json";

export interface ArchiveColumn<Row> {
  name: string;
  type: ColumnType;
  nullable: boolean;
  /** The cell of one row: of the column's JavaScript type (bigint for integers and timestamps), or null. */
  value: (row: Row) => unknown;
}

export const PAYLOAD_COLUMN = "record";

/** The columns that carry the envelope, in the order every file has them. */
export const envelopeColumnNames = ["id", "kind", "sourceId", "ts", "receivedAt", "via", "origin"] as const;

interface ZodNode {
  isInt?: boolean;
  _zod?: { def: { type: string; innerType?: ZodNode; in?: ZodNode } };
}

/** The type a field holds, past optional, default and nullable wrappers and into a transform's input. */
function leafColumnType(node: ZodNode | undefined): ColumnType {
  let current = node;
  while (current?._zod) {
    const def = current._zod.def;
    const next = def.innerType ?? (def.type === "pipe" ? def.in : undefined);
    if (!next) break;
    current = next;
  }
  switch (current?._zod?.def.type) {
    case "number":
      return current.isInt ? "integer" : "double";
    case "boolean":
      return "boolean";
    case "string":
    case "enum":
      return "string";
    default:
      return "json";
  }
}

/** An ISO time as microseconds since the epoch, which is what TIMESTAMP(MICROS) stores. */
export function microseconds(iso: string): bigint {
  const milliseconds = Date.parse(iso);
  if (!Number.isFinite(milliseconds)) throw new Error(`not a time: ${iso}`);
  return BigInt(milliseconds) * 1000n;
}

/** A value as a cell of a column of the type, or null when it is absent or of another type. */
function cell(type: ColumnType, value: unknown): unknown {
  if (value === undefined || value === null) return null;
  switch (type) {
    case "string":
      return typeof value === "string" ? value : null;
    case "double":
      return typeof value === "number" ? value : null;
    case "integer":
      return typeof value === "number" && Number.isSafeInteger(value) ? BigInt(value) : null;
    case "boolean":
      return typeof value === "boolean" ? value : null;
    case "timestamp":
      return typeof value === "string" ? microseconds(value) : null;
    case "json":
      return value;
  }
}

/** A column whose cells are read from a row and kept to the column's type. */
export function column<Row>(
  name: string,
  type: ColumnType,
  nullable: boolean,
  read: (row: Row) => unknown,
): ArchiveColumn<Row> {
  return { name, type, nullable, value: (row) => cell(type, read(row)) };
}

/** A kind's columns: the envelope's, every leaf field's, then the payload as JSON. */
export function kindColumns(kind: Kind): ArchiveColumn<Envelope>[] {
  const envelope = [
    column("id", "string", false, (row: Envelope) => row.id),
    column("kind", "string", false, (row: Envelope) => row.kind),
    column("sourceId", "string", false, (row: Envelope) => row.sourceId),
    column("ts", "timestamp", false, (row: Envelope) => row.ts),
    column("receivedAt", "timestamp", false, (row: Envelope) => row.receivedAt),
    column("via", "string", false, (row: Envelope) => row.via),
    column("origin", "string", true, (row: Envelope) => row.origin),
  ];
  const reserved = new Set<string>([...envelopeColumnNames, PAYLOAD_COLUMN]);
  const fields = fieldPaths(kind.fields).map((path) => {
    const name = path.join(".");
    if (reserved.has(name)) throw new Error(`kind ${kind.name}: field ${name} has an envelope column's name`);
    const type = leafColumnType(fieldAt(kind.fields, path) as ZodNode | undefined);
    return column(name, type, true, (row: Envelope) => valueAt(row.data, path));
  });
  const payload = column(PAYLOAD_COLUMN, "json", false, (row: Envelope) => row.data);
  return [...envelope, ...fields, payload];
}

/** The Parquet schema element of a column: logical types that Spark, DuckDB and Athena all read. */
export function schemaElement({ name, type, nullable }: ArchiveColumn<never>): SchemaElement {
  const repetition_type = nullable ? "OPTIONAL" : "REQUIRED";
  switch (type) {
    case "string":
      return {
        name,
        repetition_type,
        type: "BYTE_ARRAY",
        converted_type: "UTF8",
        logical_type: { type: "STRING" },
      };
    case "json":
      return {
        name,
        repetition_type,
        type: "BYTE_ARRAY",
        converted_type: "JSON",
        logical_type: { type: "JSON" },
      };
    case "timestamp":
      return {
        name,
        repetition_type,
        type: "INT64",
        converted_type: "TIMESTAMP_MICROS",
        logical_type: { type: "TIMESTAMP", isAdjustedToUTC: true, unit: "MICROS" },
      };
    case "integer":
      return { name, repetition_type, type: "INT64" };
    case "double":
      return { name, repetition_type, type: "DOUBLE" };
    case "boolean":
      return { name, repetition_type, type: "BOOLEAN" };
  }
}
