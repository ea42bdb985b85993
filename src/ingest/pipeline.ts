import type { Config } from "../config";
import { deadLetterTopic, kindTopic } from "../kafka/client";
import type { OutgoingRecord, Publisher } from "../kafka/publisher";
import type { Kind } from "../kinds";
import type { Logger } from "../log";
import type { FieldError, Via } from "../record";
import type { DecodedItem, RefusalReason } from "./decode";
import { type Rejection, type ValidationContext, validateItems } from "./validate";

const MAX_RAW_CHARS = 65_536;

/** Why a dead letter was written: what decoding or validation refused, or a spool entry that cannot be trusted. */
export type DeadLetterReason = RefusalReason | "corrupt-spool-entry";

/** The spool in front of the Publisher (SPOOL_DIR): it says how many of the records it kept instead of Kafka. */
export interface SpoolingDelivery {
  publish(records: OutgoingRecord[]): Promise<{ spooled: number }>;
}

/** The value of every record in the dead-letter topic: enough to see what a device sent and why it was refused. */
export interface DeadLetter {
  id: string;
  kind: string | null;
  via: Via;
  receivedAt: string;
  reason: DeadLetterReason;
  errors: (FieldError & { index?: number })[];
  raw: string;
  /** Where it came from: the HTTP content type or the MQTT topic. */
  origin?: string;
}

export interface IngestOptions {
  via: Via;
  sourceId?: string;
  origin?: string;
}

function rawOf(item: DecodedItem): string {
  const raw = item.raw ?? JSON.stringify("value" in item ? item.value : null);
  return raw.length > MAX_RAW_CHARS ? raw.slice(0, MAX_RAW_CHARS) : raw;
}

function sourceIdOf(kind: Kind | undefined, item: DecodedItem): string | null {
  const value = "value" in item ? item.value : undefined;
  if (!kind || typeof value !== "object" || value === null) return null;
  const sourceId = (value as Record<string, unknown>)[kind.sourceField];
  return typeof sourceId === "string" ? sourceId.slice(0, 128) : null;
}

/** What the dashboard shows of a dead letter: no more of the raw input than a glance needs. */
export type RecentDeadLetter = Omit<DeadLetter, "raw" | "id"> & { raw: string };

const RECENT = 50;

/** The one path every record takes, whatever the transport: validate, envelope, publish, dead-letter. */
/** Records are published through the Publisher (Kafka only) or the spool; either rejects with KafkaUnavailable. */
export function createIngest(deps: {
  config: Config;
  publisher: Pick<Publisher, "publish"> | SpoolingDelivery;
  logger: Logger;
}) {
  const prefix = deps.config.KAFKA_TOPIC_PREFIX;
  const limits = {
    maxFutureMs: deps.config.TS_MAX_FUTURE_SECONDS * 1000,
    maxAgeMs: deps.config.TS_MAX_AGE_DAYS * 86_400_000,
  };

  const recent: RecentDeadLetter[] = [];

  function deadLetterRecord(
    kind: Kind | undefined,
    fields: Omit<DeadLetter, "id" | "kind" | "via" | "receivedAt" | "origin">,
    options: IngestOptions,
    receivedAt: Date,
    key: string | null,
  ): OutgoingRecord {
    const letter: DeadLetter = {
      id: Bun.randomUUIDv7(),
      kind: kind?.name ?? null,
      via: options.via,
      receivedAt: receivedAt.toISOString(),
      ...fields,
      origin: options.origin,
    };
    const { id: _id, raw, ...summary } = letter;
    recent.unshift({ ...summary, errors: summary.errors.slice(0, 3), raw: raw.slice(0, 200) });
    recent.length = Math.min(recent.length, RECENT);
    const counts = { kind: letter.kind ?? "unknown", transport: options.via, reason: fields.reason };
    return { topic: deadLetterTopic(prefix), key, value: JSON.stringify(letter), counts };
  }

  function rejectionRecord(kind: Kind, rejection: Rejection, options: IngestOptions, receivedAt: Date) {
    return deadLetterRecord(
      kind,
      {
        reason: "invalid-record",
        errors: rejection.errors.map((error) => ({ index: rejection.index, ...error })),
        raw: rawOf(rejection.item),
      },
      options,
      receivedAt,
      options.sourceId ?? sourceIdOf(kind, rejection.item),
    );
  }

  function refusal(
    kind: Kind | undefined,
    reason: DeadLetterReason,
    message: string,
    raw: string,
    options: IngestOptions,
  ): OutgoingRecord {
    const errors = [{ path: "", message }];
    const fields = { reason, errors, raw: raw.slice(0, MAX_RAW_CHARS) };
    return deadLetterRecord(kind, fields, options, new Date(), options.sourceId ?? null);
  }

  /** Validates the records and builds what goes to Kafka: ids are fixed here, so a retry sends the same records. */
  function prepare(kind: Kind, items: DecodedItem[], options: IngestOptions) {
    const receivedAt = new Date();
    const context: ValidationContext = {
      ...limits,
      via: options.via,
      receivedAt,
      receivedAtIso: receivedAt.toISOString(),
      sourceId: options.sourceId,
      // A polled record names its connector; a pushed one's origin (content type, MQTT topic) is for dead letters.
      origin: options.via === "poll" ? options.origin : undefined,
    };
    const { envelopes, rejections } = validateItems(kind, items, context);
    const topic = kindTopic(prefix, kind.name);
    const counts = { kind: kind.name, transport: options.via };
    const outgoing: OutgoingRecord[] = envelopes.map((envelope) => ({
      topic,
      key: envelope.sourceId,
      value: JSON.stringify(envelope),
      counts,
    }));
    for (const rejection of rejections) outgoing.push(rejectionRecord(kind, rejection, options, receivedAt));
    return { envelopes, rejections, outgoing };
  }

  /** Resolves once Kafka or the spool has every record; `spooled` counts those the spool has. */
  async function deliver(records: OutgoingRecord[]) {
    const outcome = await deps.publisher.publish(records);
    return { spooled: outcome ? outcome.spooled : 0 };
  }

  /**
   * Publishes valid records to the kind's topic and invalid ones to the dead-letter topic in one group commit.
   * Resolves once Kafka (or the spool) has all of them, `spooled` counting the valid ones the spool has;
   * throws KafkaUnavailable otherwise, unless nothing was valid (the refusal stands whatever Kafka does).
   */
  async function publish(prepared: ReturnType<typeof prepare>) {
    let spooled = 0;
    try {
      // The spool takes a call whole or not at all.
      if ((await deliver(prepared.outgoing)).spooled > 0) spooled = prepared.envelopes.length;
    } catch (error) {
      if (prepared.envelopes.length > 0) throw error;
      deps.logger.warn("dead-letter write failed", {
        error: (error as Error).message,
        records: prepared.rejections.length,
      });
    }
    return { ...prepared, spooled };
  }

  return {
    /** The latest dead letters this process wrote, newest first. */
    recent: () => recent,
    prepare,
    deliver,
    records: (kind: Kind, items: DecodedItem[], options: IngestOptions) =>
      publish(prepare(kind, items, options)),

    /** The dead letter for a whole message or body refused before it could be split into records. */
    refusal,

    /** Writes a refusal to the dead-letter topic; a failure is logged, never thrown (the refusal stands). */
    async refused(...args: Parameters<typeof refusal>) {
      await deliver([refusal(...args)]).catch((error: Error) => {
        deps.logger.warn("dead-letter write failed", { error: error.message, reason: args[1] });
      });
    },
  };
}

export type Ingest = ReturnType<typeof createIngest>;
