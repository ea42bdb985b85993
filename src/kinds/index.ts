import type { Kind } from "./define";
import { flights } from "./flights";
import { sensors } from "./sensors";
import { traffic } from "./traffic";
import { weather } from "./weather";

/** The registry: adding a kind means adding its file and listing it here. */
export const kinds = [sensors, traffic, weather, flights] as const satisfies readonly Kind[];

export type KindName = (typeof kinds)[number]["name"];

export const kindNames: readonly KindName[] = kinds.map((kind) => kind.name);

export const isKindName = (name: string): name is KindName => (kindNames as readonly string[]).includes(name);

export function findKind(name: string): Kind | undefined {
  return kinds.find((kind) => kind.name === name);
}

export type { Kind, Metric } from "./define";
