import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import app from "../dashboard/app.js" with { type: "text" };
import chart from "../dashboard/chart.js" with { type: "text" };
import page from "../dashboard/page.htm" with { type: "text" };
import panels from "../dashboard/panels.js" with { type: "text" };
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
  request: {
    query: z.strictObject({ limit: z.coerce.number().int().min(1).max(50).default(50) }),
  },
  description: "Kept in memory, at most 50. The dead-letter topic has them all, with the whole raw input.",
  responses: {
    200: {
      description: "Newest first.",
      content: { "application/json": { schema: RecentDeadLettersSchema } },
    },
    ...problemResponses(400, 401, 403, 406, 429),
  },
});

const scripts: Record<string, string> = { "app.js": app, "chart.js": chart, "panels.js": panels };

/** The live dashboard: one page and its scripts, no build step, reading only the public API with the user's key. */
export function registerDashboard(router: OpenAPIHono, deps: { ingest: Ingest }) {
  router.get("/dashboard", (c) => c.html(page));
  router.get("/dashboard/:script{[a-z]+\\.js}", (c) => {
    const script = scripts[c.req.param("script")];
    if (script === undefined) return c.notFound();
    return c.body(script, 200, { "content-type": "text/javascript; charset=utf-8" });
  });
  router.openapi(deadLettersRoute, (c) =>
    c.json({ items: deps.ingest.recent().slice(0, c.req.valid("query").limit) }, 200),
  );
}
