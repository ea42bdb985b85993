import type { AircraftType, Airline, Airport, Rotation } from "./airports";
import { aircraftTypes, airlines, airports, along, bearing, distanceKm, rotations } from "./airports";
import { type Device, round, type Simulator } from "./simulator";

const MINUTE = 60_000;
const DAY = 1440 * MINUTE;
/** How long a landed (or cancelled) leg stays the aircraft's status before its next leg takes over. */
const SHOWN_AFTER = 15 * MINUTE;

/** A leg as the timetable has it: the same every day. */
interface ScheduledLeg {
  from: Airport;
  to: Airport;
  number: string;
  /** Minutes from the day's first departure, and scheduled minutes from off-block to on-block. */
  departure: number;
  block: number;
  distance: number;
  /** Ground speed over airspeed: eastbound legs ride the jet stream. */
  wind: number;
}

interface AircraftState {
  airline: Airline;
  type: AircraftType;
  registration: string;
  icao24: string;
  /** Minutes after midnight UTC of the day's first departure. */
  start: number;
  /** Seeds every leg's fate: a leg asked about again gets the same delay, gate and flight level. */
  seed: number;
  schedule: ScheduledLeg[];
}

/** One day's leg as it is flown; times in epoch ms, whole minutes. */
interface Leg extends ScheduledLeg {
  date: string;
  fate: "flown" | "cancelled" | "diverted";
  scheduledDeparture: number;
  scheduledArrival: number;
  offBlock: number;
  takeoff: number;
  touchdown: number;
  onBlock: number;
  profile: ReturnType<typeof profile>;
  /** Cruise altitude (m). */
  altitude: number;
}

/** Speed ramps linearly between take-off and cruise speed: the km covered in the first `minutes` of a ramp. */
const ramp = (p: { slow: number; speed: number }, minutes: number, length: number) =>
  (p.slow * minutes + ((p.speed - p.slow) * minutes ** 2) / (2 * length)) / 60;

/**
 * How a leg is flown: cruise ground speed and take-off speed (km/h), minutes of climb, descent and in the air,
 * and `top` below 1 on legs too short for the full climb, where the aircraft levels off lower.
 */
function profile(type: AircraftType, distance: number, wind: number) {
  const speed = type.speed * wind;
  const slow = 0.35 * type.speed;
  const top = Math.min(1, (0.9 * distance) / ((((type.climb + type.descent) / 60) * (slow + speed)) / 2));
  const [climb, descent] = [type.climb * top, type.descent * top];
  const cruise = distance - ramp({ speed, slow }, climb, climb) - ramp({ speed, slow }, descent, descent);
  return { speed, slow, climb, descent, top, airborne: climb + descent + (cruise / speed) * 60 };
}

function schedule(rotation: Rotation, type: AircraftType, number: number): ScheduledLeg[] {
  const codes = rotation.route.split(" ").map((code) => airports[code] as Airport);
  let departure = 0;
  return codes.slice(1).map((to, k) => {
    const from = codes[k] as Airport;
    const distance = distanceKm(from, to);
    const wind = 1 + 0.05 * Math.sin(bearing(from, to) * (Math.PI / 180));
    // The timetable: flight time with the usual winds plus 25 minutes of taxiing, rounded up to 5 minutes.
    const block = Math.ceil((profile(type, distance, wind).airborne + 25) / 5) * 5;
    const leg = { from, to, number: String(number + k), departure, block, distance, wind };
    departure += block + type.turn;
    return leg;
  });
}

/** Random numbers for one set of keys (the aircraft's seed, a day, a pair of legs): the same at every call. */
function generator(...keys: number[]) {
  let n = 0;
  return () => Number(BigInt(Bun.hash(`${keys.join(":")}:${n++}`)) % 2n ** 52n) / 2 ** 52;
}

/** A departure's own delay in minutes: mostly none or a few minutes, now and then hours. */
function ownDelay(u: number, v: number) {
  if (u < 0.55) return 0;
  if (u < 0.87) return 1 + Math.floor(20 * v);
  if (u < 0.97) return 20 + Math.floor(40 * v);
  return 60 + Math.floor(120 * v);
}

const pick = <T>(items: readonly T[], u: number) => items[Math.floor(u * items.length)] as T;

