import { and, desc, eq, getTableColumns, gte, lt, type SQL, sql } from "drizzle-orm";
import type { AnyPgColumn } from "drizzle-orm/pg-core";
import type { Via } from "../ingest/validate";
import type { Kind } from "../kinds";
import type { Db } from "./client";
import { kindTables, type RollupWidth } from "./schema";

export interface RecordRow {
  id: string;
  sourceId: string;
  ts: Date;
  receivedAt: Date;
  via: Via;
  data: Record<string, unknown>;
  flags: string[];
}

export interface Cursor {
  ts: Date;
  id: string;
}

/** Raw records, newest first, one page past a keyset cursor; `limit + 1` rows tell whether more follow. */
export function listRecords(
  db: Db,
  kind: Kind,
  filter: { sourceId?: string; from?: Date; to?: Date; cursor?: Cursor; limit: number },
): Promise<RecordRow[]> {
  const { records } = kindTables(kind);
  const conditions: (SQL | undefined)[] = [
    filter.sourceId !== undefined ? eq(records.sourceId, filter.sourceId) : undefined,
    filter.from ? gte(records.ts, filter.from) : undefined,
    filter.to ? lt(records.ts, filter.to) : undefined,
    filter.cursor
      ? sql`(${records.ts}, ${records.id}) < (${filter.cursor.ts.toISOString()}::timestamptz, ${filter.cursor.id})`
      : undefined,
  ];
  return db
    .select()
    .from(records)
    .where(and(...conditions))
    .orderBy(desc(records.ts), desc(records.id))
    .limit(filter.limit + 1);
}

/** The newest record of each source (or of one). */
export async function latestRecords(db: Db, kind: Kind, sourceId?: string): Promise<RecordRow[]> {
  const { records } = kindTables(kind);
  return db
    .selectDistinctOn([records.sourceId])
    .from(records)
    .where(sourceId !== undefined ? eq(records.sourceId, sourceId) : undefined)
    .orderBy(records.sourceId, desc(records.ts), desc(records.id));
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

/**
 * Sums roll-up rows of one width into buckets of `stepMs` (a multiple of the width), aligned on the epoch.
 * Suspect rows are left out unless asked for.
 */
export async function aggregateRollups(
  db: Db,
  kind: Kind,
  query: {
    width: RollupWidth;
    stepMs: number;
    from: Date;
    to: Date;
    sourceId?: string;
    bySource: boolean;
    includeSuspect: boolean;
  },
): Promise<BucketRow[]> {
  const { rollups } = kindTables(kind);
  const columns: Record<string, AnyPgColumn> = getTableColumns(rollups);
  // The step is one of the API's bucket widths, a number: inlined so that SELECT and GROUP BY are one expression.
  const step = sql.raw(`interval '${Math.trunc(query.stepMs / 1000)} seconds'`);
  const bucket = sql<string>`date_bin(${step}, ${rollups.bucketStart}, timestamptz '1970-01-01 00:00:00+00')`;
  const sums: Record<string, SQL> = {};
  for (const metric of kind.metrics) {
    sums[`${metric}:count`] = sql`sum(${columns[`${metric}Count`]})::int`;
    sums[`${metric}:sum`] = sql`sum(${columns[`${metric}Sum`]})::float8`;
    sums[`${metric}:min`] = sql`min(${columns[`${metric}Min`]})`;
    sums[`${metric}:max`] = sql`max(${columns[`${metric}Max`]})`;
  }
  const rows = await db
    .select({
      bucketStart: sql<string>`to_char(${bucket} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`,
      sourceId: query.bySource ? rollups.sourceId : sql<null>`null`,
      count: sql<number>`sum(${rollups.count})::int`,
      ...sums,
    })
    .from(rollups)
    .where(
      and(
        eq(rollups.width, query.width),
        gte(rollups.bucketStart, query.from),
        lt(rollups.bucketStart, query.to),
        query.sourceId !== undefined ? eq(rollups.sourceId, query.sourceId) : undefined,
        query.includeSuspect ? undefined : eq(rollups.quality, "ok"),
      ),
    )
    .groupBy(...(query.bySource ? [bucket, rollups.sourceId] : [bucket]))
    .orderBy(...(query.bySource ? [bucket, rollups.sourceId] : [bucket]));

  return rows.map((row) => {
    const values = row as Record<string, unknown>;
    const metrics: Record<string, MetricSums> = {};
    for (const metric of kind.metrics) {
      const number = (suffix: string) => (values[`${metric}:${suffix}`] as number | null) ?? null;
      metrics[metric] = {
        count: number("count") ?? 0,
        sum: number("sum"),
        min: number("min"),
        max: number("max"),
      };
    }
    return {
      bucketStart: row.bucketStart,
      ...(query.bySource ? { sourceId: row.sourceId as string } : {}),
      count: row.count,
      metrics,
    };
  });
}
