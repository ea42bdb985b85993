import { z } from "@hono/zod-openapi";
import { defineKind, textSchema } from "./define";
import { definedOnly } from "./fields";

const optionalNumber = (min: number, max: number, unit: string) =>
  z.number().min(min).max(max).optional().describe(unit);

/** Earth's air is never colder than 180 K nor hotter than 60 °C, so Kelvin and Celsius cannot be confused. */
const toCelsius = (value: number | undefined) =>
  value !== undefined && value > 150 ? Math.round((value - 273.15) * 100) / 100 : value;

const openWeatherDescription =
  "OpenWeather's current-weather response body (units standard or metric), normalised into a WeatherObservation.";

/** The body of OpenWeather's current-weather response (units standard or metric), as their API sends it. */
const openWeatherSchema = z
  .looseObject({
    coord: z.looseObject({ lat: z.number(), lon: z.number() }).optional(),
    weather: z.array(z.looseObject({ description: z.string().optional() })).optional(),
    main: z.looseObject({
      temp: z.number(),
      feels_like: z.number().optional(),
      pressure: z.number().optional(),
      humidity: z.number().optional(),
    }),
    wind: z.looseObject({ speed: z.number().optional(), deg: z.number().optional() }).optional(),
    clouds: z.looseObject({ all: z.number().optional() }).optional(),
    rain: z.looseObject({ "1h": z.number().optional(), "3h": z.number().optional() }).optional(),
    snow: z.looseObject({ "1h": z.number().optional(), "3h": z.number().optional() }).optional(),
    dt: z.number().int().describe("epoch seconds"),
    id: z.number().int().optional().describe("OpenWeather's city id"),
    name: z.string().optional(),
    stationId: z.string().optional().describe("Sluice's station id; defaults to owm-<id>"),
  })
  .transform((body) => {
    // What the body says, and no more: a 3-hour total is not an hourly one, and no value is not 0 mm.
    const total = (hours: "1h" | "3h") => {
      const [rain, snow] = [body.rain?.[hours], body.snow?.[hours]];
      return rain === undefined && snow === undefined ? undefined : (rain ?? 0) + (snow ?? 0);
    };
    const stationId = body.stationId ?? (body.id !== undefined ? `owm-${body.id}` : undefined);
    const observation = {
      id: stationId ? `${stationId}-${body.dt}` : undefined,
      stationId,
      ts: body.dt * 1000,
      temperature: toCelsius(body.main.temp),
      feelsLike: toCelsius(body.main.feels_like),
      humidity: body.main.humidity,
      pressure: body.main.pressure,
      windSpeed: body.wind?.speed,
      windDeg: body.wind?.deg,
      clouds: body.clouds?.all,
      precipitation: total("1h"),
      precipitation3h: total("3h"),
      conditions: body.weather?.[0]?.description,
      city: body.name || undefined,
      lat: body.coord?.lat,
      lon: body.coord?.lon,
    };
    return definedOnly(observation);
  })
  .openapi("OpenWeatherCurrent", { description: openWeatherDescription });

export const weather = defineKind({
  name: "weather",
  resource: "observations",
  title: "WeatherObservation",
  description: "A weather station's observation.",
  sourceField: "stationId",
  fields: {
    temperature: z.number().min(-100).max(70).describe("°C"),
    feelsLike: optionalNumber(-120, 90, "°C"),
    humidity: optionalNumber(0, 100, "%"),
    pressure: optionalNumber(800, 1100, "hPa"),
    windSpeed: optionalNumber(0, 120, "m/s"),
    windDeg: optionalNumber(0, 360, "degrees"),
    clouds: optionalNumber(0, 100, "% cover"),
    precipitation: optionalNumber(0, 500, "mm in the last hour"),
    precipitation3h: optionalNumber(0, 1500, "mm in the last 3 hours"),
    conditions: textSchema(200).optional(),
    city: textSchema(100).optional(),
    lat: optionalNumber(-90, 90, "degrees"),
    lon: optionalNumber(-180, 180, "degrees"),
  },
  metrics: {
    temperature: {},
    feelsLike: {},
    humidity: {},
    pressure: {},
    windSpeed: {},
    clouds: {},
    // Each report is already the last hour's total: summed, a bucket would grow with how often stations report.
    precipitation: { summary: "avg" },
  },
  plausible: { temperature: [-60, 56], pressure: [870, 1085], windSpeed: [0, 70], precipitation: [0, 200] },
  group: { path: "city", label: "city" },
  alternate: {
    title: "OpenWeatherCurrent",
    description: openWeatherDescription,
    detect: (input) => typeof input.main === "object" && input.main !== null && "dt" in input,
    schema: openWeatherSchema,
    example: (at) => ({
      coord: { lon: -7.5898, lat: 33.5731 },
      weather: [{ id: 801, main: "Clouds", description: "few clouds", icon: "02d" }],
      base: "stations",
      main: {
        temp: 292.55,
        feels_like: 292.2,
        temp_min: 291.9,
        temp_max: 293.1,
        pressure: 1019,
        humidity: 68,
      },
      visibility: 10000,
      wind: { speed: 4.63, deg: 250 },
      clouds: { all: 20 },
      dt: Math.floor(at.getTime() / 1000),
      sys: { country: "MA", sunrise: 1763793660, sunset: 1763831040 },
      timezone: 3600,
      id: 2553604,
      name: "Casablanca",
      cod: 200,
    }),
  },
  example: (at) => ({
    stationId: "casa-anfa-01",
    ts: at.toISOString(),
    temperature: 19.4,
    feelsLike: 19.05,
    humidity: 68,
    pressure: 1019,
    windSpeed: 4.6,
    windDeg: 250,
    clouds: 20,
    precipitation: 0.4,
    conditions: "light rain",
    city: "Casablanca",
    lat: 33.5731,
    lon: -7.5898,
  }),
});
