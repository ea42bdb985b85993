import { and, desc, eq, getTableColumns, gte, inArray, lt, type SQL, sql } from "drizzle-orm";
import type { AnyPgColumn } from "drizzle-orm/pg-core";
import type { Kind } from "../kinds";
import type { StoredRecord } from "../record";
import type { Db } from "./client";
import { type KindTables, kindTables, type RollupWidth } from "./schema";

export interface Cursor {
  ts: Date;
  id: string;
}

/** Only these sources; all when absent. */
type Sources = readonly string[] | undefined;

const ofSources = (column: AnyPgColumn, sourceIds: Sources) =>
  sourceIds === undefined ? undefined : inArray(column, [...sourceIds]);

function toRecord(kind: Kind, row: KindTables["records"]["$inferSelect"]): StoredRecord {
  return {
    id: row.id,
    kind: kind.name,
    sourceId: row.sourceId,
    ts: row.ts.toISOString(),
    receivedAt: row.receivedAt.toISOString(),
    via: row.via,
    ...(row.origin === null ? {} : { origin: row.origin }),
    data: row.data,
    flags: row.flags,
  };
}

/** Raw records, newest first, one page past a keyset cursor; `limit + 1` rows tell whether more follow. */
export async function listRecords(
  db: Db,
  kind: Kind,
  filter: { sourceIds?: Sources; from?: Date; to?: Date; cursor?: Cursor; limit: number },
): Promise<StoredRecord[]> {
  const { records } = kindTables(kind);
  const conditions: (SQL | undefined)[] = [
    ofSources(records.sourceId, filter.sourceIds),
    filter.from ? gte(records.ts, filter.from) : undefined,
    filter.to ? lt(records.ts, filter.to) : undefined,
    filter.cursor
      ? sql`(${records.ts}, ${records.id}) < (${filter.cursor.ts.toISOString()}::timestamptz, ${filter.cursor.id})`
      : undefined,
  ];
  const rows = await db
    .select()
    .from(records)
    .where(and(...conditions))
    .orderBy(desc(records.ts), desc(records.id))
    .limit(filter.limit + 1);
  return rows.map((row) => toRecord(kind, row));
}

/** The newest record of each source (or of the given ones). */
export async function latestRecords(db: Db, kind: Kind, sourceIds: Sources): Promise<StoredRecord[]> {
  const { records } = kindTables(kind);
  const rows = await db
    .selectDistinctOn([records.sourceId])
    .from(records)
    .where(ofSources(records.sourceId, sourceIds))
    .orderBy(records.sourceId, desc(records.ts), desc(records.id));
  return rows.map((row) => toRecord(kind, row));
}

export interface MetricSums {
  count: number;
  sum: number | null;
  min: number | null;
  max: number | null;
}

export interface BucketRow {
  bucketStart: string;
  sourceId?: string;
  count: number;
  metrics: Record<string, MetricSums>;
}

/** What an aggregate sums: a time range, optionally some sources, and the metrics to read. */
export interface RollupFilter {
  from: Date;
  to: Date;
  sourceIds?: Sources;
  bySource: boolean;
  includeSuspect: boolean;
  metrics: readonly string[];
}

/**
 * Sums roll-up rows of one width into buckets of `stepMs` (a multiple of the width), aligned on the epoch, or,
 * without `stepMs`, into the rows' own buckets: grouped by the indexed column, rows arrive in bucket order and
 * need no sort. Suspect rows are left out unless asked for. Only the given metrics' columns are read, and rows
 * come back as postgres.js gives them: decoding and mapping every column of thousands of rows was most of the
 * time.
 */
export async function aggregateRollups(
  db: Db,
  kind: Kind,
  query: RollupFilter & { width: RollupWidth; stepMs?: number },
): Promise<BucketRow[]> {
  const { rollups } = kindTables(kind);
  const columns: Record<string, AnyPgColumn> = getTableColumns(rollups);
  // The step is one of the API's bucket widths, a number: inlined so that SELECT and GROUP BY are one expression.
  const step = (ms: number) => sql.raw(`interval '${Math.trunc(ms / 1000)} seconds'`);
  const bucket =
    query.stepMs === undefined
      ? sql`${rollups.bucketStart}`
      : sql`date_bin(${step(query.stepMs)}, ${rollups.bucketStart}, timestamptz '1970-01-01 00:00:00+00')`;
  const sums = query.metrics.map(
    (metric, i) =>
      sql`, sum(${columns[`${metric}Count`]})::int as ${sql.raw(`c${i}`)}, sum(${columns[`${metric}Sum`]})::float8 as ${sql.raw(`s${i}`)}, min(${columns[`${metric}Min`]}) as ${sql.raw(`n${i}`)}, max(${columns[`${metric}Max`]}) as ${sql.raw(`x${i}`)}`,
  );
  const groups = query.bySource ? sql`${bucket}, ${rollups.sourceId}` : bucket;
  const conditions = and(
    eq(rollups.width, query.width),
    gte(rollups.bucketStart, query.from),
    lt(rollups.bucketStart, query.to),
    ofSources(rollups.sourceId, query.sourceIds),
    query.includeSuspect ? undefined : eq(rollups.quality, "ok"),
  );
  const rows = await db.execute<Record<string, string | number | null>>(sql`
    select to_char(${bucket} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as bucket_start,
      ${query.bySource ? rollups.sourceId : sql`null`} as source_id, sum(${rollups.count})::int as count
      ${sql.join(sums)}
    from ${rollups} where ${conditions} group by ${groups} order by ${groups}`);

  return rows.map((row) => {
    const metrics: Record<string, MetricSums> = {};
    for (const [i, metric] of query.metrics.entries()) {
      metrics[metric] = {
        count: (row[`c${i}`] as number | null) ?? 0,
        sum: row[`s${i}`] as number | null,
        min: row[`n${i}`] as number | null,
        max: row[`x${i}`] as number | null,
      };
    }
    return {
      bucketStart: row.bucket_start as string,
      ...(query.bySource ? { sourceId: row.source_id as string } : {}),
      count: row.count as number,
      metrics,
    };
  });
}
