import { z } from "@hono/zod-openapi";
import { kindTables } from "../db/schema";
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
      .optional()
      .transform((code) => code ?? "EUR")
      .openapi({ description: "ISO 4217; EUR when absent." }),
  },
  metrics: ["visitorsIn", "visitorsOut", "transactions", "revenue"],
  // Counts are per reporting interval (a few minutes): thousands at once is a counter glitch.
  plausible: {
    visitorsIn: [0, 2000],
    visitorsOut: [0, 2000],
    transactions: [0, 1000],
    revenue: [0, 100_000],
  },
  derived: {
    conversionRate: ({ transactions, visitorsIn }) => (visitorsIn ? (transactions ?? 0) / visitorsIn : null),
  },
});

/** Its tables, exported for drizzle-kit. */
export const { records: trafficRecords, rollups: trafficRollups } = kindTables(traffic);
