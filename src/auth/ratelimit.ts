import type { Cache } from "../cache/redis";

/**
 * Per-key rate limits in Redis without a Redis round trip per request: while one look-up of a key is in
 * flight, the key's next requests queue and the following look-up takes their tokens all at once (the same
 * group commit as the Kafka publisher). Resolves to 0 when the request may go, to the milliseconds to wait
 * when the bucket is empty, and to undefined when Redis cannot say (the request goes: limits fail open).
 */
export function createRateLimiter(cache: Cache, rate: number, burst: number) {
  const keys = new Map<string, { waiting: ((wait: number | undefined) => void)[]; busy: boolean }>();

  async function drain(
    keyId: string,
    state: { waiting: ((wait: number | undefined) => void)[]; busy: boolean },
  ) {
    state.busy = true;
    while (state.waiting.length > 0) {
      const batch = state.waiting.splice(0);
      const answer = await cache.takeTokens(keyId, batch.length, rate, burst);
      for (const [i, resolve] of batch.entries()) {
        resolve(answer === undefined ? undefined : i < answer.granted ? 0 : answer.waitMs);
      }
    }
    state.busy = false;
    keys.delete(keyId);
  }

  return function take(keyId: string): Promise<number | undefined> {
    return new Promise((resolve) => {
      let state = keys.get(keyId);
      if (!state) {
        state = { waiting: [], busy: false };
        keys.set(keyId, state);
      }
      state.waiting.push(resolve);
      if (!state.busy) void drain(keyId, state);
    });
  };
}
