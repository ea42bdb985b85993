import { type CompressionCodec, parquetMetadata, parquetReadObjects } from "hyparquet";
import { ByteWriter, ParquetWriter } from "hyparquet-writer";
import type { DeadLetter } from "../ingest/pipeline";
import type { Kind } from "../kinds";
import { type Envelope, envelopeSchema } from "../record";
import {
  type ArchiveColumn,
  column,
  envelopeColumnNames,
  kindColumns,
  PAYLOAD_COLUMN,
  schemaElement,
} from "./columns";

/**
 * The archive's Parquet files: one kind's records, or dead letters, per file. Pure: bytes in, bytes out.
 * The typed columns are for whoever queries the files (Spark, DuckDB, Athena); reading back rebuilds each
 * record from the envelope columns and the payload's JSON, so files written before a kind gained a field
 * read the same way as new ones.
 */

export type Compression = "zstd" | "snappy";

export interface ParquetOptions {
  /** zstd (the default) compresses better than snappy at a similar speed. */
  compression?: Compression;
}

const CONTENT_KEY = "sluice.content";
const KIND_KEY = "sluice.kind";

const codecs: Record<Compression, CompressionCodec> = { zstd: "ZSTD", snappy: "SNAPPY" };
const compressors = { ZSTD: (bytes: Uint8Array) => Bun.zstdCompressSync(bytes) };
const decompressors = { ZSTD: (bytes: Uint8Array) => Bun.zstdDecompressSync(bytes) };

type Content = "records" | "dead-letters";

/** A Parquet file written a row group at a time; `finish` returns its bytes. */
export interface ParquetStream<Row> {
  /** Appends the rows: one row group, or hyparquet-writer's default groups (1,000 rows, then 100,000) if asked. */
  write(rows: readonly Row[], rowGroups?: "default"): void;
  finish(): Uint8Array;
}

function parquetStream<Row>(
  columns: ArchiveColumn<Row>[],
  metadata: Record<string, string>,
  options: ParquetOptions,
): ParquetStream<Row> {
  const writer = new ByteWriter();
  const file = new ParquetWriter({
    writer,
    schema: [{ name: "root", num_children: columns.length }, ...columns.map(schemaElement)],
    codec: codecs[options.compression ?? "zstd"],
    compressors,
    kvMetadata: Object.entries(metadata).map(([key, value]) => ({ key, value })),
    createdBy: "sluice",
  });
  return {
    write(rows, rowGroups) {
      if (rows.length === 0) return;
      file.write({
        columnData: columns.map((archived) => ({
          name: archived.name,
          data: rows.map(archived.value),
          // A JSON column's bounds would be whole payloads, never truncated: of no use for skipping pages.
          statistics: archived.type !== "json",
        })),
        ...(rowGroups === "default" ? {} : { rowGroupSize: rows.length }),
      });
    },
    finish() {
      file.finish();
      return new Uint8Array(writer.getBuffer());
    },
  };
}

/** A Parquet file of one kind's records, written as they come. */
export function kindParquetStream(kind: Kind, options: ParquetOptions = {}): ParquetStream<Envelope> {
  const content: Content = "records";
  const stream = parquetStream(kindColumns(kind), { [CONTENT_KEY]: content, [KIND_KEY]: kind.name }, options);
  return {
    write(records, rowGroups) {
      const foreign = records.find((record) => record.kind !== kind.name);
      if (foreign)
        throw new Error(`a ${kind.name} file cannot hold a ${foreign.kind} record (${foreign.id})`);
      stream.write(records, rowGroups);
    },
    finish: stream.finish,
  };
}

/** One kind's records as one Parquet file. */
export function kindParquet(
  kind: Kind,
  records: readonly Envelope[],
  options: ParquetOptions = {},
): Uint8Array {
  const stream = kindParquetStream(kind, options);
  stream.write(records, "default");
  return stream.finish();
}

const deadLetterColumns: ArchiveColumn<DeadLetter>[] = [
  column("id", "string", false, (letter: DeadLetter) => letter.id),
  column("kind", "string", true, (letter: DeadLetter) => letter.kind),
  column("via", "string", false, (letter: DeadLetter) => letter.via),
  column("receivedAt", "timestamp", false, (letter: DeadLetter) => letter.receivedAt),
  column("reason", "string", false, (letter: DeadLetter) => letter.reason),
  column("errors", "json", false, (letter: DeadLetter) => letter.errors),
  column("raw", "string", false, (letter: DeadLetter) => letter.raw),
  column("origin", "string", true, (letter: DeadLetter) => letter.origin),
];

/** A Parquet file of dead letters, written as they come. */
export function deadLetterParquetStream(options: ParquetOptions = {}): ParquetStream<DeadLetter> {
  const content: Content = "dead-letters";
  return parquetStream(deadLetterColumns, { [CONTENT_KEY]: content }, options);
}

/** Dead letters as one Parquet file. */
export function deadLetterParquet(letters: readonly DeadLetter[], options: ParquetOptions = {}): Uint8Array {
  const stream = deadLetterParquetStream(options);
  stream.write(letters, "default");
  return stream.finish();
}

/** What a row of a file holds: its columns by name, absent values as null. */
type Stored<Value> = {
  [Name in keyof Value]-?: undefined extends Value[Name]
    ? Exclude<Value[Name], undefined> | null
    : Value[Name];
};

/** The rows of a file (the named columns only), with timestamps as ISO strings in UTC. */
async function readParquet<Row>(
  bytes: Uint8Array,
  expected: Content,
  columns: readonly string[],
): Promise<Row[]> {
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  const metadata = parquetMetadata(file);
  const keys = new Map(metadata.key_value_metadata?.map(({ key, value }) => [key, value]));
  const content = keys.get(CONTENT_KEY);
  if (content !== expected)
    throw new Error(`not a file of ${expected}: it holds ${content ?? "unknown content"}`);
  const present = new Set(metadata.schema.map((element) => element.name));
  const missing = columns.filter((name) => !present.has(name));
  if (missing.length > 0) throw new Error(`the file has no ${missing.join(", ")} column`);
  const rows = await parquetReadObjects({
    file,
    metadata,
    columns: [...columns],
    compressors: decompressors,
    parsers: { timestampFromMicroseconds: (micros) => new Date(Number(micros / 1000n)).toISOString() },
  });
  return rows as Row[];
}

/**
 * The records of a file written by kindParquet, with any version of its kind's columns, as envelopes again:
 * timestamps as ISO strings in UTC with milliseconds, the payload rebuilt from its JSON.
 */
export async function readKindParquet(bytes: Uint8Array): Promise<Envelope[]> {
  const columns = [...envelopeColumnNames, PAYLOAD_COLUMN];
  const rows = await readParquet<Stored<Omit<Envelope, "data">> & { [PAYLOAD_COLUMN]: Envelope["data"] }>(
    bytes,
    "records",
    columns,
  );
  return rows.map(({ origin, [PAYLOAD_COLUMN]: data, ...envelope }) =>
    envelopeSchema.parse(origin === null ? { ...envelope, data } : { ...envelope, origin, data }),
  );
}

/** The dead letters of a file written by deadLetterParquet. */
export async function readDeadLetterParquet(bytes: Uint8Array): Promise<DeadLetter[]> {
  const rows = await readParquet<Stored<DeadLetter>>(
    bytes,
    "dead-letters",
    deadLetterColumns.map(({ name }) => name),
  );
  return rows.map(
    ({ origin, ...letter }) => (origin === null ? letter : { ...letter, origin }) as DeadLetter,
  );
}
