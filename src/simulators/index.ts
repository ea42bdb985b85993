import type { KindName } from "../kinds";
import { flightsSimulator } from "./flights";
import { sensorsSimulator } from "./sensors";
import type { Simulator } from "./simulator";
import { trafficSimulator } from "./traffic";
import { weatherSimulator } from "./weather";

export type { Device, Simulator } from "./simulator";

/** Every kind has its simulator: a kind without one fails the type check here. */
export const simulators: Record<KindName, Simulator> = {
  flights: flightsSimulator,
  sensors: sensorsSimulator,
  traffic: trafficSimulator,
  weather: weatherSimulator,
};
