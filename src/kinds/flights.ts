import { z } from "@hono/zod-openapi";
import { defineKind, textSchema } from "./define";
import { definedOnly } from "./fields";

const time = (description: string) => z.iso.datetime({ offset: true }).optional().describe(description);
const code = (pattern: RegExp, example: string) =>
  z.string().regex(pattern, `a code such as ${example}`).optional();

const endpoint = z.strictObject({
  airport: textSchema(120).optional(),
  iata: z.string().regex(/^[A-Z]{3}$/, "an IATA airport code such as CMN"),
  icao: code(/^[A-Z0-9]{4}$/, "GMMN"),
  timezone: textSchema(64).optional(),
  terminal: textSchema(16).optional(),
  gate: textSchema(16).optional(),
  scheduled: time("Scheduled time."),
  estimated: time("Estimated time."),
  actual: time("Actual time."),
  delay: z.number().min(-1440).max(10_080).optional().describe("min"),
});

const statuses = ["scheduled", "active", "landed", "cancelled", "incident", "diverted"] as const;

/** A nullable value of AviationStack's as an optional one: the normalised record leaves out what is unknown. */
const given = <T>(value: T | null | undefined) => (value === null ? undefined : value);

const aviationEndpoint = z.looseObject({
  airport: z.string().nullish(),
  timezone: z.string().nullish(),
  iata: z.string().nullish(),
  icao: z.string().nullish(),
  terminal: z.string().nullish(),
  gate: z.string().nullish(),
  delay: z.number().nullish(),
  scheduled: z.string().nullish(),
  estimated: z.string().nullish(),
  actual: z.string().nullish(),
});

const latest = (times: (string | null | undefined)[]) =>
  times
    .map((value) => Date.parse(value ?? ""))
    .filter(Number.isFinite)
    .sort((a, b) => b - a)[0];

/**
 * The status's moment: the live position's, else the latest actual time, else the latest estimated, else the
 * latest scheduled one, and never later than now (a flight that has not left yet is described as of now).
 */
function statusTime(item: {
  departure: z.infer<typeof aviationEndpoint>;
  arrival: z.infer<typeof aviationEndpoint>;
  live?: { updated?: string | null } | null;
}) {
  const { departure, arrival } = item;
  const known =
    latest([item.live?.updated]) ??
    latest([departure.actual, arrival.actual]) ??
    latest([departure.estimated, arrival.estimated]) ??
    latest([departure.scheduled, arrival.scheduled]);
  return Math.min(known ?? Date.now(), Date.now());
}

const normaliseEndpoint = (point: z.infer<typeof aviationEndpoint>) =>
  definedOnly({
    airport: given(point.airport),
    iata: given(point.iata),
    icao: given(point.icao),
    timezone: given(point.timezone),
    terminal: given(point.terminal),
    gate: given(point.gate),
    scheduled: given(point.scheduled),
    estimated: given(point.estimated),
    actual: given(point.actual),
    delay: given(point.delay),
  });

const aviationStackDescription =
  "One item of AviationStack's `GET /v1/flights` `data` array, as their API sends it (nulls for what is " +
  "unknown), normalised into a FlightStatus. Its id is derived from its content: the same status twice is stored once.";

/** An item of AviationStack's `GET /v1/flights` response. */
const aviationStackSchema = z
  .looseObject({
    flight_date: z.string(),
    flight_status: z.string(),
    departure: aviationEndpoint,
    arrival: aviationEndpoint,
    airline: z
      .looseObject({ name: z.string().nullish(), iata: z.string().nullish(), icao: z.string().nullish() })
      .nullish(),
    flight: z.looseObject({
      number: z.string().nullish(),
      iata: z.string().nullish(),
      icao: z.string().nullish(),
    }),
    live: z
      .looseObject({
        updated: z.string().nullish(),
        latitude: z.number().nullish(),
        longitude: z.number().nullish(),
        altitude: z.number().nullish(),
        direction: z.number().nullish(),
        speed_horizontal: z.number().nullish(),
        is_ground: z.boolean().nullish(),
      })
      .nullish(),
    flightId: z.string().optional().describe("Sluice's flight id; defaults to <flight IATA>-<flight_date>"),
  })
  .transform((item) => {
    const code = item.flight.iata ?? item.flight.icao;
    const live = item.live;
    const status = {
      flightId: item.flightId ?? (code ? `${code}-${item.flight_date}` : undefined),
      flightDate: item.flight_date,
      status: item.flight_status,
      airline: item.airline
        ? definedOnly({
            name: given(item.airline.name),
            iata: given(item.airline.iata),
            icao: given(item.airline.icao),
          })
        : undefined,
      flight: definedOnly({
        number: given(item.flight.number),
        iata: given(item.flight.iata),
        icao: given(item.flight.icao),
      }),
      departure: normaliseEndpoint(item.departure),
      arrival: normaliseEndpoint(item.arrival),
      live: live
        ? definedOnly({
            latitude: given(live.latitude),
            longitude: given(live.longitude),
            altitude: given(live.altitude),
            speed: given(live.speed_horizontal),
            heading: given(live.direction),
            onGround: given(live.is_ground),
          })
        : undefined,
    };
    const content = JSON.stringify(status);
    return definedOnly({
      ...status,
      id: status.flightId ? `${status.flightId}-${Bun.hash(content).toString(36)}` : undefined,
      ts: statusTime(item),
    });
  })
  .openapi("AviationStackFlight", { description: aviationStackDescription });

