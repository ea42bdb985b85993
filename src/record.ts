import { z } from "@hono/zod-openapi";

/**
 * The domain types every layer shares. This module imports nothing of Sluice's own, so that kinds, the
 * database, ingestion and the routes can all depend on it without depending on each other.
 */

/** How a record reached Sluice. */
export const viaValues = ["http", "mqtt", "poll"] as const;
export const viaSchema = z.enum(viaValues);
export type Via = z.infer<typeof viaSchema>;

export type JsonObject = Record<string, unknown>;

/** One error of one field: `location.lat`, `weather[0].description`, or empty for the record itself. */
export interface FieldError {
  path: string;
  message: string;
}

/** A record as it is stored and served: the Kafka envelope plus the sink's quality flags. */
export const recordSchema = z.object({
  id: z.string().openapi({ description: "The client's idempotency key, or a UUIDv7." }),
  kind: z.string(),
  sourceId: z.string(),
  ts: z.iso.datetime().openapi({ description: "Measurement time, ISO 8601 in UTC." }),
  receivedAt: z.iso.datetime().openapi({ description: "When Sluice received it, ISO 8601 in UTC." }),
  via: viaSchema,
  origin: z
    .string()
    .optional()
    .openapi({ description: "The connector that polled it; absent for pushed records." }),
  data: z.record(z.string(), z.unknown()).openapi({ description: "The validated, normalised payload." }),
  flags: z.array(z.string()).openapi({
    description: "Quality flags (`<metric>:out-of-range`, `<metric>:stuck`); empty when plausible.",
  }),
});
export type StoredRecord = z.infer<typeof recordSchema>;

/** The value of every record in a kind topic: the record before the sink has judged its quality. */
export const envelopeSchema = recordSchema.omit({ flags: true });
export type Envelope = z.infer<typeof envelopeSchema>;
