import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import page from "../dashboard/page.htm" with { type: "text" };
import type { Ingest } from "../ingest/pipeline";
import { FieldErrorSchema, problemResponses } from "../problem";
import { viaSchema } from "../record";
import { security } from "./auth";

const RecentDeadLettersSchema = z
  .object({
    items: z.array(
      z.object({
        kind: z.string().nullable(),
        via: viaSchema,
        receivedAt: z.string(),
        reason: z.string(),
        errors: z.array(FieldErrorSchema),
        raw: z.string().openapi({ description: "The first 200 characters of what was refused." }),
        origin: z.string().optional(),
      }),
    ),
  })
  .openapi("RecentDeadLetters");

const deadLettersRoute = createRoute({
  method: "get",
  path: "/v1/deadletters",
  tags: ["dead letters"],
  security,
  summary: "The latest dead letters this gateway wrote, newest first (needs read:* or admin)",
  description: "Kept in memory, at most 50. The dead-letter topic has them all, with the whole raw input.",
  responses: {
    200: {
      description: "Newest first.",
      content: { "application/json": { schema: RecentDeadLettersSchema } },
    },
    ...problemResponses(401, 403, 429),
  },
});

/** The live dashboard: one page, no build step, reading only the public API with the user's key. */
export function registerDashboard(app: OpenAPIHono, deps: { ingest: Ingest }) {
  app.get("/dashboard", (c) => c.html(page));
  app.openapi(deadLettersRoute, (c) => c.json({ items: deps.ingest.recent() }, 200));
}
