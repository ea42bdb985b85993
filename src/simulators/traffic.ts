import { type City, cities, localDay, localHour, peak } from "./cities";
import { round, type Simulator } from "./simulator";

interface StoreState {
  city: City;
  /** Visitors in a busy five minutes. */
  size: number;
  conversion: number;
  basket: number;
  currency: string;
  inside: number;
}

const currencies: Record<string, string> = { MA: "MAD", SN: "XOF" };
const weekday = [0.6, 0.8, 0.8, 0.85, 0.9, 1.1, 1.4]; // Sunday … Saturday

/** Shops with opening hours, lunch and evening peaks, quieter weekdays, and a counter glitch now and then. */
export const trafficSimulator: Simulator<StoreState> = {
  kind: "traffic",
  backfillEveryMinutes: 15,
  devices: (count, faker) =>
    Array.from({ length: count }, (_, i) => {
      const city = cities[i % cities.length] as City;
      const currency = currencies[city.country] ?? "EUR";
      return {
        sourceId: `${city.name.toLowerCase()}-store-${String(i + 1).padStart(3, "0")}`,
        state: {
          city,
          size: faker.number.int({ min: 15, max: 80 }),
          conversion: faker.number.float({ min: 0.18, max: 0.32 }),
          basket:
            faker.number.float({ min: 18, max: 65 }) *
            (currency === "MAD" ? 10 : currency === "XOF" ? 600 : 1),
          currency,
          inside: 0,
        },
      };
    }),
  reading: ({ sourceId, state }, at, faker) => {
    const hour = localHour(state.city, at);
    const day = localDay(state.city, at);
    const [opens, closes] = day === 0 ? [10, 18] : [9, 21];
    const open = hour >= opens && hour < closes;
    const busyness = open
      ? (0.25 + peak(hour, 12.75, 1) + 0.8 * peak(hour, 18, 1.3)) * (weekday[day] ?? 1)
      : 0;
    let visitorsIn = Math.max(
      0,
      Math.round(state.size * busyness * faker.number.float({ min: 0.7, max: 1.3 })),
    );
    const visitorsOut = open
      ? Math.min(state.inside + visitorsIn, Math.round(visitorsIn * 0.9 + state.inside * 0.3))
      : state.inside;
    state.inside = Math.max(0, state.inside + visitorsIn - visitorsOut);
    const transactions = Math.round(
      visitorsIn * state.conversion * faker.number.float({ min: 0.8, max: 1.2 }),
    );
    const revenue = round(transactions * state.basket * faker.number.float({ min: 0.8, max: 1.25 }), 2);
    // A door counter that glitches: the quality flags catch it, aggregates leave it out.
    if (faker.number.float() < 0.003) visitorsIn += faker.number.int({ min: 3000, max: 9000 });
    return {
      storeId: sourceId,
      ts: at.toISOString(),
      sensorId: `${sourceId}-door-1`,
      visitorsIn,
      visitorsOut,
      transactions,
      revenue,
      currency: state.currency,
    };
  },
  invalid: (device, at, faker) => {
    const reading = trafficSimulator.reading(device, at, faker);
    return faker.helpers.arrayElement([
      { ...reading, visitorsIn: -3 },
      { ...reading, visitorsIn: 2.5 },
      { ...reading, currency: "euro" },
      { ...reading, cashier: "Ana" },
    ]);
  },
};
