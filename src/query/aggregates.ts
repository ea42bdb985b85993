import type { Cache } from "../cache/redis";
import type { Config } from "../config";
import type { Db } from "../db/client";
import { aggregateRollups, type BucketRow } from "../db/queries";
import type { Kind } from "../kinds";
import { alignRange, type Bucket, buckets, shapeBuckets, widthFor } from "./buckets";
import { contentTypes, type Format, renderAggregates } from "./formats";

/** An aggregate as a client asks for it. */
export interface AggregateRequest {
  bucket: Bucket;
  from?: Date;
  to?: Date;
  /** Only these sources; every source when absent. */
  sourceIds?: readonly string[];
  bySource: boolean;
  includeSuspect: boolean;
  /** The metrics to serve; every metric of the kind when absent. */
  metrics?: readonly string[];
  format: Format;
}

/** Everything that decides the rows PostgreSQL sums: cached rows are keyed by it. */
interface RowsDescription {
  kind: string;
  bucket: Bucket;
  from: string;
  to: string;
  sourceIds: readonly string[] | null;
  bySource: boolean;
  includeSuspect: boolean;
  /** The metrics summed: all of them for a kind with derived values, which need every sum. */
  summed: readonly string[];
}

/** Everything that decides the bytes of an answer: cached answers are keyed by it. */
interface AnswerDescription extends RowsDescription {
  metrics: readonly string[];
  format: Format;
}

/**
 * Time buckets: the range aligned, the rows summed from the roll-ups, shaped and rendered. Buckets that ended at
 * least CACHE_CLOSED_AFTER_SECONDS ago come from the cache when it has them (keys hold the kind's generation,
 * which the sink bumps when older records arrive); later buckets are always read from PostgreSQL, so an open
 * bucket is never stale. An answer made only of closed buckets is cached whole, as served.
 */
export function createAggregates(deps: { db: Db; cache: Cache; config: Config }) {
  const { db, cache, config } = deps;

  function sum(kind: Kind, rows: RowsDescription, from: Date, to: Date): Promise<BucketRow[]> {
    const width = widthFor(rows.bucket);
    return aggregateRollups(db, kind, {
      from,
      to,
      sourceIds: rows.sourceIds ?? undefined,
      bySource: rows.bySource,
      includeSuspect: rows.includeSuspect,
      metrics: rows.summed,
      width,
      stepMs: width === rows.bucket ? undefined : buckets[rows.bucket],
    });
  }

  function render(kind: Kind, answer: AnswerDescription, rows: BucketRow[]): string {
    const items = shapeBuckets(kind, rows, answer.metrics);
    const { bucket, bySource, metrics, format } = answer;
    const range = { from: new Date(answer.from), to: new Date(answer.to) };
    return renderAggregates(kind, { bucket, ...range, bySource, metrics, items }, format);
  }

  async function answer(kind: Kind, answer: AnswerDescription): Promise<string | Buffer> {
    const from = new Date(answer.from);
    const to = new Date(answer.to);
    const step = buckets[answer.bucket];
    const closedBefore = Math.floor((Date.now() - config.CACHE_CLOSED_AFTER_SECONDS * 1000) / step) * step;
    const split = new Date(Math.max(from.getTime(), Math.min(to.getTime(), closedBefore)));
    if (split <= from) return render(kind, answer, await sum(kind, answer, from, to));

    const generation = await cache.generation(kind.name);
    const key = (part: string, description: RowsDescription) => [
      part,
      kind.name,
      generation ?? "",
      JSON.stringify(description),
    ];
    const ttl = config.CACHE_TTL_SECONDS;
    if (split.getTime() === to.getTime()) {
      const cached = generation !== undefined ? await cache.getBytes(key("answer", answer)) : undefined;
      if (cached !== undefined) return cached;
      const body = render(kind, answer, await sum(kind, answer, from, to));
      if (generation !== undefined) await cache.setText(key("answer", answer), body, ttl);
      return body;
    }
    // The closed buckets' rows: the answer's description without what only shapes the answer, ending at the split.
    const { metrics: _metrics, format: _format, ...rows } = answer;
    const closedRows: RowsDescription = { ...rows, to: split.toISOString() };
    let closed =
      generation !== undefined ? await cache.getJson<BucketRow[]>(key("rows", closedRows)) : undefined;
    if (!closed) {
      closed = await sum(kind, closedRows, from, split);
      if (generation !== undefined) await cache.setJson(key("rows", closedRows), closed, ttl);
    }
    return render(kind, answer, [...closed, ...(await sum(kind, answer, split, to))]);
  }

  return {
    /** The answer's body and content type; a range too wide is a 400 naming `from`. */
    async answer(kind: Kind, request: AggregateRequest) {
      const range = alignRange(request.bucket, request, Date.now(), config.AGGREGATE_MAX_BUCKETS);
      const metrics = request.metrics ?? kind.metrics.map((metric) => metric.name);
      const description: AnswerDescription = {
        kind: kind.name,
        bucket: request.bucket,
        from: range.from.toISOString(),
        to: range.to.toISOString(),
        sourceIds: request.sourceIds ?? null,
        bySource: request.bySource,
        includeSuspect: request.includeSuspect,
        summed: Object.keys(kind.derived).length > 0 ? kind.metrics.map((metric) => metric.name) : metrics,
        metrics,
        format: request.format,
      };
      return { body: await answer(kind, description), contentType: contentTypes[request.format] };
    },
  };
}

export type Aggregates = ReturnType<typeof createAggregates>;
