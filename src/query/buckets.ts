import type { BucketRow, MetricSums } from "../db/queries";
import type { RollupWidth } from "../db/schema";
import type { Kind } from "../kinds";
import { invalidParameter } from "../problem";

export const buckets = {
  "1m": 60_000,
  "5m": 300_000,
  "15m": 900_000,
  "1h": 3_600_000,
  "1d": 86_400_000,
} as const;
export type Bucket = keyof typeof buckets;

/** The roll-up width a bucket is summed from: the widest one that divides it. */
export function widthFor(bucket: Bucket): RollupWidth {
  return bucket === "1d" ? "1d" : bucket === "1h" ? "1h" : "1m";
}

/**
 * The range an answer covers: `from` rounded down and `to` up to bucket boundaries, by default the last 24 hours
 * (30 days of 1d buckets); refused when it holds more buckets than one answer may.
 */
export function alignRange(
  bucket: Bucket,
  requested: { from?: Date; to?: Date },
  now: number,
  maxBuckets: number,
): { from: Date; to: Date } {
  const step = buckets[bucket];
  const to = Math.ceil((requested.to?.getTime() ?? now) / step) * step;
  const defaultSpan = bucket === "1d" ? 30 * 86_400_000 : 86_400_000;
  const from = Math.floor((requested.from?.getTime() ?? to - defaultSpan) / step) * step;
  const count = (to - from) / step;
  if (count > maxBuckets) {
    throw invalidParameter(
      "from",
      `the range holds ${count} buckets of ${bucket}, more than the ${maxBuckets} one answer may hold: ` +
        "narrow from/to or choose a wider bucket",
    );
  }
  return { from: new Date(from), to: new Date(to) };
}

export interface MetricStats extends MetricSums {
  avg: number | null;
}

/** A bucket as served: the chosen metrics' statistics and the kind's derived values. */
export type BucketItem = Omit<BucketRow, "metrics"> & {
  metrics: Record<string, MetricStats>;
  derived: Record<string, number | null>;
};

/** Buckets as served: the chosen metrics with their averages, and the kind's derived values from all sums. */
export function shapeBuckets(kind: Kind, rows: BucketRow[], metrics: readonly string[]): BucketItem[] {
  return rows.map((row) => {
    const sums = Object.fromEntries(kind.metrics.map(({ name }) => [name, row.metrics[name]?.sum ?? 0]));
    const derived = Object.fromEntries(
      Object.entries(kind.derived).map(([name, { compute }]) => [name, compute(sums)]),
    );
    const stats = Object.fromEntries(
      metrics.map((metric) => {
        const sum = row.metrics[metric] ?? { count: 0, sum: null, min: null, max: null };
        return [metric, { ...sum, avg: sum.count > 0 && sum.sum !== null ? sum.sum / sum.count : null }];
      }),
    );
    return { ...row, metrics: stats, derived };
  });
}
