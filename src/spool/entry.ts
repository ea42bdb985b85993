import type { OutgoingRecord } from "../kafka/publisher";

/** A spool row as SQLite hands it back: anything may be in any column once the file is damaged. */
export interface SpoolRow {
  seq: number;
  topic: unknown;
  key: unknown;
  value: unknown;
  headers: unknown;
  kind: unknown;
  transport: unknown;
  reason: unknown;
  bytes: unknown;
  checksum: unknown;
}

/** The columns a record is stored as, in the order of the insert statement. */
export type StoredColumns = [
  topic: string,
  key: string | null,
  value: string,
  headers: string | null,
  kind: string | null,
  transport: string | null,
  reason: string | null,
  bytes: number,
  checksum: number,
];

/** What a damaged row still tells: enough for its dead letter. */
export interface CorruptEntry {
  seq: number;
  problem: string;
  raw: string;
  key: string | null;
  kind: string | null;
  transport: string | null;
}

export type DecodedEntry = { seq: number; record: OutgoingRecord } | { seq: number; corrupt: CorruptEntry };

const text = (value: unknown) => (typeof value === "string" ? value : null);

/** SQLite checks nothing of a page's content, so a bit flipped on disk would reach Kafka unnoticed without this. */
function checksumOf(fields: readonly (string | null)[]): number {
  return Bun.hash.crc32(fields.map((field) => field ?? "\u0001").join("\u0000"));
}

/** Bytes a record counts for against SPOOL_MAX_BYTES. */
export function sizeOf(record: OutgoingRecord, headers: string | null): number {
  return (
    Buffer.byteLength(record.value) +
    Buffer.byteLength(record.topic) +
    (record.key === null ? 0 : Buffer.byteLength(record.key)) +
    (headers === null ? 0 : Buffer.byteLength(headers))
  );
}

export function encodeEntry(record: OutgoingRecord): StoredColumns {
  const headers = record.headers ? JSON.stringify(record.headers) : null;
  const counts = record.counts;
  const fields = [
    record.topic,
    record.key,
    record.value,
    headers,
    counts?.kind ?? null,
    counts?.transport ?? null,
    counts?.reason ?? null,
  ] as const;
  return [...fields, sizeOf(record, headers), checksumOf(fields)];
}

function parseHeaders(headers: string | null): Record<string, string> | undefined {
  if (headers === null) return undefined;
  const parsed: unknown = JSON.parse(headers);
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
    throw new Error("headers are not an object");
  for (const value of Object.values(parsed)) {
    if (typeof value !== "string") throw new Error("a header value is not a string");
  }
  return parsed as Record<string, string>;
}

/** The record a row holds, or why it cannot be trusted. */
export function decodeEntry(row: SpoolRow): DecodedEntry {
  const [topic, key, value, headers, kind, transport, reason] = [
    text(row.topic),
    text(row.key),
    text(row.value),
    text(row.headers),
    text(row.kind),
    text(row.transport),
    text(row.reason),
  ];
  const corrupt = (problem: string): DecodedEntry => ({
    seq: row.seq,
    corrupt: { seq: row.seq, problem, raw: value ?? String(row.value), key, kind, transport },
  });
  if (topic === null || topic === "") return corrupt("spool entry without a topic");
  if (value === null) return corrupt("spool entry without a value");
  if (row.checksum !== checksumOf([topic, key, value, headers, kind, transport, reason]))
    return corrupt("spool entry fails its checksum: the file was damaged or changed on disk");
  let parsedHeaders: Record<string, string> | undefined;
  try {
    parsedHeaders = parseHeaders(headers);
  } catch (error) {
    return corrupt(`spool entry with unreadable headers: ${(error as Error).message}`);
  }
  const record: OutgoingRecord = { topic, key, value };
  if (parsedHeaders) record.headers = parsedHeaders;
  if (kind !== null && transport !== null)
    record.counts = reason === null ? { kind, transport } : { kind, transport, reason };
  return { seq: row.seq, record };
}
