import { z } from "@hono/zod-openapi";
import { kindTables } from "../db/schema";
import { defineKind, textSchema } from "./define";

const metric = (min: number, max: number, unit: string) =>
  z.number().min(min).max(max).optional().describe(unit);

const metrics = ["temperature", "humidity", "pm25", "pm10", "no2", "co2", "battery"] as const;

export const sensors = defineKind({
  name: "sensors",
  resource: "readings",
  title: "SensorReading",
  description: "An IoT sensor reading: at least one metric.",
  sourceField: "deviceId",
  fields: {
    temperature: metric(-100, 150, "°C"),
    humidity: metric(0, 100, "% relative humidity"),
    pm25: metric(0, 5000, "µg/m³"),
    pm10: metric(0, 5000, "µg/m³"),
    no2: metric(0, 5000, "µg/m³"),
    co2: metric(0, 100_000, "ppm"),
    battery: metric(0, 100, "%"),
    location: z
      .strictObject({
        lat: z.number().min(-90).max(90),
        lon: z.number().min(-180).max(180),
        city: textSchema(100).optional(),
      })
      .optional(),
  },
  metrics,
  plausible: { temperature: [-40, 60], pm25: [0, 500], pm10: [0, 600], no2: [0, 400], co2: [300, 5000] },
  stuck: { metrics: ["temperature", "humidity"], after: 10 },
  check: (reading, ctx) => {
    if (metrics.every((name) => reading[name] === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: `at least one metric is required: ${metrics.join(", ")}`,
      });
    }
  },
});

/** Its tables, exported for drizzle-kit. */
export const { records: sensorsRecords, rollups: sensorsRollups } = kindTables(sensors);
