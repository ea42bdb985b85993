import { lt } from "drizzle-orm";
import type { Config } from "../config";
import { type Db, databaseError } from "../db/client";
import { kindTables } from "../db/schema";
import { kinds } from "../kinds";
import type { Logger } from "../log";

const HOUR = 3_600_000;

/** Deletes raw records older than RETENTION_DAYS and roll-ups older than ROLLUP_RETENTION_DAYS, hourly. */
export function startRetention(deps: { config: Config; db: Db; logger: Logger }) {
  const { config, db, logger } = deps;
  async function sweep() {
    const now = Date.now();
    const recordsBefore = new Date(now - config.RETENTION_DAYS * 86_400_000);
    const rollupsBefore = new Date(now - config.ROLLUP_RETENTION_DAYS * 86_400_000);
    for (const kind of kinds) {
      const { records, rollups } = kindTables(kind);
      try {
        const deleted = await db.delete(records).where(lt(records.ts, recordsBefore));
        const deletedRollups = await db.delete(rollups).where(lt(rollups.bucketStart, rollupsBefore));
        if (deleted.count + deletedRollups.count > 0) {
          logger.info("retention", {
            kind: kind.name,
            records: deleted.count,
            rollups: deletedRollups.count,
          });
        }
      } catch (error) {
        logger.warn("retention sweep failed; next hour then", {
          kind: kind.name,
          error: databaseError(error),
        });
      }
    }
  }
  const first = setTimeout(sweep, 10_000);
  const timer = setInterval(sweep, HOUR);
  return {
    sweep,
    stop() {
      clearTimeout(first);
      clearInterval(timer);
    },
  };
}
