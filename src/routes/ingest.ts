import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Config } from "../config";
import { decodeBody, MalformedBody, mediaTypeOf, mediaTypes } from "../ingest/decode";
import type { DeadLetterReason, Ingest } from "../ingest/pipeline";
import { KafkaUnavailable } from "../kafka/publisher";
import { type Kind, kinds } from "../kinds";
import { FieldErrorSchema, ProblemError, type ProblemStatus, problemResponses } from "../problem";

const IngestResultSchema = z
  .object({
    accepted: z.number().int().openapi({ description: "Records now in Kafka." }),
    rejected: z
      .array(z.object({ index: z.number().int(), errors: z.array(FieldErrorSchema.omit({ index: true })) }))
      .openapi({
        description: "Invalid records, by position in the batch; each is in the dead-letter topic.",
      }),
    ids: z.array(z.string()).openapi({ description: "The accepted records' ids, in batch order." }),
  })
  .openapi("IngestResult");

class BodyTooLarge extends Error {}

/** Reads at most `limit` bytes of the body, whether or not the client said how long it is. */
async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("content-length") ?? Number.NaN);
  if (declared > limit)
    throw new BodyTooLarge(`body of ${declared} bytes exceeds the limit of ${limit} bytes`);
  if (!request.body) return new Uint8Array();
  if (Number.isFinite(declared)) {
    const bytes = new Uint8Array(await request.arrayBuffer());
    if (bytes.length > limit) throw new BodyTooLarge(`body exceeds the limit of ${limit} bytes`);
    return bytes;
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of request.body) {
    size += chunk.length;
    if (size > limit) throw new BodyTooLarge(`body exceeds the limit of ${limit} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

function refs(kind: Kind) {
  const one = [{ $ref: `#/components/schemas/${kind.title}` }];
  if (kind.alternate) one.push({ $ref: `#/components/schemas/${kind.alternate.title}` });
  return { oneOf: [...one, { type: "array" as const, items: { oneOf: one } }] };
}

function ingestRoute(kind: Kind, config: Config) {
  return createRoute({
    method: "post",
    path: `/v1/${kind.name}/${kind.resource}`,
    tags: [kind.name],
    summary: `Ingest ${kind.title} records`,
    description:
      `${kind.description} Source field: \`${kind.sourceField}\`. One record, a JSON array, NDJSON, or CSV with a ` +
      `header row (dotted names for nested fields). At most ${config.MAX_BATCH_ITEMS} records and ` +
      `${config.MAX_BODY_BYTES} bytes. Answered 202 once every valid record is in Kafka (acks=all); invalid ` +
      "records are listed in `rejected` and written to the dead-letter topic.",
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
        description: "Every valid record is in Kafka.",
        content: { "application/json": { schema: IngestResultSchema } },
      },
      ...problemResponses(400, 413, 415, 422, 503),
    },
  });
}

export function registerIngest(app: OpenAPIHono, deps: { config: Config; ingest: Ingest }) {
  const { config, ingest } = deps;
  for (const kind of kinds) {
    app.openAPIRegistry.register(kind.title, kind.schema);
    if (kind.alternate) app.openAPIRegistry.register(kind.alternate.title, kind.alternate.schema);

    app.openapi(ingestRoute(kind, config), async (c) => {
      const contentType = c.req.header("content-type") ?? "";
      const options = { via: "http" as const, origin: contentType };
      const refuse = async (status: ProblemStatus, reason: DeadLetterReason, detail: string, raw = "") => {
        await ingest.refused(kind, reason, detail, raw, options);
        return new ProblemError(status, reason, detail);
      };

      let bytes: Uint8Array;
      try {
        bytes = await readBody(c.req.raw, config.MAX_BODY_BYTES);
      } catch (error) {
        if (error instanceof BodyTooLarge) throw await refuse(413, "body-too-large", error.message);
        throw error;
      }
      let text: string;
      try {
        text = strictUtf8.decode(bytes);
      } catch {
        throw await refuse(
          400,
          "malformed-body",
          "body is not valid UTF-8",
          Buffer.from(bytes).toString("latin1"),
        );
      }
      const mediaType = mediaTypeOf(contentType);
      if (!mediaType) {
        const detail = `content type '${contentType}' is not one of ${Object.values(mediaTypes).join(", ")}`;
        throw await refuse(415, "unsupported-media-type", detail, text);
      }
      let items: ReturnType<typeof decodeBody>;
      try {
        items = decodeBody(text, mediaType, kind);
      } catch (error) {
        if (error instanceof MalformedBody) throw await refuse(400, "malformed-body", error.message, text);
        throw error;
      }
      if (items.length === 0) throw await refuse(400, "empty-body", "the body holds no records", text);
      if (items.length > config.MAX_BATCH_ITEMS) {
        const detail = `${items.length} records exceed the batch limit of ${config.MAX_BATCH_ITEMS}`;
        throw await refuse(413, "batch-too-large", detail, text);
      }

      let outcome: Awaited<ReturnType<Ingest["records"]>>;
      try {
        outcome = await ingest.records(kind, items, { ...options, origin: mediaType });
      } catch (error) {
        if (!(error instanceof KafkaUnavailable)) throw error;
        throw new ProblemError(
          503,
          "kafka-unavailable",
          `records not accepted: ${error.message}`,
          undefined,
          {
            "retry-after": String(config.RETRY_AFTER_SECONDS),
          },
        );
      }
      const { envelopes, rejections } = outcome;
      if (envelopes.length === 0) {
        const errors = rejections.flatMap(({ index, errors }) =>
          errors.map((error) => ({ index, ...error })),
        );
        const detail = `none of the ${items.length} records is valid`;
        throw new ProblemError(422, "invalid-records", detail, errors);
      }
      return c.json(
        {
          accepted: envelopes.length,
          rejected: rejections.map(({ index, errors }) => ({ index, errors })),
          ids: envelopes.map((envelope) => envelope.id),
        },
        202,
      );
    });
  }
}
