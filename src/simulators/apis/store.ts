import { restartCounter, trafficSimulator } from "../traffic";
import {
  type ApiDefinition,
  type ApiServerOptions,
  etagOf,
  hashNumber,
  integerParam,
  json,
  MINUTE,
  matchesEtag,
  notModified,
  seededFaker,
} from "./common";

type Item = Record<string, unknown> & { id: string; storeId: string; ts: string };

const INTERVAL = 15 * MINUTE;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const MAX_HOURS = 168;
const MAX_LIMIT = 1000;

/** Where a page starts: the window it was cut from (so later pages hold still while time moves) and the offset. */
interface Position {
  end: number;
  hours: number;
  offset: number;
}

const encodeCursor = ({ end, hours, offset }: Position) =>
  Buffer.from(JSON.stringify([end, hours, offset])).toString("base64url");

function decodeCursor(cursor: string): Position | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, "base64url").toString());
    if (!Array.isArray(value) || value.length !== 3) return undefined;
    const [end, hours, offset] = value;
    const whole = (n: unknown, min: number, max: number) =>
      typeof n === "number" && Number.isInteger(n) && n >= min && n <= max;
    if (!whole(end, 0, 8.64e15) || end % INTERVAL !== 0) return undefined;
    if (!whole(hours, 1, MAX_HOURS) || !whole(offset, 0, Number.MAX_SAFE_INTEGER)) return undefined;
    return { end, hours, offset };
  } catch {
    return undefined;
  }
}

const problem = (message: string) => json(400, { error: message });

/**
 * `GET /visitors`: a store chain's visitor counts, one TrafficCount per store and 15-minute interval of the last
 * `hours`, paged by offset+limit, by cursor (`next_cursor`) and by `Link: rel="next"` all at once.
 */
export function storeApi(options: ApiServerOptions): ApiDefinition {
  const seed = options.seed ?? 1;
  // A chain of its own: its shops never share an id with the door counters the device simulator pushes.
  const stores = trafficSimulator
    .devices(options.devices ?? 10, seededFaker(seed))
    .map((store) => ({ ...store, sourceId: store.sourceId.replace("-store-", "-shop-") }));
  const faker = seededFaker(seed);
  let cached: { key: string; items: Item[] } | undefined;

  /**
   * Every count of the window [end - hours, end), oldest first. A store is empty at midnight (it closes in the
   * evening and lets everyone out), so each one's day is replayed from local midnight: the same interval always
   * gets the same numbers, whatever window it is asked in.
   */
  function itemsOf(end: number, hours: number): Item[] {
    const key = `${end}:${hours}`;
    if (cached?.key === key) return cached.items;
    const start = end - hours * HOUR;
    const items: Item[] = [];
    for (const store of stores) {
      const offset = store.state.city.utcOffset * HOUR;
      const device = { ...store, state: restartCounter(store.state) };
      for (let t = Math.floor((start + offset) / DAY) * DAY - offset; t < end; t += INTERVAL) {
        faker.seed(hashNumber(seed, store.sourceId, t));
        const at = new Date(t);
        const reading = trafficSimulator.reading(device, at, faker);
        if (t >= start) {
          items.push({
            id: `${store.sourceId}-${at.toISOString()}`,
            ...reading,
            storeId: store.sourceId,
            ts: at.toISOString(),
          });
        }
      }
    }
    items.sort((a, b) => (a.ts === b.ts ? (a.storeId < b.storeId ? -1 : 1) : a.ts < b.ts ? -1 : 1));
    cached = { key, items };
    return items;
  }

  return {
    path: "/visitors",
    credential: (request) => request.headers.get("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1] ?? null,
    refuse: (refusal) =>
      refusal.reason === "rate" || refusal.reason === "quota"
        ? json(
            429,
            { error: refusal.reason === "rate" ? "rate_limited" : "quota_exceeded" },
            {
              "retry-after": String(refusal.retryAfter),
            },
          )
        : json(401, { error: "unauthorized" }, { "www-authenticate": 'Bearer realm="visitors"' }),
    notFound: () => json(404, { error: "not_found" }),
    answer(request, url, now) {
      const params = url.searchParams;
      const limit = integerParam(params.get("limit"), 50, 1, MAX_LIMIT);
      if (limit === undefined) return problem(`limit must be an integer from 1 to ${MAX_LIMIT}`);
      let position: Position;
      const cursor = params.get("cursor");
      if (cursor) {
        const decoded = decodeCursor(cursor);
        if (!decoded) return problem("cursor is not one this API gave out");
        position = decoded;
      } else {
        const hours = integerParam(params.get("hours"), 1, 1, MAX_HOURS);
        if (hours === undefined) return problem(`hours must be an integer from 1 to ${MAX_HOURS}`);
        const offset = integerParam(params.get("offset"), 0, 0, Number.MAX_SAFE_INTEGER);
        if (offset === undefined) return problem("offset must be a whole number");
        position = { end: Math.floor(now / INTERVAL) * INTERVAL, hours, offset };
      }
      const items = itemsOf(position.end, position.hours);
      const data = items.slice(position.offset, position.offset + limit);
      const following = position.offset + limit < items.length;
      const nextCursor = following ? encodeCursor({ ...position, offset: position.offset + limit }) : null;
      const text = JSON.stringify({
        data,
        total: items.length,
        offset: position.offset,
        limit,
        next_cursor: nextCursor,
      });
      const etag = etagOf(text);
      const headers: Record<string, string> = { etag };
      if (nextCursor) {
        const next = new URL(url);
        next.searchParams.delete("offset");
        next.searchParams.delete("hours");
        next.searchParams.set("cursor", nextCursor);
        headers.link = `<${next.href}>; rel="next"`;
      }
      if (matchesEtag(request.headers.get("if-none-match"), etag)) return notModified(headers);
      return new Response(text, {
        headers: { "content-type": "application/json; charset=utf-8", ...headers },
      });
    },
  };
}
