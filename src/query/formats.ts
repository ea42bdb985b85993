import { toCsv } from "../csv";
import type { Kind } from "../kinds";
import { fieldPaths, valueAt } from "../kinds/fields";
import type { StoredRecord } from "../record";
import type { Bucket, BucketItem } from "./buckets";

/** The formats every read endpoint answers in, chosen by the Accept header. */
export type Format = "json" | "csv";

export const contentTypes: Record<Format, string> = {
  json: "application/json",
  csv: "text/csv; charset=utf-8",
};

/** Raw records as CSV: the envelope's fields, then every field of the kind as a dotted column. */
export function recordsCsv(kind: Kind, records: StoredRecord[]): string {
  const paths = fieldPaths(kind.fields);
  const header = [
    "id",
    "sourceId",
    "ts",
    "receivedAt",
    "via",
    "flags",
    ...paths.map((path) => path.join(".")),
  ];
  const rows = records.map((record) => [
    record.id,
    record.sourceId,
    record.ts,
    record.receivedAt,
    record.via,
    record.flags,
    ...paths.map((path) => valueAt(record.data, path)),
  ]);
  return toCsv(header, rows);
}

/** What an aggregate answer holds besides its buckets. */
export interface AggregateAnswer {
  bucket: Bucket;
  from: Date;
  to: Date;
  bySource: boolean;
  metrics: readonly string[];
  items: BucketItem[];
}

const statistics = ["count", "sum", "min", "max", "avg"] as const;

export function renderAggregates(kind: Kind, answer: AggregateAnswer, format: Format): string {
  if (format === "json") {
    return JSON.stringify({
      bucket: answer.bucket,
      from: answer.from.toISOString(),
      to: answer.to.toISOString(),
      items: answer.items.map(({ derived, ...item }) => ({ ...item, ...derived })),
    });
  }
  const derived = Object.keys(kind.derived);
  const bySource = answer.bySource ? ["sourceId"] : [];
  const header = [
    "bucketStart",
    ...bySource,
    "count",
    ...answer.metrics.flatMap((metric) => statistics.map((stat) => `${metric}.${stat}`)),
    ...derived,
  ];
  const rows = answer.items.map((item) => [
    item.bucketStart,
    ...(answer.bySource ? [item.sourceId] : []),
    item.count,
    ...answer.metrics.flatMap((metric) => statistics.map((stat) => item.metrics[metric]?.[stat])),
    ...derived.map((name) => item.derived[name]),
  ]);
  return toCsv(header, rows);
}
