import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Config } from "../config";
import { kindTopic } from "../kafka/client";
import { type Kind, kinds } from "../kinds";
import { problemResponses } from "../problem";
import { security } from "./auth";
import type { AppRouteHandler } from "./types";

const KindSchema = z
  .object({
    name: z.string().openapi({ example: "sensors" }),
    title: z
      .string()
      .openapi({ description: "The OpenAPI component of one record.", example: "SensorReading" }),
    description: z.string(),
    sourceField: z
      .string()
      .openapi({ description: "The field naming a record's source.", example: "deviceId" }),
    paths: z.object({
      records: z.string().openapi({ description: "POST ingests, GET lists raw records." }),
      aggregates: z.string(),
      latest: z.string(),
    }),
    mqttTopic: z.string().openapi({ example: "sluice/v1/sensors/{deviceId}" }),
    kafkaTopic: z.string().openapi({ example: "sluice.sensors" }),
    metrics: z.array(
      z.object({
        name: z.string(),
        path: z.string().openapi({ description: "Where the number is in a record's data, dotted." }),
        unit: z.string(),
        summary: z.enum(["sum", "avg"]).openapi({
          description: "The statistic that sums a bucket up: totals for counts, averages for measurements.",
        }),
      }),
    ),
    derived: z.array(z.object({ name: z.string(), description: z.string(), unit: z.string() })).openapi({
      description: "Values every aggregate bucket carries beside its metrics, computed from their sums.",
    }),
    group: z
      .object({ path: z.string(), label: z.string() })
      .nullable()
      .openapi({ description: "The field that groups sources in charts (a city, an airline), or null." }),
    formats: z
      .array(z.object({ title: z.string(), description: z.string() }))
      .openapi({ description: "Other input shapes POST and MQTT accept, such as an upstream API's own." }),
  })
  .openapi("Kind");

const kindsRoute = createRoute({
  method: "get",
  path: "/v1/kinds",
  security,
  tags: ["kinds"],
  summary: "The kinds of record Sluice takes, and how to send and read each (any valid key)",
  responses: {
    200: {
      description: "Every registered kind.",
      content: { "application/json": { schema: z.object({ items: z.array(KindSchema) }).openapi("Kinds") } },
    },
    ...problemResponses(401, 406, 429),
  },
});

function describe(kind: Kind, config: Config): z.infer<typeof KindSchema> {
  const base = `/v1/${kind.name}`;
  return {
    name: kind.name,
    title: kind.title,
    description: kind.description,
    sourceField: kind.sourceField,
    paths: {
      records: `${base}/${kind.resource}`,
      aggregates: `${base}/aggregates`,
      latest: `${base}/latest`,
    },
    mqttTopic: `${config.MQTT_TOPIC_PREFIX}/${kind.name}/{${kind.sourceField}}`,
    kafkaTopic: kindTopic(config.KAFKA_TOPIC_PREFIX, kind.name),
    metrics: kind.metrics.map(({ name, path, unit, summary }) => ({
      name,
      path: path.join("."),
      unit,
      summary,
    })),
    derived: Object.entries(kind.derived).map(([name, { description, unit }]) => ({
      name,
      description,
      unit,
    })),
    group: kind.group ? { path: kind.group.path.join("."), label: kind.group.label } : null,
    formats: kind.alternate ? [{ title: kind.alternate.title, description: kind.alternate.description }] : [],
  };
}

export function registerKinds(app: OpenAPIHono, deps: { config: Config }) {
  const items = kinds.map((kind) => describe(kind, deps.config));
  const handler: AppRouteHandler<typeof kindsRoute> = (c) => c.json({ items }, 200);
  app.openapi(kindsRoute, handler);
}
