import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { createEncoderPool, RecordBytes } from "../src/archive/encoder";
import {
  type Compression,
  deadLetterParquet,
  kindParquet,
  readDeadLetterParquet,
  readKindParquet,
} from "../src/archive/parquet";
import type { DeadLetter } from "../src/ingest/pipeline";
import { type Kind, kinds } from "../src/kinds";
import { fieldPaths, fieldType, valueAt } from "../src/kinds/fields";
import type { Envelope, JsonObject } from "../src/record";

const AT = new Date("2026-11-22T08:30:00.123Z");
const ENVELOPE_COLUMNS = ["id", "kind", "sourceId", "ts", "receivedAt", "via", "origin"];

let folder: string;
let duck: DuckDBConnection;
let instance: DuckDBInstance;

beforeAll(async () => {
  folder = mkdtempSync(join(tmpdir(), "sluice-parquet-"));
  instance = await DuckDBInstance.create(":memory:");
  duck = await instance.connect();
});

afterAll(() => {
  duck.closeSync();
  instance.closeSync();
  rmSync(folder, { recursive: true, force: true });
});

function saved(name: string, bytes: Uint8Array): string {
  const path = join(folder, `${name}.parquet`);
  writeFileSync(path, bytes);
  return path;
}

async function query(sql: string) {
  return (await duck.runAndReadAll(sql)).getRowObjectsJson() as Record<string, unknown>[];
}

const parquetFile = (path: string) => `read_parquet('${path}')`;

/** The column types DuckDB gives a table: a file, or several read together. */
async function columnTypes(table: string) {
  const rows = await query(`DESCRIBE SELECT * FROM ${table}`);
  return Object.fromEntries(rows.map((row) => [row.column_name, row.column_type]));
}

/** The example, then each variant that still validates with one optional field (or nested leaf) left out. */
function payloads(kind: Kind): JsonObject[] {
  const example = kind.example(AT);
  const variants = [example];
  for (const path of fieldPaths(kind.fields)) {
    const variant = structuredClone(example);
    const parent = path.length > 1 ? valueAt(variant, path.slice(0, -1)) : variant;
    if (typeof parent !== "object" || parent === null) continue;
    delete (parent as JsonObject)[path.at(-1) as string];
    if (kind.schema.safeParse(variant).success) variants.push(variant);
  }
  return variants;
}

function envelopeOf(kind: Kind, payload: JsonObject, index: number): Envelope {
  const { id, ts, [kind.sourceField]: sourceId, ...data } = kind.schema.parse(payload);
  const measured = new Date(typeof ts === "number" ? ts : Date.parse(String(ts)));
  return {
    id: String(id ?? `${kind.name}-${index}`),
    kind: kind.name,
    sourceId: String(sourceId),
    ts: new Date(measured.getTime() + index * 1001).toISOString(),
    receivedAt: new Date(AT.getTime() + index * 7).toISOString(),
    via: (["http", "mqtt", "poll"] as const)[index % 3] ?? "http",
    ...(index % 2 ? { origin: `connector-${index}` } : {}),
    data,
  };
}

const envelopesOf = (kind: Kind) => payloads(kind).map((payload, index) => envelopeOf(kind, payload, index));

/** What DuckDB may call a field's column, by the type of the field. */
const duckTypes = { number: ["DOUBLE", "BIGINT"], boolean: ["BOOLEAN"], other: ["VARCHAR", "JSON"] };

function duckCell(type: unknown, cell: unknown) {
  if (cell === null) return null;
  if (type === "BIGINT") return Number(cell);
  if (type === "JSON") return JSON.parse(String(cell));
  return cell;
}