const aviationTime = (ms: number) => new Date(ms).toISOString().replace(".000Z", "+00:00");

export const flights = defineKind({
  name: "flights",
  resource: "statuses",
  title: "FlightStatus",
  description: "A flight's status: where it is in its day, its delays, and its live position when airborne.",
  sourceField: "flightId",
  fields: {
    flightDate: z.iso.date().optional().describe("The flight's scheduled date (YYYY-MM-DD)."),
    status: z.enum(statuses),
    airline: z
      .strictObject({
        name: textSchema(120).optional(),
        iata: code(/^[A-Z0-9]{2}$/, "AT"),
        icao: code(/^[A-Z]{3}$/, "RAM"),
      })
      .optional(),
    flight: z
      .strictObject({
        number: textSchema(8).optional(),
        iata: code(/^[A-Z0-9]{2,3}\d{1,5}[A-Z]?$/, "AT200"),
        icao: code(/^[A-Z]{3}\d{1,5}[A-Z]?$/, "RAM200"),
      })
      .optional(),
    departure: endpoint,
    arrival: endpoint,
    live: z
      .strictObject({
        latitude: z.number().min(-90).max(90),
        longitude: z.number().min(-180).max(180),
        altitude: z.number().min(-500).max(25_000).optional().describe("m"),
        speed: z.number().min(0).max(2500).optional().describe("km/h"),
        heading: z.number().min(0).max(360).optional().describe("degrees"),
        onGround: z.boolean().optional(),
      })
      .optional(),
  },
  metrics: {
    departureDelay: { path: "departure.delay" },
    arrivalDelay: { path: "arrival.delay" },
    altitude: { path: "live.altitude" },
    speed: { path: "live.speed" },
  },
  plausible: {
    departureDelay: [-60, 1440],
    arrivalDelay: [-120, 1440],
    altitude: [-100, 14_000],
    speed: [0, 1200],
  },
  group: { path: "airline.name", label: "airline" },
  alternate: {
    title: "AviationStackFlight",
    description: aviationStackDescription,
    detect: (input) => "flight_status" in input && "flight_date" in input,
    schema: aviationStackSchema,
    example: (at) => ({
      flight_date: at.toISOString().slice(0, 10),
      flight_status: "active",
      departure: {
        airport: "Mohammed V International",
        timezone: "Africa/Casablanca",
        iata: "CMN",
        icao: "GMMN",
        terminal: "1",
        gate: "A4",
        delay: 15,
        scheduled: aviationTime(at.getTime() - 120 * 60_000),
        estimated: aviationTime(at.getTime() - 120 * 60_000),
        actual: aviationTime(at.getTime() - 105 * 60_000),
        estimated_runway: null,
        actual_runway: null,
      },
      arrival: {
        airport: "John F Kennedy International",
        timezone: "America/New_York",
        iata: "JFK",
        icao: "KJFK",
        terminal: "1",
        gate: null,
        baggage: null,
        delay: null,
        scheduled: aviationTime(at.getTime() + 300 * 60_000),
        estimated: null,
        actual: null,
        estimated_runway: null,
        actual_runway: null,
      },
      airline: { name: "Royal Air Maroc", iata: "AT", icao: "RAM" },
      flight: { number: "200", iata: "AT200", icao: "RAM200", codeshared: null },
      aircraft: { registration: "CN-RGT", iata: "B788", icao: "B788", icao24: "0200AF" },
      live: {
        updated: at.toISOString(),
        latitude: 36.28,
        longitude: -15.62,
        altitude: 11_277.6,
        direction: 291.4,
        speed_horizontal: 894.35,
        speed_vertical: 0,
        is_ground: false,
      },
    }),
  },
  example: (at) => ({
    flightId: `AT200-${at.toISOString().slice(0, 10)}`,
    ts: at.toISOString(),
    flightDate: at.toISOString().slice(0, 10),
    status: "active",
    airline: { name: "Royal Air Maroc", iata: "AT", icao: "RAM" },
    flight: { number: "200", iata: "AT200", icao: "RAM200" },
    departure: {
      airport: "Mohammed V International",
      iata: "CMN",
      icao: "GMMN",
      terminal: "1",
      gate: "A4",
      scheduled: aviationTime(at.getTime() - 120 * 60_000),
      actual: aviationTime(at.getTime() - 105 * 60_000),
      delay: 15,
    },
    arrival: {
      airport: "John F Kennedy International",
      iata: "JFK",
      icao: "KJFK",
      terminal: "1",
      scheduled: aviationTime(at.getTime() + 300 * 60_000),
      estimated: aviationTime(at.getTime() + 310 * 60_000),
      delay: 10,
    },
    live: {
      latitude: 36.28,
      longitude: -15.62,
      altitude: 11_277.6,
      speed: 894.35,
      heading: 291.4,
      onGround: false,
    },
  }),
});
