import { flightsSimulator } from "../flights";
import { type ApiDefinition, type ApiServerOptions, hashNumber, json, MINUTE, seededFaker } from "./common";

type Item = Record<string, unknown>;

const error = (status: number, code: string, message: string, headers: Record<string, string> = {}) =>
  json(status, { error: { code, message } }, headers);

const refusals = {
  "missing-key": [
    401,
    "missing_access_key",
    "You have not supplied an API Access Key. [Required format: access_key=YOUR_ACCESS_KEY]",
  ],
  "invalid-key": [
    401,
    "invalid_access_key",
    "You have not supplied a valid API Access Key. [Technical Support: support@apilayer.com]",
  ],
  quota: [
    429,
    "usage_limit_reached",
    "Your monthly usage limit has been reached. Please upgrade your Subscription Plan.",
  ],
  rate: [
    429,
    "rate_limit_reached",
    'You have exceeded the maximum rate limitation allowed on your subscription plan. Please refer to the "Rate Limits" section of the API Documentation for details.',
  ],
} as const;

/** The filters `GET /v1/flights` takes, and where each looks in an item. */
const filters: Record<string, string[]> = {
  flight_status: ["flight_status"],
  flight_date: ["flight_date"],
  dep_iata: ["departure", "iata"],
  dep_icao: ["departure", "icao"],
  arr_iata: ["arrival", "iata"],
  arr_icao: ["arrival", "icao"],
  airline_name: ["airline", "name"],
  airline_iata: ["airline", "iata"],
  airline_icao: ["airline", "icao"],
  flight_number: ["flight", "number"],
  flight_iata: ["flight", "iata"],
  flight_icao: ["flight", "icao"],
};

const statuses = ["scheduled", "active", "landed", "cancelled", "incident", "diverted"];

function field(item: unknown, path: string[]): unknown {
  let value = item;
  for (const key of path) {
    value = typeof value === "object" && value !== null ? (value as Item)[key] : undefined;
  }
  return value;
}

/** AviationStack's validation_error, naming the parameter and the rule it broke. */
const invalid = (parameter: string, key: string, message: string) =>
  json(422, {
    error: {
      code: "validation_error",
      message: "Request failed with validation error",
      context: { [parameter]: [{ key, message }] },
    },
  });

function validate(params: URLSearchParams): Response | { limit: number; offset: number } {
  const limitText = params.get("limit") ?? "100";
  const offsetText = params.get("offset") ?? "0";
  const [limit, offset] = [Number(limitText), Number(offsetText)];
  if (!/^\d+$/.test(limitText) || limit < 1) {
    return invalid("limit", "invalid_limit", "The limit must be an integer of at least 1.");
  }
  if (limit > 100) return invalid("limit", "max", "The limit may not be greater than 100.");
  if (!/^\d+$/.test(offsetText)) {
    return invalid("offset", "invalid_offset", "The offset must be an integer of at least 0.");
  }
  const status = params.get("flight_status");
  if (status !== null && !statuses.includes(status)) {
    return invalid("flight_status", "invalid_flight_status", `The flight status must be one of ${statuses}.`);
  }
  const date = params.get("flight_date");
  if (date !== null && !/^\d{4}-\d{2}-\d{2}$/.test(date)) {
    return invalid("flight_date", "invalid_date", "The flight date does not match the format Y-m-d.");
  }
  return { limit, offset };
}

/**
 * `GET /v1/flights`: one item per aircraft of the simulated fleet, its current or next leg, in fleet order.
 * The data moves on once a minute, so the same minute gives the same items.
 */
export function aviationStackApi(options: ApiServerOptions): ApiDefinition {
  const seed = options.seed ?? 1;
  const fleet = flightsSimulator.devices(options.devices ?? 40, seededFaker(seed));
  const faker = seededFaker(seed);
  let cached: { minute: number; items: Item[] } | undefined;

  function itemsAt(minute: number) {
    if (cached?.minute !== minute) {
      faker.seed(hashNumber(seed, minute));
      const at = new Date(minute * MINUTE);
      cached = { minute, items: fleet.map((aircraft) => flightsSimulator.reading(aircraft, at, faker)) };
    }
    return cached.items;
  }

  return {
    path: "/v1/flights",
    credential: (_request, url) => url.searchParams.get("access_key"),
    refuse: (refusal) => {
      const [status, code, message] = refusals[refusal.reason];
      const headers: Record<string, string> =
        refusal.reason === "rate" ? { "retry-after": String(refusal.retryAfter) } : {};
      return error(status, code, message, headers);
    },
    notFound: () => error(404, "404_not_found", "The requested resource does not exist."),
    answer(_request, url, now) {
      const page = validate(url.searchParams);
      if (page instanceof Response) return page;
      const asked = Object.entries(filters).flatMap(([name, path]) => {
        const value = url.searchParams.get(name);
        return value ? [{ path, value: value.toUpperCase() }] : [];
      });
      const matching = itemsAt(Math.floor(now / MINUTE)).filter((item) =>
        asked.every(({ path, value }) => String(field(item, path) ?? "").toUpperCase() === value),
      );
      const data = matching.slice(page.offset, page.offset + page.limit);
      return json(200, {
        pagination: { limit: page.limit, offset: page.offset, count: data.length, total: matching.length },
        data,
      });
    },
  };
}
