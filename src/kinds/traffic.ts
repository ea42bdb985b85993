import { z } from "@hono/zod-openapi";
import { defineKind, sourceIdSchema } from "./define";

const count = z.number().int().min(0).max(1_000_000);

export const traffic = defineKind({
  name: "traffic",
  resource: "counts",
  title: "TrafficCount",
  description: "A store's foot-traffic count for an interval.",
  sourceField: "storeId",
  fields: {
    sensorId: sourceIdSchema.optional(),
    visitorsIn: count,
    visitorsOut: count.optional(),
    transactions: count.optional(),
    revenue: z.number().min(0).max(1e10).optional(),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, "an ISO 4217 code such as EUR")
      .default("EUR"),
  },
  metrics: ["visitorsIn", "visitorsOut", "transactions", "revenue"],
});
