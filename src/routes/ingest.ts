import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Config } from "../config";
import { acceptedEncodings, readBody } from "../ingest/body";
import { type DecodedItem, decodePayload, mediaTypes, Refused } from "../ingest/decode";
import type { Ingest } from "../ingest/pipeline";
import { KafkaUnavailable } from "../kafka/publisher";
import { type Kind, kinds } from "../kinds";
import { logContext } from "../log";
import { FieldErrorSchema, ProblemError, problemResponses, unavailable } from "../problem";
import { SpoolRefused } from "../spool/store";
import { security } from "./auth";

const IngestResultSchema = z
  .object({
    accepted: z
      .number()
      .int()
      .openapi({ description: "Records now in Kafka, or in the gateway's spool (see `spooled`)." }),
    rejected: z
      .array(z.object({ index: z.number().int(), errors: z.array(FieldErrorSchema.omit({ index: true })) }))
      .openapi({
        description: "Invalid records, by position in the batch; each is in the dead-letter topic.",
      }),
    ids: z.array(z.string()).openapi({ description: "The accepted records' ids, in batch order." }),
    spooled: z
      .number()
      .int()
      .optional()
      .openapi({
        description:
          "Only where the gateway has a spool (SPOOL_DIR): how many of the accepted records are safe in its local " +
          "spool rather than in Kafka yet (0 or all of them); it forwards them once Kafka is back. Also in the " +
          "`Sluice-Spooled` header.",
      }),
  })
  .openapi("IngestResult");

function refs(kind: Kind) {
  const one = [{ $ref: `#/components/schemas/${kind.title}` }];
  if (kind.alternate) one.push({ $ref: `#/components/schemas/${kind.alternate.title}` });
  return { oneOf: [...one, { type: "array" as const, items: { oneOf: one } }] };
}

function ingestRoute(kind: Kind, config: Config) {
  return createRoute({
    method: "post",
    path: `/v1/${kind.name}/${kind.resource}`,
    security,
    tags: [kind.name],
    summary: `Ingest ${kind.title} records`,
    description:
      `${kind.description} Source field: \`${kind.sourceField}\`. One record, a JSON array, NDJSON, or CSV with a ` +
      `header row (dotted names for nested fields). At most ${config.MAX_BATCH_ITEMS} records and ` +
      `${config.MAX_BODY_BYTES} bytes, decoded: the body may come with \`Content-Encoding: ${acceptedEncodings}\`. ` +
      `A record's \`ts\` may be at most ${config.TS_MAX_FUTURE_SECONDS} s ahead of the time it is received and at ` +
      `most ${config.TS_MAX_AGE_DAYS} days old; without \`id\` it gets a UUIDv7, with one it is stored once however ` +
      "often it is sent. Answered 202 once every valid record is in Kafka (acks=all), or, where the gateway has " +
      "a spool, committed to it (`spooled`); invalid records are listed in `rejected` and written to the " +
      "dead-letter topic.",
    request: {
      body: {
        required: true,
        content: {
          [mediaTypes.json]: { schema: refs(kind) },
          [mediaTypes.ndjson]: { schema: { type: "string", description: "One JSON record per line." } },
          [mediaTypes.csv]: {
            schema: { type: "string", description: "A header row, then one record per row." },
          },
        },
      },
    },
    responses: {
      202: {
        description: "Every valid record is in Kafka, or in the gateway's spool (`spooled`).",
        headers: {
          "Sluice-Spooled": {
            description: "Where the gateway has a spool: how many of the accepted records it holds.",
            schema: { type: "integer" },
          },
        },
        content: { "application/json": { schema: IngestResultSchema } },
      },
      ...problemResponses(400, 401, 403, 413, 415, 422, 429, 503),
    },
  });
}

export function registerIngest(app: OpenAPIHono, deps: { config: Config; ingest: Ingest }) {
  const { config, ingest } = deps;
  const limits = { maxBodyBytes: config.MAX_BODY_BYTES, maxBatchItems: config.MAX_BATCH_ITEMS };
  const spoolOn = config.SPOOL_DIR !== undefined;
  for (const kind of kinds) {
    app.openAPIRegistry.register(kind.title, kind.schema);
    if (kind.alternate) app.openAPIRegistry.register(kind.alternate.title, kind.alternate.schema);

    app.openapi(ingestRoute(kind, config), async (c) => {
      const contentType = c.req.header("content-type");
      const options = { via: "http" as const, origin: contentType };
      let items: DecodedItem[];
      try {
        const bytes = await readBody(c.req.raw, config.MAX_BODY_BYTES);
        items = decodePayload(bytes, contentType, kind, limits);
      } catch (error) {
        if (!(error instanceof Refused)) throw error;
        await ingest.refused(kind, error.reason, error.message, error.raw, options);
        throw new ProblemError(error.status, error.reason, error.message, undefined, error.headers);
      }

      let outcome: Awaited<ReturnType<Ingest["records"]>>;
      try {
        outcome = await ingest.records(kind, items, options);
      } catch (error) {
        if (!(error instanceof KafkaUnavailable)) throw error;
        const detail = `records not accepted: ${error.message}`;
        const slug = error instanceof SpoolRefused ? error.slug : "kafka-unavailable";
        throw unavailable(slug, detail, config.RETRY_AFTER_SECONDS);
      }
      const { envelopes, rejections, spooled } = outcome;
      const context = logContext.getStore();
      if (context) Object.assign(context, { accepted: envelopes.length, rejected: rejections.length });
      if (envelopes.length === 0) {
        const errors = rejections.flatMap(({ index, errors }) =>
          errors.map((error) => ({ index, ...error })),
        );
        const detail = `none of the ${items.length} records is valid`;
        throw new ProblemError(422, "invalid-records", detail, errors);
      }
      const result = {
        accepted: envelopes.length,
        rejected: rejections.map(({ index, errors }) => ({ index, errors })),
        ids: envelopes.map((envelope) => envelope.id),
      };
      if (!spoolOn) return c.json(result, 202);
      return c.json({ ...result, spooled }, 202, { "sluice-spooled": String(spooled) });
    });
  }
}
