import type { Cache } from "../cache/redis";

interface KeyState {
  /** Tokens this process holds for the key, taken from Redis ahead of need. */
  leased: number;
  /** Until when the lease may be spent; past it, unused tokens are dropped (the bucket has refilled anyway). */
  leasedUntil: number;
  /** Tokens handed out from the current lease: a lease used up asks for twice as many next time. */
  used: number;
  waiting: ((wait: number | undefined) => void)[];
  busy: boolean;
}

/**
 * Per-key rate limits kept in Redis without a Redis round trip per request. A process takes tokens from the
 * key's bucket in small leases (about twice what the last lease and the requests queued since used, at most
 * a twentieth of a second's worth, spent within 100 ms) and hands them out locally; while a look-up is in
 * flight, the key's next requests queue and the following look-up takes what they need at once. Gateways
 * share each bucket, so the limit holds across all of them, give or take one lease each. Returns 0 when the
 * request may go, the milliseconds to wait when the bucket is empty, and undefined when Redis cannot say
 * (the request goes: limits fail open).
 */
export function createRateLimiter(cache: Cache, rate: number, burst: number) {
  const maxLease = Math.max(0, Math.min(Math.floor(rate / 20), burst));
  const keys = new Map<string, KeyState>();

  async function refill(keyId: string, state: KeyState) {
    state.busy = true;
    while (state.waiting.length > 0) {
      const batch = state.waiting.splice(0);
      const lease = Math.min(maxLease, 2 * (batch.length + state.used) + 16);
      state.used = 0;
      const answer = await cache.takeTokens(keyId, batch.length + lease, rate, burst);
      const granted = answer?.granted ?? batch.length;
      for (const [i, resolve] of batch.entries()) {
        resolve(answer === undefined ? undefined : i < granted ? 0 : answer.waitMs);
      }
      state.leased = answer === undefined ? 0 : Math.max(0, granted - batch.length);
      state.leasedUntil = Date.now() + 100;
    }
    state.busy = false;
  }

  return function take(keyId: string): number | Promise<number | undefined> {
    let state = keys.get(keyId);
    if (!state) {
      if (keys.size > 10_000) keys.clear();
      state = { leased: 0, leasedUntil: 0, used: 0, waiting: [], busy: false };
      keys.set(keyId, state);
    }
    if (state.leased > 0 && state.leasedUntil > Date.now() && !state.busy) {
      state.leased--;
      state.used++;
      return 0;
    }
    const pending = state;
    return new Promise((resolve) => {
      pending.waiting.push(resolve);
      if (!pending.busy) void refill(keyId, pending);
    });
  };
}
