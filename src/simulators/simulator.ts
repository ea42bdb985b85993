import type { Faker } from "@faker-js/faker";
import type { KindName } from "../kinds";

/** One simulated device: its source id and whatever the kind keeps about it between readings. */
export interface Device<State = unknown> {
  /** The MQTT topic's source segment; a device that reports as several sources (a flight a day) moves it on. */
  sourceId: string;
  state: State;
}

/** How a kind's devices behave; the runner does the sending. */
export interface Simulator<State = unknown> {
  kind: KindName;
  /** Minutes between two readings of one device during a backfill. */
  backfillEveryMinutes: number;
  devices(count: number, faker: Faker): Device<State>[];
  /** A realistic payload of the device at a moment. */
  reading(device: Device<State>, at: Date, faker: Faker): Record<string, unknown>;
  /** A payload the gateway must refuse. */
  invalid(device: Device<State>, at: Date, faker: Faker): Record<string, unknown>;
}

export function round(value: number, digits: number) {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

export function clamp(value: number, min: number, max: number) {
  return Math.min(max, Math.max(min, value));
}
