import type { Cache } from "../cache/redis";
import type { Db } from "../db/client";
import { type Cursor, latestRecords, listRecords } from "../db/queries";
import type { Kind } from "../kinds";
import type { StoredRecord } from "../record";

export const encodeCursor = (record: StoredRecord) =>
  Buffer.from(JSON.stringify([record.ts, record.id])).toString("base64url");

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

/** Raw records and the latest per source: PostgreSQL is the truth, Redis only ever saves a trip to it. */
export function createRecords(deps: { db: Db; cache: Cache }) {
  const { db, cache } = deps;

  return {
    async list(
      kind: Kind,
      filter: { sourceIds?: readonly string[]; from?: Date; to?: Date; cursor?: Cursor; limit: number },
    ) {
      const records = await listRecords(db, kind, filter);
      const page = records.slice(0, filter.limit);
      const last = page.at(-1);
      return { items: page, nextCursor: records.length > filter.limit && last ? encodeCursor(last) : null };
    },

    async latest(kind: Kind, sourceIds?: readonly string[]): Promise<StoredRecord[]> {
      const cached = await cache.getLatest(kind.name, sourceIds);
      if (cached) return cached.sort((a, b) => a.sourceId.localeCompare(b.sourceId));
      const items = await latestRecords(db, kind, sourceIds);
      await cache.setLatest(kind.name, items);
      if (sourceIds === undefined) await cache.markLatestComplete(kind.name);
      return items;
    },
  };
}

export type Records = ReturnType<typeof createRecords>;
