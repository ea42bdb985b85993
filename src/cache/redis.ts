import Redis from "ioredis";
import type { Logger } from "../log";
import type { Metrics } from "../metrics";
import type { StoredRecord } from "../record";

// Each value is the record's ts (ISO 8601, 24 characters, so that strings compare as times) and then its JSON.
const SET_IF_NEWER = `
for i = 1, #ARGV, 2 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  if not current or string.sub(current, 1, 24) < string.sub(ARGV[i + 1], 1, 24) then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
  end
end
return 0`;

// A token bucket per key: `rate` tokens a second up to `burst`; takes up to ARGV[3] tokens at once and answers
// how many it gave and, when it gave fewer, how long until the next one. Redis's own clock, so gateways agree.
const TAKE_TOKENS = `
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local wanted = tonumber(ARGV[3])
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local bucket = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(bucket[1]) or burst
local at = tonumber(bucket[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
local granted = math.min(wanted, math.floor(tokens))
tokens = tokens - granted
local wait = 0
if granted < wanted then wait = math.ceil((1 - tokens) * 1000 / rate) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {granted, wait}`;

const START_AND_INCREMENT = `
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return redis.call('INCR', KEYS[1])`;

/** Buffers by name, the least recently used dropped first once they hold more than `maxBytes`. */
function createRecentBuffers(maxBytes: number) {
  const entries = new Map<string, Buffer>();
  let bytes = 0;
  return {
    get(name: string) {
      const value = entries.get(name);
      if (value) {
        entries.delete(name);
        entries.set(name, value);
      }
      return value;
    },
    set(name: string, value: Buffer) {
      bytes += value.length - (entries.get(name)?.length ?? 0);
      entries.delete(name);
      entries.set(name, value);
      for (const [oldest, dropped] of entries) {
        if (bytes <= maxBytes) break;
        entries.delete(oldest);
        bytes -= dropped.length;
      }
    },
  };
}

/**
 * Redis is a cache here, never a dependency: every call fails fast (no offline queue, short timeouts) and
 * answers undefined instead of throwing, so that ingestion, storage and queries go on without it.
 */
export function createCache(url: string, keyPrefix: string, logger: Logger, metrics: Metrics) {
  const redis = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 500,
    connectTimeout: 1000,
    retryStrategy: (times) => Math.min(times * 250, 2000),
  });
  let reportedDown = false;
  redis.on("error", (error) => {
    if (!reportedDown) logger.warn("Redis unavailable; going on without the cache", { error: error.message });
    reportedDown = true;
  });
  redis.on("ready", () => {
    reportedDown = false;
  });
  const key = (...parts: string[]) => [keyPrefix, ...parts].join(":");
  // The most recently used cached answers, kept in this process too: moving half a megabyte out of Redis
  // for every request was most of a cached answer's time.
  const recent = createRecentBuffers(32 * 1024 * 1024);

  async function safely<T>(work: () => Promise<T>): Promise<T | undefined> {
    if (redis.status !== "ready") {
      return undefined;
    }
    try {
      return await work();
    } catch {
      return undefined;
    }
  }

  return {
    redis,
    ping: () => redis.ping(),

    /** Keeps, per source, the record with the newest ts. */
    async setLatest(kind: string, records: StoredRecord[]) {
      // A batch holds many records of each source: only the newest of each goes to Redis.
      const newest = new Map<string, StoredRecord>();
      for (const record of records) {
        const kept = newest.get(record.sourceId);
        if (!kept || kept.ts < record.ts) newest.set(record.sourceId, record);
      }
      if (newest.size === 0) return;
      const args = [...newest.values()].flatMap((record) => [
        record.sourceId,
        `${record.ts}${JSON.stringify(record)}`,
      ]);
      await safely(() => redis.eval(SET_IF_NEWER, 1, key("latest", kind), ...args));
    },

    /** The newest record of the given sources, or of every source; undefined when Redis cannot say. */
    async getLatest(kind: string, sourceIds?: readonly string[]): Promise<StoredRecord[] | undefined> {
      const parse = (value: string) => JSON.parse(value.slice(24)) as StoredRecord;
      return safely(async () => {
        if (sourceIds !== undefined) {
          const values = sourceIds.length > 0 ? await redis.hmget(key("latest", kind), ...sourceIds) : [];
          return values.every((value) => value !== null) ? values.map(parse) : undefined;
        }
        // Only trusted once filled from PostgreSQL: Redis may have restarted empty.
        if (!(await redis.exists(key("latest", kind, "complete")))) return undefined;
        return Object.values(await redis.hgetall(key("latest", kind))).map(parse);
      });
    },

    async markLatestComplete(kind: string) {
      await safely(() => redis.set(key("latest", kind, "complete"), "1"));
    },

    /**
     * Bumped when records arrive for buckets old enough to be cached, which makes older answers unreachable.
     * It starts from the clock, not from 0, so that after Redis loses its data no answer a process still
     * keeps from before matches again.
     */
    generation: (kind: string) =>
      safely(async () => {
        const start = String(Date.now());
        return (await redis.set(key("generation", kind), start, "NX", "GET")) ?? start;
      }),
    bumpGeneration: (kind: string) =>
      safely(() => redis.eval(START_AND_INCREMENT, 1, key("generation", kind), Date.now())),

    /**
     * Bytes, not a string: a cached answer goes out as it came in, without decoding and encoding it again.
     * Only for values that never change under their key (cached answers name their generation), since the
     * most recent ones are also kept in this process.
     */
    async getBytes(parts: string[]): Promise<Buffer | undefined> {
      const name = key(...parts);
      const remembered = recent.get(name);
      const value = remembered ?? (await safely(() => redis.getBuffer(name))) ?? undefined;
      metrics.cacheRequests.inc({ result: value ? "hit" : "miss" });
      if (value && !remembered) recent.set(name, value);
      return value;
    },
    async setText(parts: string[], value: string, ttlSeconds: number) {
      const name = key(...parts);
      recent.set(name, Buffer.from(value));
      await safely(() => redis.set(name, value, "EX", ttlSeconds));
    },
    async getJson<T>(parts: string[]): Promise<T | undefined> {
      const value = await this.getBytes(parts);
      return value === undefined ? undefined : (JSON.parse(value.toString()) as T);
    },
    setJson(parts: string[], value: unknown, ttlSeconds: number) {
      return this.setText(parts, JSON.stringify(value), ttlSeconds);
    },

    /**
     * Takes `count` tokens from a key's bucket: how many it got, and how long until the next one when fewer.
     * Undefined while Redis is unreachable: the caller lets requests through (fail open).
     */
    async takeTokens(keyId: string, count: number, rate: number, burst: number) {
      const answer = await safely(() =>
        redis.eval(TAKE_TOKENS, 1, key("ratelimit", keyId), rate, burst, count),
      );
      if (answer === undefined) {
        metrics.rateLimitFailOpen.inc(count);
        return undefined;
      }
      const [granted, waitMs] = answer as [number, number];
      return { granted, waitMs };
    },

    close: () => redis.quit().catch(() => redis.disconnect()),
  };
}

export type Cache = ReturnType<typeof createCache>;
