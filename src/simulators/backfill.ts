import { findKind, type Kind } from "../kinds";
import { MAX_SOURCES } from "../routes/query.routes";
import type { Payload } from "./send";
import type { Device, Simulator } from "./simulator";

/**
 * What makes a backfill repeatable: the same devices (a fixed seed unless one is given), readings on a fixed
 * grid, and ids derived from the reading, so that running it again stores nothing twice (the sink is idempotent
 * on id); and what makes it resume: a device's readings up to its newest stored record (live ones have ids of
 * their own) are not sent again.
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

/** What the gateway has stored of a kind's sources: the time of each one's newest record. */
export interface StoredNewest {
  /** Asks the gateway about the sources not asked about yet, so that `of` knows them. */
  learn(kind: Kind, sourceIds: Iterable<string>): Promise<void>;
  /** The newest stored record's time (epoch ms); undefined when none is, or the gateway could not say. */
  of(kind: Kind, sourceId: string): number | undefined;
}

/**
 * The newest stored record per source, from `GET /v1/<kind>/latest` with the simulator's key, each source asked
 * once: what was stored before the backfill reached it. When the gateway cannot say (a key without read scope,
 * an error), the kind is backfilled over its whole window, and `warn` says so once.
 */
export function storedNewest(
  baseUrl: string,
  apiKey: string | undefined,
  warn: (line: string) => void = (line) => console.error(line),
): StoredNewest {
  /** Per kind, every source asked about: its newest record's time, or undefined when it has none. */
  const asked = new Map<string, Map<string, number | undefined>>();
  const unanswered = new Set<string>();

  async function latest(kind: Kind, sourceIds: string[]) {
    const response = await fetch(
      `${baseUrl}/v1/${kind.name}/latest?${kind.sourceField}=${sourceIds.join(",")}`,
      { headers: apiKey ? { authorization: `Bearer ${apiKey}` } : {}, signal: AbortSignal.timeout(10_000) },
    ).catch((error: Error) => {
      throw new Error(`failed: ${error.message}`);
    });
    if (response.status !== 200) {
      const problem = (await response.json().catch(() => ({}))) as { detail?: string };
      throw new Error(`answered ${response.status}${problem.detail ? `: ${problem.detail}` : ""}`);
    }
    return ((await response.json()) as { items: { sourceId: string; ts: string }[] }).items;
  }

  return {
    async learn(kind, sourceIds) {
      const stored = asked.get(kind.name) ?? new Map<string, number | undefined>();
      asked.set(kind.name, stored);
      const unknown = [...new Set(sourceIds)].filter((sourceId) => !stored.has(sourceId));
      for (let i = 0; i < unknown.length && !unanswered.has(kind.name); i += MAX_SOURCES) {
        const group = unknown.slice(i, i + MAX_SOURCES);
        try {
          const items = await latest(kind, group);
          for (const sourceId of group) stored.set(sourceId, undefined);
          for (const item of items) stored.set(item.sourceId, Date.parse(item.ts));
        } catch (error) {
          unanswered.add(kind.name);
          warn(
            `backfill: cannot see what is stored of ${kind.name} (GET /v1/${kind.name}/latest ${(error as Error).message}), ` +
              "so its whole window is written, not only what follows each device's newest record",
          );
        }
      }
    },
    of: (kind, sourceId) => asked.get(kind.name)?.get(sourceId),
  };
}

export interface BackfillRun {
  fleets: { simulator: Simulator; devices: Device[] }[];
  spanMs: number;
  /** The moment the backfill reaches (epoch ms). */
  until: number;
  stored: StoredNewest;
  /** Makes and drops a reading of the device at `at`, so that its next reading counts from then. */
  prime(simulator: Simulator, device: Device, at: number): void;
  payload(simulator: Simulator, device: Device, at: number): Payload;
  dispatch(simulator: Simulator, payloads: Payload[]): Promise<void>;
  stopped(): boolean;
}

/**
 * History, oldest first, on each kind's grid: every device reports at its interval, in requests of 500. A
 * device's readings up to its newest stored record are made, so that it carries on as it would have, but not
 * sent; the first one after that record counts from it (a store's visitors since then, not since the moment
 * before).
 */
export async function backfill(run: BackfillRun) {
  const { stored, prime } = run;
  /** A device whose newest stored record lies between two of its moments reported last at that record. */
  const resumeAfterStored = (simulator: Simulator, devices: Device[], previous: number, next: number) => {
    const kind = findKind(simulator.kind) as Kind;
    for (const device of devices) {
      const newest = stored.of(kind, device.sourceId);
      if (newest !== undefined && newest > previous && newest < next) prime(simulator, device, newest);
    }
  };
  for (const { simulator, devices } of run.fleets) {
    const kind = findKind(simulator.kind) as Kind;
    const times = backfillTimes(simulator.backfillEveryMinutes, run.spanMs, run.until);
    let previous = (times[0] ?? run.until) - simulator.backfillEveryMinutes * 60_000;
    for (const device of devices) prime(simulator, device, previous);
    for (const at of times) {
      for (let i = 0; i < devices.length && !run.stopped(); i += 500) {
        const group = devices.slice(i, i + 500);
        await stored.learn(
          kind,
          group.map((device) => device.sourceId),
        );
        resumeAfterStored(simulator, group, previous, at);
        const payloads = group.map((device) => run.payload(simulator, device, at));
        // An aircraft reports under a new flight id now and then.
        await stored.learn(
          kind,
          payloads.map(({ sourceId }) => sourceId),
        );
        const unstored = payloads.filter(({ sourceId }) => (stored.of(kind, sourceId) ?? -Infinity) < at);
        if (unstored.length > 0) await run.dispatch(simulator, unstored);
      }
      previous = at;
    }
    // Stored after the last moment (a run stopped a minute ago): the live part counts from there.
    resumeAfterStored(simulator, devices, previous, Date.now());
  }
}
