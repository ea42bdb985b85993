import type { DeadLetter } from "../ingest/pipeline";
import type { Kind } from "../kinds";
import { type Envelope, viaValues } from "../record";

/** What the archive reads from Kafka: a kind's envelopes and the dead letters, each with its event time. */

const isTime = (value: unknown) => typeof value === "string" && Number.isFinite(Date.parse(value));

/**
 * An envelope of the kind, checked field by field: the gateway validated it before writing it, and a parse of
 * the whole schema per record was most of what the archive spent besides encoding.
 */
function envelopeOf(value: unknown, kind: string): Envelope | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const record = value as Partial<Record<keyof Envelope, unknown>>;
  const valid =
    typeof record.id === "string" &&
    record.kind === kind &&
    typeof record.sourceId === "string" &&
    typeof record.ts === "string" &&
    isTime(record.receivedAt) &&
    viaValues.includes(record.via as Envelope["via"]) &&
    (record.origin === undefined || typeof record.origin === "string") &&
    typeof record.data === "object" &&
    record.data !== null &&
    !Array.isArray(record.data);
  return valid ? (value as Envelope) : undefined;
}

function deadLetterOf(value: unknown): DeadLetter | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const letter = value as Partial<Record<keyof DeadLetter, unknown>>;
  // Every column a dead-letter file requires, so that no letter can make a file fail to encode.
  const valid =
    typeof letter.id === "string" &&
    (letter.kind === null || typeof letter.kind === "string") &&
    viaValues.includes(letter.via as DeadLetter["via"]) &&
    (letter.origin === undefined || typeof letter.origin === "string") &&
    isTime(letter.receivedAt) &&
    typeof letter.reason === "string" &&
    typeof letter.raw === "string" &&
    Array.isArray(letter.errors);
  return valid ? (value as DeadLetter) : undefined;
}

/** A record of a kind topic (or, without a kind, of the dead-letter topic) and its event time; undefined when unreadable. */
export function archivedRecord(kind: Kind | undefined, value: string) {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return undefined;
  }
  const row = kind ? envelopeOf(parsed, kind.name) : deadLetterOf(parsed);
  const time = row ? Date.parse("ts" in row ? row.ts : row.receivedAt) : Number.NaN;
  return row && Number.isFinite(time) ? { row, time } : undefined;
}
