import { timingSafeEqual } from "node:crypto";
import { en, Faker } from "@faker-js/faker";

export type ApiName = "openweather" | "aviationstack" | "store";

export interface ApiServerOptions {
  /** 0 (the default) takes a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  hostname?: string;
  /** When set, every request must carry it (OpenWeather `appid`, AviationStack `access_key`, store Bearer). */
  apiKey?: string;
  /** Requests a key may make in any 60 s; beyond it 429 with Retry-After. */
  perMinute?: number;
  /** Requests a key may make in a calendar month (UTC); beyond it the API's quota error. */
  perMonth?: number;
  /** The simulated world's seed (default 1): the same seed gives the same stations, fleet and stores. */
  seed?: number;
  /** Stations (default 10, one per city), aircraft (default 40) or stores (default 10). */
  devices?: number;
  /** The current time, for tests that move it; default the clock. */
  now?: () => Date | number;
}

export interface ApiStats {
  /** Every request the server answered, whatever its status. */
  requests: number;
  /** Answers by HTTP status. */
  byStatus: Record<number, number>;
}

/** Why a request is refused before the API looks at it. */
export type Refusal =
  | { reason: "missing-key" | "invalid-key" }
  | { reason: "rate"; retryAfter: number }
  | { reason: "quota"; retryAfter: number };

/** What one API contributes: its path, where its credential travels, its error bodies and its answers. */
export interface ApiDefinition {
  path: string;
  credential(request: Request, url: URL): string | null;
  refuse(refusal: Refusal): Response;
  notFound(): Response;
  answer(request: Request, url: URL, now: number): Response;
}

export const MINUTE = 60_000;

export function json(status: number, body: unknown, headers: Record<string, string> = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}

/** A strong entity tag of a body. */
export const etagOf = (text: string) => `"${Bun.hash(text).toString(36)}"`;

/** Whether an If-None-Match header names the entity tag (weak comparison, as RFC 9110 asks for GET). */
export function matchesEtag(header: string | null, etag: string) {
  if (!header) return false;
  const bare = (tag: string) => tag.trim().replace(/^W\//, "");
  return header.split(",").some((tag) => tag.trim() === "*" || bare(tag) === bare(etag));
}

export const notModified = (headers: Record<string, string>) => new Response(null, { status: 304, headers });

/** A number from a set of keys, the same at every call: seeds a reading so the same moment reads the same. */
export const hashNumber = (...keys: (string | number)[]) =>
  Number(BigInt(Bun.hash(keys.join(":"))) % 2n ** 31n);

export function seededFaker(seed: number) {
  const faker = new Faker({ locale: [en] });
  faker.seed(seed);
  return faker;
}

/** Compares a presented credential with the expected one without leaking where they differ. */
export function sameKey(presented: string, expected: string) {
  const [a, b] = [new Bun.CryptoHasher("sha256"), new Bun.CryptoHasher("sha256")];
  return timingSafeEqual(a.update(presented).digest(), b.update(expected).digest());
}

/** Seconds from `now` until the first moment of the next UTC month. */
export function secondsToNextMonth(now: number) {
  const at = new Date(now);
  return Math.max(1, Math.ceil((Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + 1, 1) - now) / 1000));
}

/**
 * The per-minute rate (a sliding 60 s window) and the monthly quota of the one key. Only requests let through
 * count: a refused one uses neither.
 */
export function createLimits(perMinute?: number, perMonth?: number) {
  let recent: number[] = [];
  let month = "";
  let used = 0;
  return {
    take(now: number): Refusal | null {
      const thisMonth = new Date(now).toISOString().slice(0, 7);
      if (thisMonth !== month) [month, used] = [thisMonth, 0];
      if (perMonth !== undefined && used >= perMonth) {
        return { reason: "quota", retryAfter: secondsToNextMonth(now) };
      }
      if (perMinute !== undefined) {
        // Time may move backwards in tests: only what lies within the last minute counts.
        recent = recent.filter((at) => at > now - MINUTE && at <= now);
        if (recent.length >= perMinute) {
          const oldest = recent.reduce((a, b) => Math.min(a, b), now);
          return { reason: "rate", retryAfter: Math.max(1, Math.ceil((oldest + MINUTE - now) / 1000)) };
        }
        recent.push(now);
      }
      used++;
      return null;
    },
  };
}

export function integerParam(value: string | null, fallback: number, min: number, max: number) {
  if (value === null || value === "") return fallback;
  const n = Number(value);
  return /^\d+$/.test(value) && n >= min && n <= max ? n : undefined;
}