describe.each([...kinds])("a $name file", (kind) => {
  const envelopes = envelopesOf(kind);

  test("is tested with its example and variants that leave optional fields out", () => {
    expect(envelopes.length).toBeGreaterThan(2);
    expect(new Set(envelopes.map((envelope) => Object.keys(envelope.data).length)).size).toBeGreaterThan(1);
  });

  test.each(["zstd", "snappy"] as Compression[])(
    "%s: DuckDB reads its columns, types and values",
    async (compression) => {
      const path = saved(`${kind.name}-${compression}`, kindParquet(kind, envelopes, { compression }));
      const leaves = fieldPaths(kind.fields);
      const types = await columnTypes(parquetFile(path));
      expect(Object.keys(types)).toEqual([
        ...ENVELOPE_COLUMNS,
        ...leaves.map((leaf) => leaf.join(".")),
        "record",
      ]);
      expect(types).toMatchObject({
        id: "VARCHAR",
        kind: "VARCHAR",
        sourceId: "VARCHAR",
        ts: "TIMESTAMP WITH TIME ZONE",
        receivedAt: "TIMESTAMP WITH TIME ZONE",
        via: "VARCHAR",
        origin: "VARCHAR",
        record: "JSON",
      });
      const [codec] = await query(`SELECT DISTINCT compression FROM parquet_metadata('${path}')`);
      expect(codec?.compression).toBe(compression.toUpperCase());

      const rows = await query(
        `SELECT *, epoch_us(ts)::VARCHAR AS ts_us, epoch_us(receivedAt)::VARCHAR AS received_us FROM ${parquetFile(path)}`,
      );
      expect(rows).toHaveLength(envelopes.length);
      rows.forEach((row, index) => {
        const envelope = envelopes[index] as Envelope;
        expect(row).toMatchObject({
          id: envelope.id,
          kind: kind.name,
          sourceId: envelope.sourceId,
          via: envelope.via,
          origin: envelope.origin ?? null,
          ts_us: String(Date.parse(envelope.ts) * 1000),
          received_us: String(Date.parse(envelope.receivedAt) * 1000),
        });
        expect(JSON.parse(String(row.record))).toEqual(envelope.data);
        for (const leaf of leaves) {
          const name = leaf.join(".");
          expect(duckTypes[fieldType(kind.fields, leaf)]).toContain(types[name]);
          expect(duckCell(types[name], row[name])).toEqual(valueAt(envelope.data, leaf) ?? null);
        }
      });
    },
  );

  test("reads back as the same envelopes", async () => {
    const bytes = kindParquet(kind, envelopes);
    expect(await readKindParquet(bytes)).toStrictEqual(envelopes);
  });

  test("an older version of the kind, without its last field, is read alongside the current one", async () => {
    const dropped = Object.keys(kind.fields).at(-1) as string;
    const { [dropped]: _dropped, ...olderFields } = kind.fields;
    const older: Kind = { ...kind, fields: olderFields };
    const olderEnvelopes = envelopes.map(({ data: { [dropped]: _value, ...data }, ...envelope }) => ({
      ...envelope,
      id: `${envelope.id}-old`,
      data,
    }));
    const olderBytes = kindParquet(older, olderEnvelopes);
    expect(await readKindParquet(olderBytes)).toStrictEqual(olderEnvelopes);

    const olderPath = saved(`${kind.name}-older`, olderBytes);
    const currentPath = saved(`${kind.name}-current`, kindParquet(kind, envelopes));
    const droppedColumns = fieldPaths(kind.fields)
      .filter(([top]) => top === dropped)
      .map((leaf) => leaf.join("."));
    expect(Object.keys(await columnTypes(parquetFile(olderPath)))).not.toContain(droppedColumns[0]);
    const both = `read_parquet(['${olderPath}', '${currentPath}'], union_by_name = true)`;
    expect(await columnTypes(both)).toEqual(await columnTypes(parquetFile(currentPath)));
    const counts = await query(
      `SELECT id LIKE '%-old' AS older, count(*)::INTEGER AS rows, count("${droppedColumns[0]}")::INTEGER AS filled FROM ${both} GROUP BY older ORDER BY older`,
    );
    const filled = envelopes.filter(
      (envelope) => valueAt(envelope.data, droppedColumns[0]?.split(".") ?? []) !== undefined,
    ).length;
    expect(filled).toBeGreaterThan(0);
    expect(counts).toEqual([
      { older: false, rows: envelopes.length, filled },
      { older: true, rows: envelopes.length, filled: 0 },
    ]);
  });
});