/** The legs of day `cycle` (since the epoch): a late inbound delays the next departure; the night absorbs all. */
function day(state: AircraftState, cycle: number): Leg[] {
  const base = cycle * DAY + state.start * MINUTE;
  const legs: Leg[] = [];
  const minTurn = state.type.minTurn * MINUTE;
  let ready = 0;
  // Airlines cancel and divert pairs: a diverted outbound's return is cancelled and flown empty instead.
  for (let pair = 0; pair < state.schedule.length; pair += 2) {
    const random = generator(state.seed, cycle, pair);
    const fate = random();
    for (const k of [pair, pair + 1]) {
      const planned = state.schedule[k] as ScheduledLeg;
      const scheduledDeparture = base + planned.departure * MINUTE;
      const flight = profile(state.type, planned.distance, planned.wind * (0.96 + 0.08 * random()));
      const offBlock = Math.max(scheduledDeparture + ownDelay(random(), random()) * MINUTE, ready);
      const takeoff = offBlock + (8 + Math.floor(12 * random())) * MINUTE;
      const touchdown = takeoff + Math.round(flight.airborne) * MINUTE;
      const onBlock = touchdown + (4 + Math.floor(7 * random())) * MINUTE;
      const leg: Leg = {
        ...planned,
        date: new Date(scheduledDeparture).toISOString().slice(0, 10),
        fate: fate < 0.015 || (fate < 0.019 && k > pair) ? "cancelled" : fate < 0.019 ? "diverted" : "flown",
        scheduledDeparture,
        scheduledArrival: scheduledDeparture + planned.block * MINUTE,
        offBlock,
        takeoff,
        touchdown,
        onBlock,
        profile: flight,
        altitude: (state.type.altitude + 300 * (Math.floor(4 * random()) - 2)) * flight.top,
      };
      if (leg.fate === "flown") ready = onBlock + minTurn;
      const back = state.schedule[pair + 1] as ScheduledLeg;
      if (leg.fate === "diverted") ready = onBlock + 2 * minTurn + back.block * MINUTE;
      legs.push(leg);
    }
  }
  return legs;
}

/** The leg the aircraft is on at `t`, or its next one once the last has been over for a while. */
function currentLeg(state: AircraftState, t: number): Leg {
  const cycle = Math.floor((t - state.start * MINUTE) / DAY);
  const legs = [cycle - 1, cycle, cycle + 1].flatMap((c) => day(state, c));
  const end = (leg: Leg) => (leg.fate === "cancelled" ? leg.scheduledArrival : leg.onBlock);
  return legs.find((leg) => end(leg) + SHOWN_AFTER > t) ?? (legs.at(-1) as Leg);
}

/** Distance flown (km), altitude (m), speed (km/h) and vertical speed (m/min) `since` minutes after take-off. */
function airborne(leg: Leg, since: number) {
  const p = leg.profile;
  const top = leg.altitude;
  const left = Math.max(0, p.airborne - since);
  if (since < p.climb) {
    // Climbing fastest just after take-off, levelling off at the top.
    const x = 1 - since / p.climb;
    const [speed, altitude] = [p.speed - (p.speed - p.slow) * x, top * (1 - x ** 2)];
    return { km: ramp(p, since, p.climb), altitude, speed, vertical: (2 * top * x) / p.climb };
  }
  if (left > p.descent) {
    const km = ramp(p, p.climb, p.climb) + (p.speed * (since - p.climb)) / 60;
    return { km, altitude: top, speed: p.speed, vertical: 0 };
  }
  const speed = p.slow + ((p.speed - p.slow) * left) / p.descent;
  const km = leg.distance - ramp(p, left, p.descent);
  return { km, altitude: (top * left) / p.descent, speed, vertical: -top / p.descent };
}

/**
 * Where the aircraft is at `t` while the leg is active: taxiing, climbing, cruising, descending. `u` (0–1) jitters
 * the speed; it comes from the moment, so the same status is the same body (and the gateway's id) every time.
 */
function live(leg: Leg, t: number, u: number) {
  const onGround = t < leg.takeoff || t >= leg.touchdown;
  const taxiing = { km: t < leg.takeoff ? 0 : leg.distance, altitude: 0, speed: 25, vertical: 0 };
  const flight = onGround ? taxiing : airborne(leg, (t - leg.takeoff) / MINUTE);
  const jitter = onGround ? 0.8 + 0.4 * u : 0.99 + 0.02 * u;
  const point = along(leg.from, leg.to, Math.min(1, Math.max(0, flight.km / leg.distance)));
  // Taxiing in, the aircraft has arrived: it keeps the course it landed on.
  const direction = t >= leg.touchdown ? (bearing(leg.to, leg.from) + 180) % 360 : bearing(point, leg.to);
  return {
    updated: new Date(t).toISOString(),
    latitude: round(point.lat, 4),
    longitude: round(point.lon, 4),
    altitude: round(flight.altitude, 1),
    direction: round(direction, 1),
    speed_horizontal: round(flight.speed * jitter, 2),
    // AviationStack gives vertical speed in km/h too.
    speed_vertical: round(flight.vertical * 0.06, 2),
    is_ground: onGround,
  };
}

const aviationTime = (ms: number) => new Date(ms).toISOString().replace(".000Z", "+00:00");
/** AviationStack gives no delay (null) for a flight on time or early. */
const minutesLate = (time: number, scheduled: number) =>
  Math.max(0, Math.round((time - scheduled) / MINUTE)) || null;

