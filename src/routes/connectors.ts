import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Connectors } from "../connectors/runner";
import { problemResponses } from "../problem";
import { security } from "./auth";
import type { AppRouteHandler } from "./types";

const time = (description: string) => z.string().nullable().openapi({ description });

const ConnectorSchema = z
  .object({
    name: z.string(),
    type: z.enum(["openweather", "aviationstack", "http"]),
    kind: z.string(),
    every: z.string().openapi({ description: "A duration (10m) or a cron expression (0 * * * *)." }),
    state: z.enum(["idle", "polling", "waiting-quota", "standby"]).openapi({
      description: "standby: another instance of the deployment holds this connector and polls it.",
    }),
    nextRun: time("The next slot."),
    lastRun: time("When the last poll started."),
    lastSuccess: time("When a poll last completed."),
    lastError: time("Why the last poll failed; null once one succeeds.").openapi({ example: null }),
    lastRecords: z.number().int().openapi({ description: "Records the last successful poll sent to Kafka." }),
    quota: z.array(
      z.object({
        period: z.enum(["minute", "day", "month"]),
        limit: z.number().int(),
        used: z.number().int(),
        left: z.number().int(),
        resetsAt: z.string(),
      }),
    ),
  })
  .openapi("Connector");

const connectorsRoute = createRoute({
  method: "get",
  path: "/v1/connectors",
  security,
  tags: ["connectors"],
  summary: "The pull connectors this process runs, and the state of each (needs read:* or admin)",
  responses: {
    200: {
      description:
        "Each connector of CONNECTORS_FILE; empty when this process does not run the connectors role.",
      content: {
        "application/json": { schema: z.object({ items: z.array(ConnectorSchema) }).openapi("Connectors") },
      },
    },
    ...problemResponses(401, 403, 406, 429),
  },
});

export function registerConnectors(app: OpenAPIHono, deps: { connectors?: Connectors }) {
  const handler: AppRouteHandler<typeof connectorsRoute> = async (c) =>
    c.json({ items: (await deps.connectors?.statuses()) ?? [] }, 200);
  app.openapi(connectorsRoute, handler);
}
