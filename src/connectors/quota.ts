import { sql } from "drizzle-orm";
import type { Db } from "../db/client";

export type Period = "minute" | "day" | "month";

/** The UTC window a moment falls in, and when it ends. */
export function windowOf(period: Period, at: Date): { start: Date; end: Date } {
  const y = at.getUTCFullYear();
  const m = at.getUTCMonth();
  if (period === "month") return { start: new Date(Date.UTC(y, m, 1)), end: new Date(Date.UTC(y, m + 1, 1)) };
  const size = period === "day" ? 86_400_000 : 60_000;
  const start = Math.floor(at.getTime() / size) * size;
  return { start: new Date(start), end: new Date(start + size) };
}

export type Limits = Partial<Record<Period, number>>;

export interface Usage {
  period: Period;
  limit: number;
  used: number;
  left: number;
  resetsAt: string;
}

/**
 * A connector's calls per minute, day and month, counted in PostgreSQL so that a restart does not give the
 * quota back. A call is taken from every window at once, or from none.
 */
export function createQuota(db: Db, connector: string, limits: Limits) {
  const periods = (Object.keys(limits) as Period[]).filter((period) => limits[period] !== undefined);

  return {
    /** Takes one call; when a window is spent, says which and when it ends instead. */
    async take(
      at = new Date(),
    ): Promise<{ granted: true } | { granted: false; period: Period; until: Date }> {
      if (periods.length === 0) return { granted: true };
      try {
        await db.transaction(async (tx) => {
          for (const period of periods) {
            const window = windowOf(period, at);
            const rows = await tx.execute(sql`
              insert into connector_usage as u (connector, period, window_start, calls)
              values (${connector}, ${period}, ${window.start.toISOString()}::timestamptz, 1)
              on conflict (connector, period) do update set
                calls = case when u.window_start = excluded.window_start then u.calls + 1 else 1 end,
                window_start = excluded.window_start
              where u.window_start <> excluded.window_start or u.calls < ${limits[period]}
              returning calls`);
            if (rows.length === 0) throw new Spent(period, window.end);
          }
        });
        return { granted: true };
      } catch (error) {
        if (error instanceof Spent) return { granted: false, period: error.period, until: error.until };
        throw error;
      }
    },

    async usage(at = new Date()): Promise<Usage[]> {
      const rows = await db.execute<{ period: Period; window_start: Date | string; calls: number }>(
        sql`select period, window_start, calls from connector_usage where connector = ${connector}`,
      );
      return periods.map((period) => {
        const window = windowOf(period, at);
        const row = rows.find((candidate) => candidate.period === period);
        const current = row && new Date(row.window_start).getTime() === window.start.getTime();
        const used = current ? row.calls : 0;
        const limit = limits[period] as number;
        return { period, limit, used, left: Math.max(0, limit - used), resetsAt: window.end.toISOString() };
      });
    },
  };
}

class Spent extends Error {
  constructor(
    readonly period: Period,
    readonly until: Date,
  ) {
    super(`${period} quota spent`);
  }
}

export type Quota = ReturnType<typeof createQuota>;
