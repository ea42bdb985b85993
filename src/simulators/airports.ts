/** Airports, airlines, aircraft types and the daily rotations the simulated aircraft fly. */

const EARTH_KM = 6371;
const RAD = Math.PI / 180;

export interface Point {
  lat: number;
  lon: number;
}

export function distanceKm(a: Point, b: Point) {
  const h =
    Math.sin(((b.lat - a.lat) * RAD) / 2) ** 2 +
    Math.cos(a.lat * RAD) * Math.cos(b.lat * RAD) * Math.sin(((b.lon - a.lon) * RAD) / 2) ** 2;
  return 2 * EARTH_KM * Math.asin(Math.sqrt(h));
}

export function bearing(a: Point, b: Point) {
  const dLon = (b.lon - a.lon) * RAD;
  const y = Math.sin(dLon) * Math.cos(b.lat * RAD);
  const x =
    Math.cos(a.lat * RAD) * Math.sin(b.lat * RAD) -
    Math.sin(a.lat * RAD) * Math.cos(b.lat * RAD) * Math.cos(dLon);
  return (Math.atan2(y, x) / RAD + 360) % 360;
}

/** The point `fraction` of the way from a to b along the great circle. */
export function along(a: Point, b: Point, fraction: number): Point {
  const angle = distanceKm(a, b) / EARTH_KM;
  if (angle === 0) return a;
  const p = Math.sin((1 - fraction) * angle) / Math.sin(angle);
  const q = Math.sin(fraction * angle) / Math.sin(angle);
  const [lat1, lon1, lat2, lon2] = [a.lat * RAD, a.lon * RAD, b.lat * RAD, b.lon * RAD];
  const x = p * Math.cos(lat1) * Math.cos(lon1) + q * Math.cos(lat2) * Math.cos(lon2);
  const y = p * Math.cos(lat1) * Math.sin(lon1) + q * Math.cos(lat2) * Math.sin(lon2);
  const z = p * Math.sin(lat1) + q * Math.sin(lat2);
  return { lat: Math.atan2(z, Math.hypot(x, y)) / RAD, lon: Math.atan2(y, x) / RAD };
}

export interface Airport {
  iata: string;
  icao: string;
  name: string;
  lat: number;
  lon: number;
  timezone: string;
  terminals: string[];
}

const airport = (
  iata: string,
  icao: string,
  name: string,
  lat: number,
  lon: number,
  timezone: string,
  terminals: string[] = ["1"],
): Airport => ({ iata, icao, name, lat, lon, timezone, terminals });

export const airports: Record<string, Airport> = Object.fromEntries(
  [
    airport("CMN", "GMMN", "Mohammed V International", 33.3675, -7.5898, "Africa/Casablanca", ["1", "2"]),
    airport("RAK", "GMMX", "Marrakesh Menara", 31.6069, -8.0363, "Africa/Casablanca", ["1", "2"]),
    airport("AGA", "GMAD", "Agadir Al Massira", 30.325, -9.4131, "Africa/Casablanca"),
    airport("TNG", "GMTT", "Tangier Ibn Battouta", 35.7269, -5.9169, "Africa/Casablanca"),
    airport("FEZ", "GMFF", "Fes Saiss", 33.9273, -4.978, "Africa/Casablanca"),
    airport("CDG", "LFPG", "Charles De Gaulle", 49.0097, 2.5479, "Europe/Paris", ["1", "2E", "2F"]),
    airport("ORY", "LFPO", "Paris Orly", 48.7262, 2.3652, "Europe/Paris", ["1", "3", "4"]),
    airport("MAD", "LEMD", "Adolfo Suarez Madrid-Barajas", 40.4719, -3.5626, "Europe/Madrid", ["1", "4"]),
    airport("BCN", "LEBL", "Josep Tarradellas Barcelona-El Prat", 41.2971, 2.0785, "Europe/Madrid", ["1"]),
    airport("LIS", "LPPT", "Humberto Delgado", 38.7742, -9.1342, "Europe/Lisbon", ["1"]),
    airport("AMS", "EHAM", "Amsterdam Schiphol", 52.3086, 4.7639, "Europe/Amsterdam", ["1", "2", "3"]),
    airport("FRA", "EDDF", "Frankfurt International", 50.0333, 8.5706, "Europe/Berlin", ["1", "2"]),
    airport("DSS", "GOBD", "Blaise Diagne International", 14.67, -17.0733, "Africa/Dakar"),
    airport("JFK", "KJFK", "John F Kennedy International", 40.6398, -73.7789, "America/New_York", ["1", "4"]),
  ].map((entry) => [entry.iata, entry]),
);

