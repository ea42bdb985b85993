import { z } from "@hono/zod-openapi";
import { defineKind, sourceIdSchema, textSchema } from "./define";

const count = (unit: string) => z.number().int().min(0).max(1_000_000).describe(unit);

export const traffic = defineKind({
  name: "traffic",
  resource: "counts",
  title: "TrafficCount",
  description: "A store's foot-traffic count for the interval since its previous report.",
  sourceField: "storeId",
  fields: {
    sensorId: sourceIdSchema.optional(),
    city: textSchema(100)
      .optional()
      .openapi({ description: "The store's city: charts draw one line per city." }),
    visitorsIn: count("visitors"),
    visitorsOut: count("visitors").optional(),
    transactions: count("transactions").optional(),
    revenue: z.number().min(0).max(1e10).optional().describe("in the record's currency"),
    currency: z
      .string()
      .regex(/^[A-Z]{3}$/, "an ISO 4217 code such as EUR")
      .optional()
      .transform((code) => code ?? "EUR")
      .openapi({ description: "ISO 4217; EUR when absent." }),
  },
  metrics: {
    visitorsIn: { summary: "sum" },
    visitorsOut: { summary: "sum" },
    transactions: { summary: "sum" },
    revenue: { summary: "sum" },
  },
  // Counts are per reporting interval (a few minutes): thousands at once is a counter glitch.
  plausible: {
    visitorsIn: [0, 2000],
    visitorsOut: [0, 2000],
    transactions: [0, 1000],
    // Revenue has no bound: it is in the record's currency, and 100 000 is a busy quarter of an hour in XOF.
  },
  group: { path: "city", label: "city" },
  derived: {
    conversionRate: {
      description: "Transactions per visitor who came in.",
      unit: "ratio",
      compute: ({ transactions, visitorsIn }) => (visitorsIn ? transactions / visitorsIn : null),
    },
  },
  example: (at) => ({
    storeId: "paris-store-004",
    ts: at.toISOString(),
    sensorId: "paris-store-004-door-1",
    city: "Paris",
    visitorsIn: 42,
    visitorsOut: 37,
    transactions: 11,
    revenue: 386.4,
    currency: "EUR",
  }),
});
