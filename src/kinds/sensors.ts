import { z } from "@hono/zod-openapi";
import { defineKind, textSchema } from "./define";

const metric = (min: number, max: number, unit: string) =>
  z.number().min(min).max(max).optional().describe(unit);

const metrics = { temperature: {}, humidity: {}, pm25: {}, pm10: {}, no2: {}, co2: {}, battery: {} };
const metricNames = Object.keys(metrics) as (keyof typeof metrics)[];

export const sensors = defineKind({
  name: "sensors",
  resource: "readings",
  title: "SensorReading",
  description: "An IoT sensor reading.",
  sourceField: "deviceId",
  fields: {
    temperature: metric(-100, 150, "°C"),
    humidity: metric(0, 100, "% RH"),
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
  group: { path: "location.city", label: "city" },
  rule: {
    description: `At least one metric is required: ${metricNames.join(", ")}.`,
    check: (reading, ctx) => {
      if (metricNames.every((name) => reading[name] === undefined)) {
        ctx.addIssue({
          code: "custom",
          path: [],
          message: `at least one metric is required: ${metricNames.join(", ")}`,
        });
      }
    },
  },
  example: (at) => ({
    deviceId: "casablanca-aq-001",
    ts: at.toISOString(),
    temperature: 21.4,
    humidity: 63.5,
    pm25: 12.5,
    pm10: 20.1,
    no2: 18.2,
    co2: 640,
    battery: 87.5,
    location: { lat: 33.5731, lon: -7.5898, city: "Casablanca" },
  }),
});
