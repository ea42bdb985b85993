import { randomBytes, timingSafeEqual } from "node:crypto";
import { and, eq, isNull } from "drizzle-orm";
import type { Db } from "../db/client";
import { apiKeys } from "../db/schema";
import { kindNames } from "../kinds";

export type Action = "ingest" | "read";

/** `ingest:<kind>`, `ingest:*`, `read:<kind>`, `read:*`, `admin`. */
export const scopes = [
  "admin",
  ...(["ingest", "read"] as const).flatMap((action) => [
    `${action}:*`,
    ...kindNames.map((kind) => `${action}:${kind}`),
  ]),
];

export function parseScopes(list: string): string[] {
  const chosen = list
    .split(",")
    .map((scope) => scope.trim())
    .filter(Boolean);
  const unknown = chosen.filter((scope) => !scopes.includes(scope));
  if (chosen.length === 0 || unknown.length > 0) {
    throw new Error(
      `scopes must be a comma-separated list of ${scopes.join(", ")}${unknown.length ? `; not ${unknown.join(", ")}` : ""}`,
    );
  }
  return chosen;
}

export interface Principal {
  /** Safe to log and to count rate limits by: never the key itself. */
  keyId: string;
  scopes: readonly string[];
}

export function allows(principal: Principal, action: Action, kind: string) {
  return principal.scopes.some(
    (scope) => scope === "admin" || scope === `${action}:*` || scope === `${action}:${kind}`,
  );
}

export const hashKey = (key: string) => new Bun.CryptoHasher("sha256").update(key).digest("hex");

export async function createKey(db: Db, keyScopes: string[], name?: string) {
  const key = `sk_${randomBytes(32).toString("base64url")}`;
  const id = `key_${randomBytes(6).toString("hex")}`;
  await db.insert(apiKeys).values({ id, name, hash: hashKey(key), scopes: keyScopes });
  return { id, key };
}

export function listKeys(db: Db) {
  return db
    .select({
      id: apiKeys.id,
      name: apiKeys.name,
      scopes: apiKeys.scopes,
      createdAt: apiKeys.createdAt,
      revokedAt: apiKeys.revokedAt,
    })
    .from(apiKeys)
    .orderBy(apiKeys.createdAt);
}

export async function revokeKey(db: Db, id: string) {
  const revoked = await db
    .update(apiKeys)
    .set({ revokedAt: new Date() })
    .where(and(eq(apiKeys.id, id), isNull(apiKeys.revokedAt)))
    .returning({ id: apiKeys.id });
  return revoked.length > 0;
}

/**
 * Verifies keys: the static ones from API_KEYS (full access), then managed keys in PostgreSQL. Answers,
 * good or bad, are cached for `cacheMs`, so a revoked key stops working within that time. While PostgreSQL
 * is unreachable a key seen before keeps its last answer, so that ingestion goes on; an unknown key throws.
 */
export function createAuthenticator(deps: { db: Db; staticKeys: string[]; cacheMs: number }) {
  const statics = deps.staticKeys.map((key, index) => ({ hash: Buffer.from(hashKey(key), "hex"), index }));
  const cache = new Map<string, { principal: Principal | undefined; until: number }>();
  // Keys already verified, by the key itself: the hash and comparisons run once per key, not per request.
  const known = new Map<string, Principal>();

  return async function verify(key: string): Promise<Principal | undefined> {
    const remembered = known.get(key);
    if (remembered) return remembered;
    const hash = hashKey(key);
    const digest = Buffer.from(hash, "hex");
    const match = statics.find((entry) => timingSafeEqual(entry.hash, digest));
    if (match) {
      const principal = { keyId: `static-${match.index + 1}`, scopes: ["admin"] };
      if (known.size > 1000) known.clear();
      known.set(key, principal);
      return principal;
    }
    const cached = cache.get(hash);
    if (cached && cached.until > Date.now()) return cached.principal;
    let row: { id: string; scopes: string[] } | undefined;
    try {
      [row] = await deps.db
        .select({ id: apiKeys.id, scopes: apiKeys.scopes })
        .from(apiKeys)
        .where(and(eq(apiKeys.hash, hash), isNull(apiKeys.revokedAt)));
    } catch (error) {
      if (cached) return cached.principal;
      throw error;
    }
    const principal = row ? { keyId: row.id, scopes: row.scopes } : undefined;
    if (cache.size > 10_000) cache.clear();
    cache.set(hash, { principal, until: Date.now() + deps.cacheMs });
    return principal;
  };
}

export type Authenticate = ReturnType<typeof createAuthenticator>;
