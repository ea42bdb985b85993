import { type City, cities, dailyCycle, localHour, seasonalMean } from "./cities";
import { clamp, round, type Simulator } from "./simulator";

interface StationState {
  city: City;
  pressure: number;
  wind: number;
  clouds: number;
  /** The previous report (epoch ms): the weather wanders with time, not with the number of reports. */
  last?: number;
}

/** The interval the random walk's steps are sized for. */
const STEP_MS = 30 * 60_000;

const conditions = (clouds: number, rain: number) =>
  rain > 2
    ? "moderate rain"
    : rain > 0
      ? "light rain"
      : clouds > 80
        ? "overcast clouds"
        : clouds > 40
          ? "scattered clouds"
          : clouds > 10
            ? "few clouds"
            : "clear sky";

/** Weather stations per city, reporting in the shape of OpenWeather's current-weather API (standard units). */
export const weatherSimulator: Simulator<StationState> = {
  kind: "weather",
  backfillEveryMinutes: 30,
  devices: (count, faker) =>
    Array.from({ length: count }, (_, i) => {
      const city = cities[i % cities.length] as City;
      // One station per city id; more devices than cities get ids of their own.
      const id = i < cities.length ? city.owmId : city.owmId * 10 + i;
      return {
        sourceId: `owm-${id}`,
        state: {
          city,
          pressure: faker.number.float({ min: 1005, max: 1025 }),
          wind: faker.number.float({ min: 1, max: 7 }),
          clouds: faker.number.int({ min: 0, max: 100 }),
        },
      };
    }),
  reading: ({ sourceId, state }, at, faker) => {
    const hour = localHour(state.city, at);
    // Weather drifts: pressure, wind and clouds wander, as far in an hour whether reported every 30 minutes or
    // every few seconds (a random walk's spread grows with the square root of time). A first report takes a step.
    const elapsed = state.last === undefined ? STEP_MS : Math.max(0, at.getTime() - state.last);
    state.last = at.getTime();
    const step = Math.sqrt(Math.min(elapsed, 48 * STEP_MS) / STEP_MS);
    state.pressure = clamp(state.pressure + step * faker.number.float({ min: -0.6, max: 0.6 }), 980, 1040);
    state.wind = clamp(state.wind + step * faker.number.float({ min: -0.5, max: 0.5 }), 0, 20);
    state.clouds = clamp(state.clouds + step * faker.number.float({ min: -8, max: 8 }), 0, 100);
    const temperature = seasonalMean(state.city, at) + 5 * dailyCycle(hour) - state.clouds / 50;
    const humidity = Math.round(
      clamp(state.city.humidity - 12 * dailyCycle(hour) + state.clouds / 10, 10, 100),
    );
    const rain =
      state.clouds > 85 && state.pressure < 1008 ? round(faker.number.float({ min: 0.1, max: 4 }), 2) : 0;
    const kelvin = (celsius: number) => round(celsius + 273.15, 2);
    return {
      coord: { lon: state.city.lon, lat: state.city.lat },
      weather: [
        {
          id: rain ? 500 : 800,
          main: rain ? "Rain" : "Clouds",
          description: conditions(state.clouds, rain),
          icon: "04d",
        },
      ],
      base: "stations",
      main: {
        temp: kelvin(temperature),
        feels_like: kelvin(temperature - state.wind / 3),
        temp_min: kelvin(temperature - 1),
        temp_max: kelvin(temperature + 1),
        pressure: Math.round(state.pressure),
        humidity,
      },
      visibility: 10000,
      wind: { speed: round(state.wind, 2), deg: faker.number.int({ min: 0, max: 359 }) },
      ...(rain ? { rain: { "1h": rain } } : {}),
      clouds: { all: Math.round(state.clouds) },
      dt: Math.floor(at.getTime() / 1000),
      sys: { country: state.city.country },
      timezone: state.city.utcOffset * 3600,
      id: Number(sourceId.slice(4)),
      name: state.city.name,
      cod: 200,
    };
  },
  invalid: (device, at, faker) => {
    const reading = weatherSimulator.reading(device, at, faker);
    return faker.helpers.arrayElement([
      { ...reading, main: { ...(reading.main as object), humidity: 140 } },
      { ...reading, main: { ...(reading.main as object), temp: "cold" } },
      { ...reading, dt: "now" },
    ]);
  },
};
