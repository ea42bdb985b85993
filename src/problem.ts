import { z } from "@hono/zod-openapi";
import type { FieldError } from "./record";

export const FieldErrorSchema = z
  .object({
    index: z.number().int().optional().openapi({ description: "Position of the record in the batch." }),
    path: z
      .string()
      .openapi({ description: "Dotted path of the field; empty for the record or body itself." }),
    message: z.string(),
  })
  .openapi("FieldError");

export const ProblemSchema = z
  .object({
    type: z.string().openapi({ example: "urn:sluice:problem:invalid-records" }),
    title: z.string(),
    status: z.number().int(),
    detail: z.string().optional(),
    errors: z.array(FieldErrorSchema).optional(),
  })
  .openapi("Problem", { description: "RFC 9457 problem details." });

export type Problem = z.infer<typeof ProblemSchema>;

const titles = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
} as const;

export type ProblemStatus = keyof typeof titles;

/** Thrown anywhere in a handler; the app's error handler answers it as problem+json. */
export class ProblemError extends Error {
  constructor(
    readonly status: ProblemStatus,
    readonly slug: string,
    detail: string,
    readonly errors?: (FieldError & { index?: number })[],
    readonly headers: Record<string, string> = {},
  ) {
    super(detail);
  }

  toJSON(): Problem {
    return {
      type: `urn:sluice:problem:${this.slug}`,
      title: titles[this.status],
      status: this.status,
      detail: this.message,
      ...(this.errors ? { errors: this.errors } : {}),
    };
  }

  toResponse(): Response {
    return new Response(JSON.stringify(this.toJSON()), {
      status: this.status,
      headers: { "content-type": "application/problem+json", ...this.headers },
    });
  }
}

/** A query parameter the handler refused after the schema took it (a range too wide, a foreign cursor). */
export function invalidParameter(path: string, message: string) {
  return new ProblemError(400, "invalid-parameters", `invalid ${path}: ${message}`, [{ path, message }]);
}

/** A dependency (Kafka, PostgreSQL) that cannot serve now: 503 with Retry-After, the same everywhere. */
export function unavailable(slug: string, detail: string, retryAfterSeconds: number) {
  return new ProblemError(503, slug, detail, undefined, { "retry-after": String(retryAfterSeconds) });
}

const descriptions: Record<ProblemStatus, string> = {
  400: "The request is malformed: the body cannot be read, or a parameter is invalid (named in `errors`).",
  401: "No API key, or not a valid one: send `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
  403: "The key is valid but lacks the scope this endpoint needs (`ingest:<kind>` or `read:<kind>`).",
  404: "No such resource.",
  405: "The path exists, but not with this method; `Allow` lists the methods it takes.",
  406: "None of the media types this endpoint answers in is acceptable to the `Accept` header.",
  413: "The body or the batch is larger than the configured limit.",
  415: "The content type is not application/json, application/x-ndjson or text/csv, or the content encoding is not gzip or deflate (`Accept-Encoding` lists them).",
  422: "No record in the body is valid; `errors` lists each error with its record index and field path.",
  429: "The key's rate limit is exhausted; `detail` names it, `Retry-After` says when to come back.",
  500: "An unexpected error.",
  503: "A dependency (Kafka, PostgreSQL) cannot serve the request now; retry after `Retry-After` seconds.",
};

const retryAfter = {
  "Retry-After": { description: "Seconds to wait before retrying.", schema: { type: "integer" as const } },
};

/** The error responses of a route, from one table, so the spec lists exactly what the handler returns. */
export function problemResponses<S extends ProblemStatus>(...statuses: S[]) {
  return Object.fromEntries(
    statuses.map((status) => [
      status,
      {
        description: descriptions[status],
        content: { "application/problem+json": { schema: ProblemSchema } },
        ...(status === 503 || status === 429 ? { headers: retryAfter } : {}),
      },
    ]),
  ) as Record<
    S,
    { description: string; content: { "application/problem+json": { schema: typeof ProblemSchema } } }
  >;
}
