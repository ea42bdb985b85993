import type { Kind } from "./define";
import { sensors } from "./sensors";
import { traffic } from "./traffic";
import { weather } from "./weather";

/** The registry: adding a kind means adding its file and listing it here. */
export const kinds: readonly Kind[] = [sensors, traffic, weather];

export const kindNames = kinds.map((kind) => kind.name);

export function findKind(name: string): Kind | undefined {
  return kinds.find((kind) => kind.name === name);
}

export type { Kind } from "./define";
