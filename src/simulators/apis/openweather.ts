import { distanceKm } from "../airports";
import { round } from "../simulator";
import { weatherSimulator } from "../weather";
import {
  type ApiDefinition,
  type ApiServerOptions,
  etagOf,
  hashNumber,
  json,
  matchesEtag,
  notModified,
  seededFaker,
} from "./common";

type Station = ReturnType<typeof weatherSimulator.devices>[number];
type Units = "standard" | "metric" | "imperial";
type Body = Record<string, unknown>;

/** OpenWeather recalculates current weather about every 10 minutes. */
const REFRESH_SECONDS = 600;

const errors = {
  unauthorized: {
    cod: 401,
    message: "Invalid API key. Please see https://openweathermap.org/faq#error401 for more info.",
  },
  limited: {
    cod: 429,
    message:
      "Your account is temporary blocked due to exceeding of requests limitation of your subscription type.",
  },
  cityNotFound: { cod: "404", message: "city not found" },
  nothingToGeocode: { cod: "400", message: "Nothing to geocode" },
};

/** OpenWeather's condition codes and icons for the simulator's descriptions. */
const conditions: Record<string, [id: number, main: string, icon: string]> = {
  "clear sky": [800, "Clear", "01"],
  "few clouds": [801, "Clouds", "02"],
  "scattered clouds": [802, "Clouds", "03"],
  "broken clouds": [803, "Clouds", "04"],
  "overcast clouds": [804, "Clouds", "04"],
  "light rain": [500, "Rain", "10"],
  "moderate rain": [501, "Rain", "10"],
};

const RAD = Math.PI / 180;

/** Sunrise and sunset (epoch seconds) of the local day holding `dt`, by NOAA's approximation. */
function sun(lat: number, lon: number, dt: number, timezone: number) {
  const localDay = Math.floor((dt + timezone) / 86_400);
  const midnight = localDay * 86_400;
  const dayOfYear = (midnight - Date.UTC(new Date(midnight * 1000).getUTCFullYear(), 0, 1) / 1000) / 86_400;
  const g = ((2 * Math.PI) / 365) * dayOfYear;
  const equation =
    229.18 *
    (0.000075 +
      0.001868 * Math.cos(g) -
      0.032077 * Math.sin(g) -
      0.014615 * Math.cos(2 * g) -
      0.040849 * Math.sin(2 * g));
  const declination =
    0.006918 -
    0.399912 * Math.cos(g) +
    0.070257 * Math.sin(g) -
    0.006758 * Math.cos(2 * g) +
    0.000907 * Math.sin(2 * g);
  const cosHour =
    Math.cos(90.833 * RAD) / (Math.cos(lat * RAD) * Math.cos(declination)) -
    Math.tan(lat * RAD) * Math.tan(declination);
  const hourAngle = Math.acos(Math.min(1, Math.max(-1, cosHour))) / RAD;
  const at = (minutes: number) => midnight + Math.round(minutes * 60);
  return {
    sunrise: at(720 - 4 * (lon + hourAngle) - equation),
    sunset: at(720 - 4 * (lon - hourAngle) - equation),
  };
}

/** The simulator's body (standard units) in the asked units: temperatures in °C or °F, wind in mph. */
function inUnits(body: Body, units: Units): Body {
  if (units === "standard") return body;
  const temperature = (kelvin: unknown) =>
    typeof kelvin !== "number"
      ? kelvin
      : round(units === "metric" ? kelvin - 273.15 : (kelvin - 273.15) * 1.8 + 32, 2);
  const main: Body = { ...(body.main as Body) };
  for (const key of ["temp", "feels_like", "temp_min", "temp_max"]) main[key] = temperature(main[key]);
  const wind: Body = { ...(body.wind as Body) };
  if (units === "imperial" && typeof wind.speed === "number") wind.speed = round(wind.speed * 2.236936, 2);
  return { ...body, main, wind };
}