/** The leg's status at `t` as an item of AviationStack's `GET /v1/flights`, nulls for what is not known yet. */
function status(state: AircraftState, leg: Leg, t: number) {
  const when = (time: number, known: boolean) => (known ? aviationTime(time) : null);
  const cancelled = leg.fate === "cancelled";
  const departed = !cancelled && t >= leg.offBlock;
  const flown = departed && leg.fate === "flown";
  const landed = flown && t >= leg.onBlock;
  let flightStatus = landed ? "landed" : departed ? "active" : "scheduled";
  if (cancelled) flightStatus = "cancelled";
  else if (leg.fate === "diverted" && t >= leg.touchdown) flightStatus = "diverted";
  const endpoint = ({ name, timezone, iata, icao }: Airport) => ({ airport: name, timezone, iata, icao });
  // Terminals, gates and the baggage belt: drawn afresh at every reading, the same every time.
  const random = generator(state.seed, leg.scheduledDeparture / MINUTE);
  const gate = () => `${pick(["A", "B", "C", "D"], random())}${1 + Math.floor(30 * random())}`;
  const stands = [pick(leg.from.terminals, random()), gate(), pick(leg.to.terminals, random()), gate()];
  const { airline, type } = state;
  return {
    flight_date: leg.date,
    flight_status: flightStatus,
    departure: {
      ...endpoint(leg.from),
      terminal: stands[0],
      gate: cancelled ? null : stands[1],
      delay: cancelled ? null : minutesLate(leg.offBlock, leg.scheduledDeparture),
      scheduled: aviationTime(leg.scheduledDeparture),
      estimated: when(leg.offBlock, !cancelled),
      actual: when(leg.offBlock, departed),
      estimated_runway: when(leg.takeoff, departed),
      actual_runway: when(leg.takeoff, departed && t >= leg.takeoff),
    },
    arrival: {
      ...endpoint(leg.to),
      terminal: stands[2],
      gate: flown ? stands[3] : null,
      baggage: landed ? String(1 + Math.floor(12 * random())) : null,
      delay: flown ? minutesLate(leg.onBlock, leg.scheduledArrival) : null,
      scheduled: aviationTime(leg.scheduledArrival),
      estimated: when(leg.onBlock, flown),
      actual: when(leg.onBlock, landed),
      estimated_runway: when(leg.touchdown, flown),
      actual_runway: when(leg.touchdown, flown && t >= leg.touchdown),
    },
    airline: { name: airline.name, iata: airline.iata, icao: airline.icao },
    flight: {
      number: leg.number,
      iata: airline.iata + leg.number,
      icao: airline.icao + leg.number,
      codeshared: null,
    },
    aircraft: { registration: state.registration, iata: type.iata, icao: type.icao, icao24: state.icao24 },
    live: flightStatus === "active" ? live(leg, t, generator(state.seed, t)()) : null,
  };
}

/** The aircraft's status at `at`; its source id becomes the flight's id, which the gateway derives alike. */
function observe(device: Device<AircraftState>, at: Date) {
  const leg = currentLeg(device.state, at.getTime());
  device.sourceId = `${device.state.airline.iata + leg.number}-${leg.date}`;
  return status(device.state, leg, at.getTime());
}

/**
 * Aircraft flying daily rotations between real airports, reporting their current leg as AviationStack does:
 * scheduled, active with a live position, landed; delays that carry over to the next leg; the odd cancellation.
 */
export const flightsSimulator: Simulator<AircraftState> = {
  kind: "flights",
  backfillEveryMinutes: 10,
  devices: (count, faker) =>
    Array.from({ length: count }, (_, i) => {
      const rotation = rotations[i % rotations.length] as Rotation;
      const airline = airlines[rotation.airline] as Airline;
      const type = aircraftTypes[rotation.aircraft] as AircraftType;
      // Aircraft flying the same rotation do so under flight numbers 1000 apart (AT700, AT1700, …).
      const number = rotation.number + 1000 * (Math.floor(i / rotations.length) % 100);
      const [hours = 0, minutes = 0] = rotation.start.split(":").map(Number);
      const registration =
        airline.registration + faker.string.alpha({ length: airline.letters, casing: "upper" });
      return {
        sourceId: registration, // until its first reading names a flight
        state: {
          airline,
          type,
          registration,
          icao24: airline.icao24 + faker.string.fromCharacters("0123456789ABCDEF", 6 - airline.icao24.length),
          start: hours * 60 + minutes + 5 * faker.number.int({ max: 8 }),
          seed: faker.number.int({ max: 2 ** 31 - 1 }),
          schedule: schedule(rotation, type, number),
        },
      };
    }),
  reading: observe,
  invalid: (device, at, faker) => {
    const reading = observe(device, at);
    const position = reading.live ?? { updated: at.toISOString(), latitude: 33.37, longitude: -7.59 };
    return faker.helpers.arrayElement([
      { ...reading, flight_status: "boarding" },
      { ...reading, departure: { ...reading.departure, iata: "Casablanca" } },
      { ...reading, live: { ...position, altitude: 90_000 } },
      { ...reading, departure: { ...reading.departure, delay: 20_000 } },
    ]);
  },
};
