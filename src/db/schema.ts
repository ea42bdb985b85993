import {
  doublePrecision,
  index,
  integer,
  jsonb,
  type PgColumnBuilderBase,
  pgTable,
  primaryKey,
  text,
  timestamp,
} from "drizzle-orm/pg-core";
import { type Kind, kinds } from "../kinds";
import type { Via } from "../record";

const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: "date" });

/** Managed API keys: only a SHA-256 hash of each key is kept (keys are 256 random bits, so a slow hash adds nothing). */
export const apiKeys = pgTable("api_keys", {
  id: text("id").primaryKey(),
  name: text("name"),
  hash: text("hash").notNull().unique(),
  scopes: text("scopes").array().notNull(),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  revokedAt: timestamp("revoked_at", { withTimezone: true, mode: "date" }),
});

/** Calls each connector made in the current minute, day and month, so that quotas survive restarts. */
export const connectorUsage = pgTable(
  "connector_usage",
  {
    connector: text("connector").notNull(),
    period: text("period").$type<"minute" | "day" | "month">().notNull(),
    windowStart: timestamptz("window_start").notNull(),
    calls: integer("calls").notNull(),
  },
  (table) => [primaryKey({ columns: [table.connector, table.period] })],
);

/**
 * The MQTT sessions gateways have opened in the shared subscription, each held by its gateway's advisory lock:
 * one whose lock is free belongs to a gateway that is gone, and a live one drains and ends it.
 */
export const mqttSessions = pgTable(
  "mqtt_sessions",
  {
    /** The broker and the shared subscription: a session is taken over only by a gateway of the same. */
    scope: text("scope").notNull(),
    clientId: text("client_id").notNull(),
    openedAt: timestamptz("opened_at").notNull().defaultNow(),
  },
  (table) => [primaryKey({ columns: [table.scope, table.clientId] })],
);

/** `visitorsIn` → `visitors_in`: metric names as SQL column names. */
export const snakeCase = (name: string) => name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);

/** Roll-up widths kept in PostgreSQL; 5m and 15m buckets are summed from 1m rows. */
export type RollupWidth = "1m" | "1h" | "1d";

function metricColumns(metrics: Kind["metrics"]) {
  const columns: Record<string, PgColumnBuilderBase> = {};
  for (const { name: metric } of metrics) {
    const column = snakeCase(metric);
    columns[`${metric}Count`] = integer(`${column}_count`).notNull().default(0);
    columns[`${metric}Sum`] = doublePrecision(`${column}_sum`);
    columns[`${metric}Min`] = doublePrecision(`${column}_min`);
    columns[`${metric}Max`] = doublePrecision(`${column}_max`);
  }
  return columns;
}

/**
 * A kind's two tables: its raw records (idempotent on id) and its roll-ups, one row per source, width,
 * bucket and quality, with count, sum, min and max of every metric.
 */
function buildTables(kind: Kind) {
  const records = pgTable(
    `${kind.name}_records`,
    {
      id: text("id").primaryKey(),
      sourceId: text("source_id").notNull(),
      ts: timestamptz("ts").notNull(),
      receivedAt: timestamptz("received_at").notNull(),
      via: text("via").$type<Via>().notNull(),
      /** The connector that polled it; null for records devices sent. */
      origin: text("origin"),
      data: jsonb("data").$type<Record<string, unknown>>().notNull(),
      /** Why a record is suspect (`<metric>:out-of-range`, `<metric>:stuck`); empty when it is not. */
      flags: text("flags").array().notNull().default([]),
    },
    (table) => [
      index(`${kind.name}_records_source_ts`).on(table.sourceId, table.ts.desc(), table.id.desc()),
      index(`${kind.name}_records_ts`).on(table.ts.desc(), table.id.desc()),
    ],
  );
  const rollups = pgTable(
    `${kind.name}_rollups`,
    {
      sourceId: text("source_id").notNull(),
      width: text("width").$type<RollupWidth>().notNull(),
      bucketStart: timestamptz("bucket_start").notNull(),
      quality: text("quality").$type<"ok" | "suspect">().notNull(),
      count: integer("count").notNull(),
      ...metricColumns(kind.metrics),
    },
    (table) => [
      primaryKey({ columns: [table.sourceId, table.width, table.bucketStart, table.quality] }),
      index(`${kind.name}_rollups_width_bucket`).on(table.width, table.bucketStart),
    ],
  );
  return { records, rollups };
}

export type KindTables = ReturnType<typeof buildTables>;
const tablesByKind = new Map<string, KindTables>(kinds.map((kind) => [kind.name, buildTables(kind)]));

/** The tables of a registered kind. */
export function kindTables(kind: Kind): KindTables {
  const tables = tablesByKind.get(kind.name);
  if (!tables) throw new Error(`kind ${kind.name} is not in the registry`);
  return tables;
}

/** Every table by a name of its own, for drizzle-kit (see drizzle-kit.cts). */
export const allTables = {
  apiKeys,
  connectorUsage,
  mqttSessions,
  ...Object.fromEntries(
    [...tablesByKind].flatMap(([name, { records, rollups }]) => [
      [`${name}Records`, records],
      [`${name}Rollups`, rollups],
    ]),
  ),
};
