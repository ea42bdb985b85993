import type { Faker } from "@faker-js/faker";
import { sensorsSimulator } from "./sensors";
import { trafficSimulator } from "./traffic";
import { weatherSimulator } from "./weather";

/** One simulated device: its source id and whatever the kind keeps about it between readings. */
export interface Device<State = unknown> {
  sourceId: string;
  state: State;
}

/** How a kind's devices behave; the runner does the sending. */
export interface Simulator<State = unknown> {
  kind: string;
  /** Minutes between two readings of one device during a backfill. */
  backfillEveryMinutes: number;
  devices(count: number, faker: Faker): Device<State>[];
  /** A realistic payload of the device at a moment. */
  reading(device: Device<State>, at: Date, faker: Faker): Record<string, unknown>;
  /** A payload the gateway must refuse. */
  invalid(device: Device<State>, at: Date, faker: Faker): Record<string, unknown>;
}

export const simulators: Record<string, Simulator> = {
  sensors: sensorsSimulator as Simulator,
  traffic: trafficSimulator as Simulator,
  weather: weatherSimulator as Simulator,
};
