import { type City, cities, localDay, localHour, peak } from "./cities";
import { round, type Simulator } from "./simulator";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
/** Arrivals are summed over steps of at most this, so that a long interval follows the day's curve. */
const STEP = 5 * MINUTE;
/** A store's ups and downs last this long: they belong to the time of day, not to the report. */
const SLOT = 15 * MINUTE;
/** How long a visitor stays, on average. */
const DWELL = 15 * MINUTE;
/** An interval longer than this (a device off for a week) is counted as this long. */
const LONGEST = 7 * 24 * HOUR;

/** What a door counter keeps between two reports: counts carry their fractions, so short intervals add up. */
interface Counter {
  /** The previous report (epoch ms); none yet means the next report counts nothing. */
  last?: number;
  inside: number;
  visitorsIn: number;
  visitorsOut: number;
  transactions: number;
}

interface StoreState {
  city: City;
  /** Visitors an hour at an ordinary busy moment; the day's curve and the weekday scale it. */
  perHour: number;
  conversion: number;
  basket: number;
  currency: string;
  /** Seeds the store's busier and quieter quarters of an hour. */
  noise: number;
  /** Door-counter glitches (thousands of visitors at once) per open hour, whatever the report rate. */
  glitchesPerHour: number;
  counter: Counter;
}

const currencies: Record<string, string> = { MA: "MAD", SN: "XOF" };
const weekday = [0.6, 0.8, 0.8, 0.85, 0.9, 1.1, 1.4]; // Sunday … Saturday

const newCounter = (): Counter => ({ inside: 0, visitorsIn: 0, visitorsOut: 0, transactions: 0 });

/** The store's state with its counter as it is at opening on a first day: nobody inside, nothing counted. */
export const restartCounter = (state: StoreState): StoreState => ({ ...state, counter: newCounter() });

function isOpen(state: StoreState, t: number) {
  const at = new Date(t);
  const hour = localHour(state.city, at);
  const [opens, closes] = localDay(state.city, at) === 0 ? [10, 18] : [9, 21];
  return hour >= opens && hour < closes;
}

/** A number from 0 to 1 of the store and a quarter of an hour: its mood then, the same at every call. */
const quarter = (state: StoreState, t: number, what: string) =>
  Number(BigInt(Bun.hash(`${state.noise}:${what}:${Math.floor(t / SLOT)}`)) % 1_000_003n) / 1_000_003;

/** Visitors an hour coming in at `t`: opening hours, lunch and evening peaks, the weekday, the quarter's mood. */
function arrivalsPerHour(state: StoreState, t: number) {
  if (!isOpen(state, t)) return 0;
  const at = new Date(t);
  const hour = localHour(state.city, at);
  const busyness =
    (0.25 + peak(hour, 12.75, 1) + 0.8 * peak(hour, 18, 1.3)) * (weekday[localDay(state.city, at)] ?? 1);
  return state.perHour * busyness * (0.7 + 0.6 * quarter(state, t, "visitors"));
}

/** Expected visitors and buyers in [from, to): the rates integrated over steps aligned to a fixed grid. */
function arrivals(state: StoreState, from: number, to: number) {
  let visitors = 0;
  let buyers = 0;
  for (let t = from; t < to; ) {
    const next = Math.min(to, (Math.floor(t / STEP) + 1) * STEP);
    const middle = (t + next) / 2;
    const coming = (arrivalsPerHour(state, middle) * (next - t)) / HOUR;
    visitors += coming;
    buyers += coming * state.conversion * (0.8 + 0.4 * quarter(state, middle, "buyers"));
    t = next;
  }
  return { visitors, buyers };
}

/**
 * Shops with opening hours, lunch and evening peaks, quieter weekdays, and a counter glitch now and then. Each
 * reading counts the visitors since that store's previous one: a rate an hour times the interval, so the hourly
 * totals are the same whether a store reports every 15 minutes (the backfill) or every few seconds (live).
 */
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
          perHour: faker.number.int({ min: 60, max: 320 }),
          conversion: faker.number.float({ min: 0.18, max: 0.32 }),
          basket:
            faker.number.float({ min: 18, max: 65 }) *
            (currency === "MAD" ? 10 : currency === "XOF" ? 600 : 1),
          currency,
          noise: faker.number.int({ max: 2 ** 31 - 1 }),
          glitchesPerHour: 0.024,
          counter: newCounter(),
        },
      };
    }),
  reading: ({ sourceId, state }, at, faker) => {
    const counter = state.counter;
    const t = at.getTime();
    // No previous report, or one later than this (time set back): this report starts the count.
    const from = counter.last === undefined || counter.last > t ? t : Math.max(counter.last, t - LONGEST);
    counter.last = t;
    const expected = arrivals(state, from, t);
    counter.visitorsIn += expected.visitors;
    let visitorsIn = Math.floor(counter.visitorsIn);
    counter.visitorsIn -= visitorsIn;

    const open = isOpen(state, t);
    const present = counter.inside + visitorsIn;
    let visitorsOut = present; // closing time: everyone is let out
    if (open) {
      // Everyone inside leaves at the same rate; those who came in during the interval had less time to.
      const staying = Math.exp(-(t - from) / DWELL);
      const newcomersStaying = t > from ? (DWELL / (t - from)) * (1 - staying) : 1;
      counter.visitorsOut += counter.inside * (1 - staying) + visitorsIn * (1 - newcomersStaying);
      visitorsOut = Math.min(present, Math.floor(counter.visitorsOut));
      counter.visitorsOut = Math.min(counter.visitorsOut - visitorsOut, present - visitorsOut);
    }
    counter.inside = present - visitorsOut;

    counter.transactions += expected.buyers;
    const transactions = Math.floor(counter.transactions);
    counter.transactions -= transactions;
    // Baskets vary; the more of them, the nearer their mean the report's total is.
    const basket =
      1.025 + (faker.number.float({ min: 0.8, max: 1.25 }) - 1.025) / Math.sqrt(transactions || 1);
    const revenue = round(transactions * state.basket * basket, 2);
    // Closed, the day's count is done: what is left of a visitor is dropped, so that every day starts afresh.
    if (!open) Object.assign(counter, { visitorsIn: 0, visitorsOut: 0, transactions: 0 });
    // A door counter that glitches while open: the quality flags catch it, aggregates leave it out.
    if (faker.number.float() < (open ? (state.glitchesPerHour * (t - from)) / HOUR : 0)) {
      visitorsIn += faker.number.int({ min: 3000, max: 9000 });
    }
    return {
      storeId: sourceId,
      ts: at.toISOString(),
      sensorId: `${sourceId}-door-1`,
      city: state.city.name,
      visitorsIn,
      visitorsOut,
      transactions,
      revenue,
      currency: state.currency,
    };
  },
  invalid: (device, at, faker) => {
    // A refused report counts nothing: the next valid one covers its interval too.
    const counter = { ...device.state.counter };
    const reading = trafficSimulator.reading(device, at, faker);
    device.state.counter = counter;
    return faker.helpers.arrayElement([
      { ...reading, visitorsIn: -3 },
      { ...reading, visitorsIn: 2.5 },
      { ...reading, currency: "euro" },
      { ...reading, cashier: "Ana" },
    ]);
  },
};
