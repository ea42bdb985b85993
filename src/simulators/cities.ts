/** Cities the simulated fleets live in: position, UTC offset (standard time) and climate. */
export interface City {
  name: string;
  country: string;
  lat: number;
  lon: number;
  utcOffset: number;
  /** Mean daily temperature (°C) in January and in July; the year follows a cosine between them. */
  january: number;
  july: number;
  humidity: number;
  /** OpenWeather's city id, for weather stations reporting in its shape. */
  owmId: number;
}

export const cities: readonly City[] = [
  {
    name: "Casablanca",
    country: "MA",
    lat: 33.5731,
    lon: -7.5898,
    utcOffset: 1,
    january: 12.5,
    july: 22.5,
    humidity: 75,
    owmId: 2553604,
  },
  {
    name: "Rabat",
    country: "MA",
    lat: 34.0209,
    lon: -6.8416,
    utcOffset: 1,
    january: 12.5,
    july: 22.5,
    humidity: 72,
    owmId: 2538475,
  },
  {
    name: "Marrakesh",
    country: "MA",
    lat: 31.6295,
    lon: -7.9811,
    utcOffset: 1,
    january: 12,
    july: 29,
    humidity: 45,
    owmId: 2542997,
  },
  {
    name: "Paris",
    country: "FR",
    lat: 48.8566,
    lon: 2.3522,
    utcOffset: 1,
    january: 5,
    july: 20.5,
    humidity: 70,
    owmId: 2988507,
  },
  {
    name: "Lyon",
    country: "FR",
    lat: 45.764,
    lon: 4.8357,
    utcOffset: 1,
    january: 3.5,
    july: 22,
    humidity: 68,
    owmId: 2996944,
  },
  {
    name: "Berlin",
    country: "DE",
    lat: 52.52,
    lon: 13.405,
    utcOffset: 1,
    january: 0.5,
    july: 19.5,
    humidity: 72,
    owmId: 2950159,
  },
  {
    name: "Madrid",
    country: "ES",
    lat: 40.4168,
    lon: -3.7038,
    utcOffset: 1,
    january: 6.5,
    july: 26,
    humidity: 50,
    owmId: 3117735,
  },
  {
    name: "Lisbon",
    country: "PT",
    lat: 38.7223,
    lon: -9.1393,
    utcOffset: 0,
    january: 11.5,
    july: 23,
    humidity: 65,
    owmId: 2267057,
  },
  {
    name: "Amsterdam",
    country: "NL",
    lat: 52.3676,
    lon: 4.9041,
    utcOffset: 1,
    january: 3.5,
    july: 18,
    humidity: 80,
    owmId: 2759794,
  },
  {
    name: "Dakar",
    country: "SN",
    lat: 14.7167,
    lon: -17.4677,
    utcOffset: 0,
    january: 21.5,
    july: 27.5,
    humidity: 70,
    owmId: 2253354,
  },
];

/** The local hour (0–24, fractional) of a city at a moment. */
export function localHour(city: City, at: Date) {
  return (((at.getUTCHours() + at.getUTCMinutes() / 60 + city.utcOffset) % 24) + 24) % 24;
}

/** The local day of the week, 0 = Sunday. */
export function localDay(city: City, at: Date) {
  return new Date(at.getTime() + city.utcOffset * 3_600_000).getUTCDay();
}

/** Seasonal mean temperature: coldest mid-January, warmest mid-July (northern hemisphere). */
export function seasonalMean(city: City, at: Date) {
  const dayOfYear = (at.getTime() - Date.UTC(at.getUTCFullYear(), 0, 1)) / 86_400_000;
  const phase = Math.cos((2 * Math.PI * (dayOfYear - 15)) / 365);
  return (city.january + city.july) / 2 + ((city.january - city.july) / 2) * phase;
}

/** The daily cycle: -1 at 03:00 and +1 at 15:00 local time. */
export function dailyCycle(hour: number) {
  return Math.sin((2 * Math.PI * (hour - 9)) / 24);
}

/** A bump around `peak` local time, `width` hours wide (rush hours, lunch). */
export function peak(hour: number, at: number, width: number) {
  return Math.exp(-((hour - at) ** 2) / (2 * width ** 2));
}
