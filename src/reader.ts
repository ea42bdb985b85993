import type { Cache, RecordItem } from "./cache/redis";
import type { Config } from "./config";
import type { Db } from "./db/client";
import {
  aggregateRollups,
  type BucketRow,
  type Cursor,
  latestRecords,
  listRecords,
  type RecordRow,
  type RollupFilter,
} from "./db/queries";
import type { Kind } from "./kinds";

export const buckets = {
  "1m": 60_000,
  "5m": 300_000,
  "15m": 900_000,
  "1h": 3_600_000,
  "1d": 86_400_000,
} as const;
export type Bucket = keyof typeof buckets;

/** The roll-up width a bucket is summed from: the widest one that divides it. */
function widthFor(bucket: Bucket) {
  return bucket === "1d" ? "1d" : bucket === "1h" ? "1h" : "1m";
}

/** A kind with derived values (conversion rate) always gets all of its metrics summed. */
export interface AggregateQuery extends RollupFilter {
  bucket: Bucket;
}

const toItem = (row: RecordRow): RecordItem => ({
  id: row.id,
  sourceId: row.sourceId,
  ts: row.ts.toISOString(),
  receivedAt: row.receivedAt.toISOString(),
  via: row.via,
  data: row.data,
  flags: row.flags,
});

export const encodeCursor = (row: RecordRow) =>
  Buffer.from(JSON.stringify([row.ts.toISOString(), row.id])).toString("base64url");

export function decodeCursor(cursor: string): Cursor | undefined {
  try {
    const [ts, id] = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
    const date = new Date(ts);
    if (typeof ts !== "string" || typeof id !== "string" || Number.isNaN(date.getTime())) return undefined;
    return { ts: date, id };
  } catch {
    return undefined;
  }
}

/** Reads for the query API: PostgreSQL is the truth, Redis only ever saves a trip to it. */
export function createReader(deps: { db: Db; cache: Cache; config: Config }) {
  const { db, cache, config } = deps;

  return {
    async list(
      kind: Kind,
      filter: { sourceId?: string; from?: Date; to?: Date; cursor?: Cursor; limit: number },
    ) {
      const rows = await listRecords(db, kind, filter);
      const page = rows.slice(0, filter.limit);
      const last = page.at(-1);
      return {
        items: page.map(toItem),
        nextCursor: rows.length > filter.limit && last ? encodeCursor(last) : null,
      };
    },

    async latest(kind: Kind, sourceId?: string): Promise<RecordItem[]> {
      const cached = await cache.getLatest(kind.name, sourceId);
      if (cached) return cached.sort((a, b) => a.sourceId.localeCompare(b.sourceId));
      const items = (await latestRecords(db, kind, sourceId)).map(toItem);
      await cache.setLatest(kind.name, items);
      if (sourceId === undefined) await cache.markLatestComplete(kind.name);
      return items;
    },

    /**
     * Buckets that ended at least CACHE_CLOSED_AFTER_SECONDS ago come from the cache when it has them (keys
     * hold the kind's generation, which the sink bumps when older records arrive); later buckets are always
     * read from PostgreSQL, so an open bucket is never stale. An answer made only of closed buckets is cached
     * whole, as served (`render` makes it; `variant` names what else shapes it, such as the format).
     */
    async aggregate(
      kind: Kind,
      query: AggregateQuery,
      render: (rows: BucketRow[]) => string,
      variant: string,
    ): Promise<string | Buffer> {
      const stepMs = buckets[query.bucket];
      const width = widthFor(query.bucket);
      const metrics = kind.derived ? kind.metrics : query.metrics;
      const run = (from: Date, to: Date) =>
        aggregateRollups(db, kind, {
          ...query,
          metrics,
          width,
          stepMs: width === query.bucket ? undefined : stepMs,
          from,
          to,
        });
      const closedBefore =
        Math.floor((Date.now() - config.CACHE_CLOSED_AFTER_SECONDS * 1000) / stepMs) * stepMs;
      const split = new Date(Math.max(query.from.getTime(), Math.min(query.to.getTime(), closedBefore)));
      if (split <= query.from) return render(await run(query.from, query.to));

      const generation = await cache.generation(kind.name);
      const params = [
        query.bucket,
        query.from,
        split,
        query.sourceId,
        query.bySource,
        query.includeSuspect,
        query.metrics,
      ];
      const key = (part: string) => [part, kind.name, generation ?? "", JSON.stringify(params), variant];
      const ttl = config.CACHE_TTL_SECONDS;
      if (split.getTime() === query.to.getTime()) {
        const cached = generation !== undefined ? await cache.getBytes(key("answer")) : undefined;
        if (cached !== undefined) return cached;
        const answer = render(await run(query.from, query.to));
        if (generation !== undefined) await cache.setText(key("answer"), answer, ttl);
        return answer;
      }
      let closed = generation !== undefined ? await cache.getJson<BucketRow[]>(key("rows")) : undefined;
      if (!closed) {
        closed = await run(query.from, split);
        if (generation !== undefined) await cache.setJson(key("rows"), closed, ttl);
      }
      return render([...closed, ...(await run(split, query.to))]);
    },
  };
}

export type Reader = ReturnType<typeof createReader>;