/** `GET /data/2.5/weather`: OpenWeather's current weather, from the weather simulator's stations. */
export function openWeatherApi(options: ApiServerOptions): ApiDefinition {
  const seed = options.seed ?? 1;
  const stations = weatherSimulator.devices(options.devices ?? 10, seededFaker(seed));
  const faker = seededFaker(seed);

  /** A station's body at a refresh: one fresh step of the simulator from the station's first state. */
  function reading(station: Station, dt: number): Body {
    faker.seed(hashNumber(seed, station.sourceId, dt));
    const body = weatherSimulator.reading(
      { ...station, state: { ...station.state } },
      new Date(dt * 1000),
      faker,
    );
    const { city } = station.state;
    const { sunrise, sunset } = sun(city.lat, city.lon, dt, city.utcOffset * 3600);
    const [weather] = body.weather as Body[];
    const [id, main, icon] = conditions[String(weather?.description)] ?? [802, "Clouds", "03"];
    const daytime = dt >= sunrise && dt < sunset ? "d" : "n";
    return {
      ...body,
      weather: [{ ...weather, id, main, icon: icon + daytime }],
      sys: { ...(body.sys as Body), sunrise, sunset },
    };
  }

  function locate(params: URLSearchParams): Station | Response {
    const id = params.get("id");
    const q = params.get("q");
    const [lat, lon] = [params.get("lat"), params.get("lon")];
    if (id) {
      if (!/^\d+$/.test(id)) return json(400, { cod: "400", message: `${id} is not a city ID` });
      return stations.find((station) => station.sourceId === `owm-${id}`) ?? json(404, errors.cityNotFound);
    }
    if (q) {
      const parts = q.split(",").map((part) => part.trim().toLowerCase());
      const [name, country] = [parts[0], parts.length > 1 ? parts.at(-1) : undefined];
      const station = stations.find(
        ({ state: { city } }) =>
          city.name.toLowerCase() === name && (!country || city.country.toLowerCase() === country),
      );
      return station ?? json(404, errors.cityNotFound);
    }
    if (lat !== null && lon !== null) {
      const [latitude, longitude] = [Number(lat), Number(lon)];
      if (lat === "" || !(Math.abs(latitude) <= 90))
        return json(400, { cod: "400", message: "wrong latitude" });
      if (lon === "" || !(Math.abs(longitude) <= 180)) {
        return json(400, { cod: "400", message: "wrong longitude" });
      }
      const here = { lat: latitude, lon: longitude };
      const distance = (station: Station) => distanceKm(here, station.state.city);
      return stations.reduce((best, station) => (distance(station) < distance(best) ? station : best));
    }
    return json(400, errors.nothingToGeocode);
  }

  return {
    path: "/data/2.5/weather",
    credential: (_request, url) => url.searchParams.get("appid"),
    refuse: (refusal) =>
      refusal.reason === "rate"
        ? json(429, errors.limited, { "retry-after": String(refusal.retryAfter) })
        : refusal.reason === "quota"
          ? json(429, errors.limited)
          : json(401, errors.unauthorized),
    notFound: () => json(404, { cod: "404", message: "Not found" }),
    answer(request, url, now) {
      const station = locate(url.searchParams);
      if (station instanceof Response) return station;
      const unitsParam = url.searchParams.get("units");
      const units: Units = unitsParam === "metric" || unitsParam === "imperial" ? unitsParam : "standard";
      const dt = Math.floor(now / 1000 / REFRESH_SECONDS) * REFRESH_SECONDS;
      const text = JSON.stringify(inUnits(reading(station, dt), units));
      const headers = { etag: etagOf(text), "last-modified": new Date(dt * 1000).toUTCString() };
      const etagHeader = request.headers.get("if-none-match");
      const since = Date.parse(request.headers.get("if-modified-since") ?? "");
      // If-Modified-Since counts only without If-None-Match (RFC 9110 13.1.3).
      if (etagHeader !== null ? matchesEtag(etagHeader, headers.etag) : since >= dt * 1000) {
        return notModified(headers);
      }
      return new Response(text, {
        headers: { "content-type": "application/json; charset=utf-8", ...headers },
      });
    },
  };
}
