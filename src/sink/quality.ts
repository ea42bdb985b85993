import type { Envelope } from "../ingest/validate";
import type { Kind } from "../kinds";

/**
 * Flags records that are valid but implausible: a metric outside its plausible range (a counter spike), or
 * a value repeated `stuck.after` times in a row by one source (a stuck sensor). The run lengths live in
 * memory: after a restart a stuck sensor is caught again within `after` records.
 */
export function createQualityCheck() {
  const runs = new Map<string, { value: unknown; length: number }>();

  return function flagsOf(kind: Kind, envelope: Envelope): string[] {
    const flags: string[] = [];
    for (const [metric, range] of Object.entries(kind.plausible ?? {})) {
      const value = envelope.data[metric];
      if (typeof value === "number" && range && (value < range[0] || value > range[1])) {
        flags.push(`${metric}:out-of-range`);
      }
    }
    for (const metric of kind.stuck?.metrics ?? []) {
      const value = envelope.data[metric];
      if (value === undefined) continue;
      const key = `${kind.name}\u0000${envelope.sourceId}\u0000${metric}`;
      const run = runs.get(key);
      const length = run && run.value === value ? run.length + 1 : 1;
      if (runs.size > 200_000) runs.clear();
      runs.set(key, { value, length });
      if (length >= (kind.stuck?.after ?? Number.POSITIVE_INFINITY)) flags.push(`${metric}:stuck`);
    }
    return flags;
  };
}
