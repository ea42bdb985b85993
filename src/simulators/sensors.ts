import { type City, cities, dailyCycle, localHour, peak, seasonalMean } from "./cities";
import { clamp, round, type Simulator } from "./simulator";

interface SensorState {
  city: City;
  lat: number;
  lon: number;
  /** This spot's offset from the city mean (shade, altitude, a sensor near a road). */
  bias: number;
  traffic: number;
  battery: number;
  indoor: boolean;
  /** The previous reading (epoch ms): the battery drains with time, not with the number of reports. */
  last?: number;
}

/** Battery percent a day. */
const DRAIN = 0.3;

/** Air-quality stations in named cities: a daily temperature cycle, humidity against it, rush-hour pollution. */
export const sensorsSimulator: Simulator<SensorState> = {
  kind: "sensors",
  backfillEveryMinutes: 5,
  devices: (count, faker) =>
    Array.from({ length: count }, (_, i) => {
      const city = cities[i % cities.length] as City;
      return {
        sourceId: `${city.name.toLowerCase()}-aq-${String(i + 1).padStart(3, "0")}`,
        state: {
          city,
          lat: round(city.lat + faker.number.float({ min: -0.05, max: 0.05 }), 5),
          lon: round(city.lon + faker.number.float({ min: -0.05, max: 0.05 }), 5),
          bias: faker.number.float({ min: -1.5, max: 1.5 }),
          traffic: faker.number.float({ min: 0.5, max: 1.5 }),
          battery: faker.number.float({ min: 60, max: 100 }),
          indoor: faker.datatype.boolean({ probability: 0.2 }),
        },
      };
    }),
  reading: ({ sourceId, state }, at, faker) => {
    const hour = localHour(state.city, at);
    const cycle = dailyCycle(hour);
    const temperature =
      seasonalMean(state.city, at) + 5 * cycle + state.bias + faker.number.float({ min: -0.4, max: 0.4 });
    const humidity = clamp(
      state.city.humidity - 15 * cycle + faker.number.float({ min: -4, max: 4 }),
      5,
      100,
    );
    const rush = peak(hour, 8.5, 1.2) + peak(hour, 18, 1.5);
    const pm25 = Math.max(1, (8 + 30 * rush * state.traffic) * faker.number.float({ min: 0.8, max: 1.2 }));
    const elapsed = state.last === undefined ? 0 : Math.max(0, at.getTime() - state.last);
    state.last = at.getTime();
    state.battery = Math.max(1, state.battery - (DRAIN * elapsed) / 86_400_000);
    return {
      deviceId: sourceId,
      ts: at.toISOString(),
      temperature: round(temperature, 2),
      humidity: round(humidity, 1),
      pm25: round(pm25, 1),
      pm10: round(pm25 * faker.number.float({ min: 1.3, max: 1.8 }), 1),
      no2: round(
        Math.max(2, (12 + 45 * rush * state.traffic) * faker.number.float({ min: 0.8, max: 1.2 })),
        1,
      ),
      ...(state.indoor
        ? { co2: Math.round(450 + 700 * peak(hour, 14, 3) * faker.number.float({ min: 0.7, max: 1.3 })) }
        : {}),
      battery: round(state.battery, 1),
      location: { lat: state.lat, lon: state.lon, city: state.city.name },
    };
  },
  invalid: (device, at, faker) => {
    const reading = sensorsSimulator.reading(device, at, faker);
    return faker.helpers.arrayElement([
      { ...reading, humidity: 150 },
      { ...reading, temperature: "warm" },
      { ...reading, firmware: "2.1.0" },
      { ...reading, ts: "yesterday" },
    ]);
  },
};
