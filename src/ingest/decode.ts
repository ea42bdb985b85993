import { CsvError, parseCsv } from "../csv";
import type { Kind } from "../kinds";
import { fieldType } from "../kinds/define";

/** One record as it came in: its parsed value, or why it could not be parsed. */
export type DecodedItem = { value: unknown; raw?: string } | { error: string; raw: string };

export const mediaTypes = {
  json: "application/json",
  ndjson: "application/x-ndjson",
  csv: "text/csv",
} as const;

export type MediaType = (typeof mediaTypes)[keyof typeof mediaTypes];

export class MalformedBody extends Error {}

export type RefusalReason =
  | "invalid-record"
  | "malformed-body"
  | "unsupported-media-type"
  | "unsupported-encoding"
  | "body-too-large"
  | "batch-too-large"
  | "empty-body"
  | "unknown-kind";

/** A whole body or message refused before it could be split into records; `raw` is what goes to the dead letter. */
export class Refused extends Error {
  constructor(
    readonly status: 400 | 413 | 415,
    readonly reason: RefusalReason,
    message: string,
    readonly raw = "",
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** Every check of a body as a whole, in the order a client can fix them, then the split into records. */
export function decodePayload(
  bytes: Uint8Array,
  contentType: string | undefined,
  kind: Kind,
  limits: { maxBodyBytes: number; maxBatchItems: number },
): DecodedItem[] {
  if (bytes.length > limits.maxBodyBytes) {
    throw new Refused(
      413,
      "body-too-large",
      `body of ${bytes.length} bytes exceeds the limit of ${limits.maxBodyBytes} bytes`,
    );
  }
  let text: string;
  try {
    text = strictUtf8.decode(bytes);
  } catch {
    throw new Refused(
      400,
      "malformed-body",
      "body is not valid UTF-8",
      Buffer.from(bytes).toString("latin1"),
    );
  }
  const mediaType = mediaTypeOf(contentType);
  if (!mediaType) {
    const accepted = Object.values(mediaTypes).join(", ");
    const detail = contentType
      ? `content type '${contentType}' is not one of ${accepted}`
      : `a Content-Type is required: ${accepted}`;
    throw new Refused(415, "unsupported-media-type", detail, text);
  }
  let items: DecodedItem[];
  try {
    items = decodeBody(text, mediaType, kind);
  } catch (error) {
    if (error instanceof MalformedBody) throw new Refused(400, "malformed-body", error.message, text);
    throw error;
  }
  if (items.length === 0) throw new Refused(400, "empty-body", "the body holds no records", text);
  if (items.length > limits.maxBatchItems) {
    const detail = `${items.length} records exceed the batch limit of ${limits.maxBatchItems}`;
    throw new Refused(413, "batch-too-large", detail, text);
  }
  return items;
}

export function mediaTypeOf(contentType: string | undefined): MediaType | undefined {
  const essence = contentType?.split(";")[0]?.trim().toLowerCase();
  if (essence === "application/json" || essence?.match(/^application\/[a-z0-9.+-]*\+json$/))
    return mediaTypes.json;
  if (essence === "application/x-ndjson" || essence === "application/jsonl") return mediaTypes.ndjson;
  if (essence === "text/csv") return mediaTypes.csv;
  return undefined;
}

/** Splits a body into records. Throws MalformedBody when the body as a whole cannot be read. */
export function decodeBody(text: string, mediaType: MediaType, kind: Kind): DecodedItem[] {
  switch (mediaType) {
    case mediaTypes.json:
      try {
        return decodeJson(text);
      } catch (error) {
        if (error instanceof MalformedBody) throw new MalformedBody(`body ${error.message}`);
        throw error;
      }
    case mediaTypes.ndjson:
      return decodeNdjson(text);
    case mediaTypes.csv:
      return decodeCsv(text, kind);
  }
}

const MAX_DEPTH = 16;

/** How deeply arrays and objects nest, counted before parsing, so that a hostile body costs one scan. */
function nestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text.charCodeAt(i);
    if (inString) {
      if (char === 92)
        i++; // backslash: skip the escaped character
      else if (char === 34) inString = false;
    } else if (char === 34) inString = true;
    else if (char === 123 || char === 91) deepest = Math.max(deepest, ++depth);
    else if (char === 125 || char === 93) depth--;
  }
  return deepest;
}

function parseJson(text: string): unknown {
  if (nestingDepth(text) > MAX_DEPTH) throw new MalformedBody(`nests deeper than ${MAX_DEPTH} levels`);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new MalformedBody(`is not valid JSON: ${(error as Error).message}`);
  }
}

function decodeJson(text: string): DecodedItem[] {
  if (text.trim() === "") return [];
  const parsed = parseJson(text);
  if (Array.isArray(parsed)) return parsed.map((value) => ({ value }));
  if (typeof parsed === "object" && parsed !== null) return [{ value: parsed, raw: text }];
  throw new MalformedBody("must be a JSON object or an array of objects");
}

function decodeNdjson(text: string): DecodedItem[] {
  const items: DecodedItem[] = [];
  for (const line of text.split("\n")) {
    const raw = line.trim();
    if (raw === "") continue;
    try {
      items.push({ value: parseJson(raw), raw });
    } catch (error) {
      items.push({ error: `line ${(error as Error).message}`, raw });
    }
  }
  return items;
}

/** CSV: a header row names the fields (dotted for nested ones, e.g. location.lat); empty cells are absent. */
function decodeCsv(text: string, kind: Kind): DecodedItem[] {
  let rows: string[][];
  try {
    rows = parseCsv(text);
  } catch (error) {
    if (error instanceof CsvError) throw new MalformedBody(error.message);
    throw error;
  }
  const header = rows.shift();
  if (!header || header.every((cell) => cell.trim() === ""))
    throw new MalformedBody("CSV body has no header row");
  const columns = header.map((name) => {
    const path = name.trim().split(".");
    return { path, type: fieldType(kind.fields, path) };
  });
  return rows
    .filter((row) => row.some((cell) => cell !== ""))
    .map((row) => {
      const raw = row.join(",");
      if (row.length !== columns.length) {
        return { error: `row has ${row.length} cells, the header names ${columns.length}`, raw };
      }
      const record: Record<string, unknown> = {};
      row.forEach((cell, i) => {
        const column = columns[i];
        if (cell === "" || !column) return;
        setPath(record, column.path, cellValue(cell, column.type));
      });
      return { value: record, raw };
    });
}

/** A cell as the field's type when it reads as one; otherwise as text, which validation then names. */
function cellValue(cell: string, type: ReturnType<typeof fieldType>): unknown {
  if (type === "number" && cell.trim() !== "" && !Number.isNaN(Number(cell))) return Number(cell);
  if (type === "boolean" && (cell === "true" || cell === "false")) return cell === "true";
  return cell;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown) {
  let node = target;
  for (const key of path.slice(0, -1)) {
    const next = Object.hasOwn(node, key) ? node[key] : undefined;
    if (typeof next !== "object" || next === null) {
      const created: Record<string, unknown> = {};
      Object.defineProperty(node, key, {
        value: created,
        enumerable: true,
        writable: true,
        configurable: true,
      });
      node = created;
    } else {
      node = next as Record<string, unknown>;
    }
  }
  const last = path.at(-1) ?? "";
  Object.defineProperty(node, last, { value, enumerable: true, writable: true, configurable: true });
}
