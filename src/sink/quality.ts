import type { Kind } from "../kinds";
import { valueAt } from "../kinds/fields";
import type { Envelope } from "../record";

/**
 * Flags records that are valid but implausible: a metric outside its plausible range (a counter spike), or
 * a value repeated `stuck.after` times in a row by one source (a stuck sensor). The run lengths live in
 * memory: after a restart a stuck sensor is caught again within `after` records.
 */
export function createQualityCheck() {
  const runs = new Map<string, { value: unknown; length: number }>();

  return function flagsOf(kind: Kind, envelope: Envelope): string[] {
    const flags: string[] = [];
    for (const { name, path } of kind.metrics) {
      const value = valueAt(envelope.data, path);
      if (typeof value !== "number") continue;
      const range = kind.plausible[name];
      if (range && (value < range[0] || value > range[1])) flags.push(`${name}:out-of-range`);
      if (!kind.stuck?.metrics.includes(name)) continue;
      const key = `${kind.name}\u0000${envelope.sourceId}\u0000${name}`;
      const run = runs.get(key);
      const length = run && run.value === value ? run.length + 1 : 1;
      if (runs.size > 200_000) runs.clear();
      runs.set(key, { value, length });
      if (length >= kind.stuck.after) flags.push(`${name}:stuck`);
    }
    return flags;
  };
}
