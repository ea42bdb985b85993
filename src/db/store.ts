import { sql } from "drizzle-orm";
import { getTableConfig } from "drizzle-orm/pg-core";
import type { Envelope } from "../ingest/validate";
import type { Kind } from "../kinds";
import type { Db } from "./client";
import { kindTables, type rollupWidths, snakeCase } from "./schema";

export interface StoredRecord extends Envelope {
  flags: string[];
}

const steps: Record<keyof typeof rollupWidths, string> = { "1m": "1 minute", "1h": "1 hour", "1d": "1 day" };

/**
 * One statement per batch, so one transaction: insert the records, skipping ids already stored, and add the
 * rows actually inserted to the roll-ups of every width. A replayed batch inserts nothing and adds nothing.
 * Built from the kind's metric names (code, never input).
 */
function writeStatement(kind: Kind) {
  const { records, rollups } = kindTables(kind);
  const recordsTable = getTableConfig(records).name;
  const rollupsTable = getTableConfig(rollups).name;
  const columns = kind.metrics.map((metric) => ({
    value: `(i.data->>'${metric}')::float8`,
    column: snakeCase(metric),
  }));
  const widths = Object.entries(steps)
    .map(([width, step]) => `('${width}', interval '${step}')`)
    .join(", ");
  const rollupColumns = columns.flatMap(({ column }) => [
    `${column}_count`,
    `${column}_sum`,
    `${column}_min`,
    `${column}_max`,
  ]);
  const aggregates = columns.flatMap(({ value }) => [
    `count(${value})`,
    `sum(${value})`,
    `min(${value})`,
    `max(${value})`,
  ]);
  const updates = columns.flatMap(({ column }) => [
    `${column}_count = r.${column}_count + excluded.${column}_count`,
    `${column}_sum = coalesce(r.${column}_sum + excluded.${column}_sum, r.${column}_sum, excluded.${column}_sum)`,
    `${column}_min = least(r.${column}_min, excluded.${column}_min)`,
    `${column}_max = greatest(r.${column}_max, excluded.${column}_max)`,
  ]);
  return `
    with input as (
      select * from jsonb_to_recordset($1::jsonb)
        as x(id text, source_id text, ts timestamptz, received_at timestamptz, via text, data jsonb, flags text[])
    ), inserted as (
      insert into ${recordsTable} (id, source_id, ts, received_at, via, data, flags)
      select id, source_id, ts, received_at, via, data, flags from input
      on conflict (id) do nothing
      returning source_id, ts, data, flags
    ), widths(width, step) as (values ${widths}),
    rolled as (
      insert into ${rollupsTable} as r (source_id, width, bucket_start, quality, count, ${rollupColumns.join(", ")})
      select i.source_id, w.width, date_bin(w.step, i.ts, timestamptz '1970-01-01 00:00:00+00'),
        case when cardinality(i.flags) > 0 then 'suspect' else 'ok' end, count(*), ${aggregates.join(", ")}
      from inserted i cross join widths w
      group by 1, 2, 3, 4
      on conflict (source_id, width, bucket_start, quality) do update set
        count = r.count + excluded.count, ${updates.join(", ")}
      returning 1
    )
    select (select count(*) from inserted)::int as inserted`;
}

const statements = new Map<string, [string, string]>();

/** Stores a batch of one kind; returns how many records were new. */
export async function writeBatch(db: Db, kind: Kind, batch: StoredRecord[]): Promise<number> {
  if (batch.length === 0) return 0;
  let statement = statements.get(kind.name);
  if (!statement) {
    statement = writeStatement(kind).split("$1") as [string, string];
    statements.set(kind.name, statement);
  }
  const rows = batch.map((record) => ({
    id: record.id,
    source_id: record.sourceId,
    ts: record.ts,
    received_at: record.receivedAt,
    via: record.via,
    data: record.data,
    flags: record.flags,
  }));
  const [before, after] = statement;
  const result = await db.execute<{ inserted: number }>(
    sql`${sql.raw(before)}${JSON.stringify(rows)}${sql.raw(after)}`,
  );
  return result[0]?.inserted ?? 0;
}