describe("a dead-letter file", () => {
  const letters: DeadLetter[] = [
    {
      id: "0190a1b2-0000-7000-8000-000000000001",
      kind: "sensors",
      via: "http",
      receivedAt: "2026-11-22T08:30:00.123Z",
      reason: "invalid-record",
      errors: [
        { path: "temperature", message: "Too big: expected number to be <=150", index: 2 },
        { path: "", message: "at least one metric is required" },
      ],
      raw: '{"deviceId":"d-1","temperature":900,"note":"ünïcødé, \\"quotes\\", new\nline"}',
      origin: "application/json",
    },
    {
      id: "0190a1b2-0000-7000-8000-000000000002",
      kind: null,
      via: "mqtt",
      receivedAt: "2026-11-22T23:59:59.999Z",
      reason: "malformed-body",
      errors: [{ path: "", message: "Unexpected token" }],
      raw: "{not json",
    },
  ];

  test("DuckDB reads its columns, types and values", async () => {
    const path = saved("deadletters", deadLetterParquet(letters));
    expect(await columnTypes(parquetFile(path))).toEqual({
      id: "VARCHAR",
      kind: "VARCHAR",
      via: "VARCHAR",
      receivedAt: "TIMESTAMP WITH TIME ZONE",
      reason: "VARCHAR",
      errors: "JSON",
      raw: "VARCHAR",
      origin: "VARCHAR",
    });
    const rows = await query(
      `SELECT * EXCLUDE (receivedAt, errors), epoch_us(receivedAt)::VARCHAR AS received_us, errors::VARCHAR AS errors FROM ${parquetFile(path)}`,
    );
    expect(rows).toEqual(
      letters.map(({ receivedAt, errors, ...letter }) => ({
        ...letter,
        origin: letter.origin ?? null,
        received_us: String(Date.parse(receivedAt) * 1000),
        errors: JSON.stringify(errors),
      })),
    );
  });

  test("reads back as the same dead letters", async () => {
    for (const compression of ["zstd", "snappy"] as const) {
      expect(await readDeadLetterParquet(deadLetterParquet(letters, { compression }))).toStrictEqual(letters);
    }
  });

  test("is not taken for a file of records, nor the other way round", async () => {
    const [sensors] = kinds;
    await expect(readKindParquet(deadLetterParquet(letters))).rejects.toThrow("not a file of records");
    await expect(readDeadLetterParquet(kindParquet(sensors, envelopesOf(sensors)))).rejects.toThrow(
      "not a file of dead-letters",
    );
  });
});

test("a kind's file refuses another kind's record", () => {
  const [sensors, traffic] = kinds;
  expect(() => kindParquet(sensors, envelopesOf(traffic))).toThrow(
    "a sensors file cannot hold a traffic record",
  );
});

describe("encoder threads", () => {
  const [sensors] = kinds;
  /** Three chunks of envelopes, each with ids of its own, as the bytes Kafka would hold. */
  const chunks = [0, 1, 2].map((chunk) =>
    envelopesOf(sensors).map((envelope) => ({ ...envelope, id: `${envelope.id}-${chunk}` })),
  );
  const bytesOf = (envelope: unknown) => new TextEncoder().encode(JSON.stringify(envelope));

  test("a file sent a chunk at a time is a row group a chunk, read back whole and in order", async () => {
    const pool = createEncoderPool(2);
    try {
      const records = new RecordBytes();
      const file = pool.open("sensors", "zstd");
      for (const chunk of chunks.slice(0, 2)) {
        for (const envelope of chunk) records.push(bytesOf(envelope));
        file.add(records);
      }
      for (const envelope of chunks[2] ?? []) records.push(bytesOf(envelope));
      const bytes = await file.finish(records);
      expect(await readKindParquet(bytes)).toStrictEqual(chunks.flat());
      const path = saved("chunked", bytes);
      const groups = await query(
        `SELECT row_group_num_rows FROM parquet_metadata('${path}') WHERE column_id = 0`,
      );
      expect(groups.map((group) => Number(group.row_group_num_rows))).toEqual(
        chunks.map((chunk) => chunk.length),
      );
    } finally {
      pool.close();
    }
  });

  test("a file whose thread stopped fails, and is encoded again from its first record", async () => {
    const records = new RecordBytes();
    const stopped = createEncoderPool(1);
    const file = stopped.open("sensors", "snappy");
    for (const envelope of chunks[0] ?? []) records.push(bytesOf(envelope));
    file.add(records);
    stopped.close();
    for (const envelope of chunks[1] ?? []) records.push(bytesOf(envelope));
    await expect(file.finish(records)).rejects.toThrow("the archive's encoders stopped");
    records.unsend();
    const pool = createEncoderPool(1);
    try {
      const bytes = await pool.open("sensors", "snappy").finish(records);
      expect(await readKindParquet(bytes)).toStrictEqual([...(chunks[0] ?? []), ...(chunks[1] ?? [])]);
    } finally {
      pool.close();
    }
  });

  test("dead letters, and a record that is not JSON fails its file with the reason", async () => {
    const pool = createEncoderPool(1);
    try {
      const letters = new RecordBytes();
      const letter: DeadLetter = {
        id: "l-1",
        kind: "sensors",
        via: "http",
        receivedAt: AT.toISOString(),
        reason: "corrupt-spool-entry",
        errors: [],
        raw: "{}",
      };
      letters.push(bytesOf(letter));
      expect(await readDeadLetterParquet(await pool.open(undefined, "zstd").finish(letters))).toStrictEqual([
        letter,
      ]);
      const broken = new RecordBytes();
      broken.push(new TextEncoder().encode("{not json"));
      const failure = await pool
        .open("sensors", "zstd")
        .finish(broken)
        .then(
          () => undefined,
          (error: Error) => error,
        );
      expect(failure?.message).toStartWith("encoding failed: JSON Parse error");
    } finally {
      pool.close();
    }
  });
});
