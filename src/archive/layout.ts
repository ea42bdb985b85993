/**
 * Where a record goes in the archive: `<folder>/dt=YYYY-MM-DD/hour=HH/<partition>-<firstOffset>-<lastOffset>.parquet`,
 * the folder being the kind (or `deadletter`) and the hour that of the record's event time (a dead letter's
 * receipt), in UTC. The offsets name the Kafka records a file holds, so a file is never written twice under
 * two names.
 */

export const deadLetterFolder = "deadletter";

/** The Kafka header marking a record that `replay` republished from the archive, which need not archive it again. */
export const replayedHeader = "sluice-replayed";

const HOUR = 3_600_000;
const hourPaths = new Map<number, string>();

/** `dt=2026-12-01/hour=08` of a time in epoch milliseconds. */
export function hourPath(at: number): string {
  const hour = Math.floor(at / HOUR);
  let path = hourPaths.get(hour);
  if (path === undefined) {
    const time = new Date(hour * HOUR).toISOString();
    path = `dt=${time.slice(0, 10)}/hour=${time.slice(11, 13)}`;
    if (hourPaths.size >= 10_000) hourPaths.clear();
    hourPaths.set(hour, path);
  }
  return path;
}

export function objectKey(folder: string, hour: string, partition: number, first: number, last: number) {
  return `${folder}/${hour}/${partition}-${first}-${last}.parquet`;
}

export interface ArchivedFile {
  key: string;
  folder: string;
  /** The first moment of the file's hour. */
  hour: Date;
  partition: number;
  first: bigint;
  last: bigint;
}

const keyPattern = /^([a-z][a-z0-9-]*)\/dt=(\d{4}-\d{2}-\d{2})\/hour=(\d{2})\/(\d+)-(\d+)-(\d+)\.parquet$/;

/** What a key names, or undefined for an object that is not an archive file. */
export function parseKey(key: string): ArchivedFile | undefined {
  const match = keyPattern.exec(key);
  if (!match) return undefined;
  const [, folder = "", day = "", hour = "", partition = "", first = "", last = ""] = match;
  return {
    key,
    folder,
    hour: new Date(`${day}T${hour}:00:00Z`),
    partition: Number(partition),
    first: BigInt(first),
    last: BigInt(last),
  };
}

/** The day folders (`<folder>/dt=YYYY-MM-DD/`) from the day of `since` to the day of `until`, inclusive. */
export function dayPrefixes(folder: string, since: Date, until: Date): string[] {
  const prefixes: string[] = [];
  const day = new Date(since.toISOString().slice(0, 10));
  for (; day <= until; day.setUTCDate(day.getUTCDate() + 1)) {
    prefixes.push(`${folder}/dt=${day.toISOString().slice(0, 10)}/`);
  }
  return prefixes;
}