export interface Airline {
  name: string;
  iata: string;
  icao: string;
  /** Registrations are this prefix followed by `letters` random letters (CN-R + GT). */
  registration: string;
  letters: number;
  /** The first hex digits of the country's ICAO 24-bit address block. */
  icao24: string;
}

export const airlines: Record<string, Airline> = {
  AT: { name: "Royal Air Maroc", iata: "AT", icao: "RAM", registration: "CN-R", letters: 2, icao24: "020" },
  AF: { name: "Air France", iata: "AF", icao: "AFR", registration: "F-H", letters: 3, icao24: "39" },
  IB: { name: "Iberia", iata: "IB", icao: "IBE", registration: "EC-", letters: 3, icao24: "34" },
  TP: { name: "TAP Air Portugal", iata: "TP", icao: "TAP", registration: "CS-T", letters: 2, icao24: "49" },
  KL: { name: "KLM", iata: "KL", icao: "KLM", registration: "PH-", letters: 3, icao24: "48" },
  LH: { name: "Lufthansa", iata: "LH", icao: "DLH", registration: "D-A", letters: 3, icao24: "3C" },
  HC: { name: "Air Senegal", iata: "HC", icao: "SZN", registration: "6V-A", letters: 2, icao24: "070" },
};

export interface AircraftType {
  iata: string;
  icao: string;
  /** Cruise ground speed without wind (km/h) and cruise altitude (m). */
  speed: number;
  altitude: number;
  /** Minutes from take-off to the top of climb, and from the top of descent to touchdown. */
  climb: number;
  descent: number;
  /** Scheduled minutes on the ground between two legs, and the least the crew can turn the aircraft in. */
  turn: number;
  minTurn: number;
}

export const aircraftTypes: Record<string, AircraftType> = {
  B738: {
    iata: "73H",
    icao: "B738",
    speed: 840,
    altitude: 11_300,
    climb: 18,
    descent: 25,
    turn: 55,
    minTurn: 35,
  },
  B788: {
    iata: "788",
    icao: "B788",
    speed: 900,
    altitude: 11_600,
    climb: 20,
    descent: 28,
    turn: 100,
    minTurn: 75,
  },
  A320: {
    iata: "320",
    icao: "A320",
    speed: 830,
    altitude: 11_000,
    climb: 18,
    descent: 25,
    turn: 50,
    minTurn: 35,
  },
  E190: {
    iata: "E90",
    icao: "E190",
    speed: 820,
    altitude: 11_000,
    climb: 16,
    descent: 22,
    turn: 45,
    minTurn: 30,
  },
  AT76: {
    iata: "AT7",
    icao: "AT76",
    speed: 510,
    altitude: 7_300,
    climb: 14,
    descent: 16,
    turn: 35,
    minTurn: 25,
  },
};

/**
 * One aircraft's day: out-and-back pairs from its base, the first leg leaving at `start` (UTC). Leg k flies as
 * flight `number + k`. Each day ends hours before the next begins, so the night absorbs the day's delays.
 */
export interface Rotation {
  airline: string;
  aircraft: string;
  number: number;
  start: string;
  route: string;
}

export const rotations: Rotation[] = [
  { airline: "AT", aircraft: "B738", number: 700, start: "07:00", route: "CMN CDG CMN MAD CMN" },
  { airline: "AT", aircraft: "B788", number: 200, start: "14:25", route: "CMN JFK CMN" },
  { airline: "AT", aircraft: "AT76", number: 400, start: "06:30", route: "CMN RAK CMN AGA CMN FEZ CMN" },
  { airline: "AF", aircraft: "A320", number: 540, start: "06:15", route: "ORY RAK ORY AGA ORY" },
  { airline: "IB", aircraft: "A320", number: 340, start: "07:00", route: "MAD CMN MAD TNG MAD" },
  { airline: "TP", aircraft: "A320", number: 450, start: "07:30", route: "LIS CMN LIS RAK LIS" },
  { airline: "KL", aircraft: "B738", number: 560, start: "06:00", route: "AMS CMN AMS LIS AMS" },
  { airline: "LH", aircraft: "A320", number: 570, start: "06:30", route: "FRA CMN FRA MAD FRA" },
  { airline: "HC", aircraft: "A320", number: 402, start: "08:00", route: "DSS CDG DSS" },
  { airline: "AT", aircraft: "E190", number: 960, start: "06:00", route: "CMN TNG CMN BCN CMN" },
];
