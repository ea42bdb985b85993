import { tmpdir } from "node:os";
import { drizzle } from "drizzle-orm/postgres-js";
import { migrate } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import journal from "../../drizzle/meta/_journal.json";
import type { Logger } from "../log";

export function createDb(url: string, poolSize = 10) {
  const client = postgres(url, {
    max: poolSize,
    connect_timeout: 3,
    idle_timeout: 60,
    onnotice: () => {},
  });
  return { db: drizzle(client), client };
}

export type Db = ReturnType<typeof createDb>["db"];

const connectionErrors = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "CONNECT_TIMEOUT",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "57P01", // admin_shutdown
  "57P02", // crash_shutdown
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
]);

/** Whether an error means PostgreSQL cannot be reached now, as opposed to a bad statement. */
export function isUnavailable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; current && depth < 5; depth++) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === "string" && connectionErrors.has(code)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** The database's own words: drizzle wraps them in a message that repeats the statement and every parameter. */
export function databaseError(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause ?? error;
  const message = cause instanceof Error ? cause.message : String(cause);
  return message.length > 300 ? `${message.slice(0, 300)}…` : message;
}

/** Creates the database when missing, then applies the pending migrations from drizzle/. */
export async function migrateDatabase(url: string, logger: Logger) {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.slice(1));
  const admin = postgres({ ...parseUrl(url), database: "postgres", max: 1, onnotice: () => {} });
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${name}`;
    if (!exists) {
      await admin.unsafe(`create database "${name.replace(/"/g, '""')}"`);
      logger.info("created database", { database: name });
    }
  } finally {
    await admin.end();
  }
  const { db, client } = createDb(url, 1);
  try {
    // Gateways and sinks starting together would otherwise race to apply the same migration.
    await client`select pg_advisory_lock(7283140001)`;
    await migrate(db, { migrationsFolder: await migrationsFolder() });
  } finally {
    await client.end();
  }
}

/**
 * drizzle/ beside the sources, or, in a single executable built by `bun run build`, the migrations embedded
 * in it (the SQL files as files, the journal as a module), written out to a temporary folder.
 */
async function migrationsFolder(): Promise<string> {
  const embedded = Bun.embeddedFiles.filter((file) =>
    (file as Blob & { name: string }).name.endsWith(".sql"),
  );
  if (embedded.length === 0) return `${import.meta.dir}/../../drizzle`;
  const folder = `${tmpdir()}/sluice-migrations-${process.pid}`;
  await Bun.write(`${folder}/meta/_journal.json`, JSON.stringify(journal));
  for (const file of embedded) await Bun.write(`${folder}/${(file as Blob & { name: string }).name}`, file);
  return folder;
}

function parseUrl(url: string) {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 5432),
    username: decodeURIComponent(parsed.username) || undefined,
    password: decodeURIComponent(parsed.password) || undefined,
  };
}
