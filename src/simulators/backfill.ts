/**
 * What makes a backfill repeatable: the same devices (a fixed seed unless one is given), readings on a fixed
 * grid, and ids derived from the reading, so that running it again stores nothing twice (the sink is idempotent
 * on id).
 */

/** The seed of a backfill run without --seed: the same devices, with the same traits, every time. */
export const BACKFILL_SEED = 1;

/** The moments of a backfill: multiples of the kind's interval (UTC), from `span` ago up to a minute ago. */
export function backfillTimes(everyMinutes: number, spanMs: number, now: number): number[] {
  const step = everyMinutes * 60_000;
  const times: number[] = [];
  for (let at = Math.ceil((now - spanMs) / step) * step; at < now - 60_000; at += step) times.push(at);
  return times;
}

// The namespace of the simulators' name-based ids (RFC 9562 UUIDv5).
const NAMESPACE = Buffer.from("5e0c2a1b7d6f4c3e9a8b1f2d3c4e5a6b", "hex");

/** A UUIDv5 of the kind, the source id and the reading's time: the same reading always gets the same id. */
export function backfillId(kind: string, sourceId: string, at: number): string {
  const hash = new Bun.CryptoHasher("sha1").update(NAMESPACE).update(`${kind}/${sourceId}/${at}`).digest();
  const bytes = hash.subarray(0, 16);
  bytes[6] = ((bytes[6] as number) & 0x0f) | 0x50;
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = bytes.toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
