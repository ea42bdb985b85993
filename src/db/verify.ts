import { sql } from "drizzle-orm";
import { getTableConfig, type PgTable } from "drizzle-orm/pg-core";
import { kinds } from "../kinds";
import { createDb, type Db } from "./client";
import { kindTables } from "./schema";

export class SchemaMismatch extends Error {}

/**
 * What is missing in the database for each registered kind: a table, or a column of the type the schema gives
 * it. A kind listed in the registry whose tables were never migrated would otherwise be acknowledged (202)
 * and then never stored.
 */
export async function schemaProblems(db: Db): Promise<string[]> {
  const rows = await db.execute<{ table_name: string; column_name: string; type: string }>(sql`
    select c.relname as table_name, a.attname as column_name, format_type(a.atttypid, a.atttypmod) as type
    from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = current_schema() and c.relkind in ('r', 'p') and a.attnum > 0 and not a.attisdropped`);
  const columns = new Map<string, Map<string, string>>();
  for (const row of rows) {
    const table = columns.get(row.table_name) ?? new Map<string, string>();
    table.set(row.column_name, row.type);
    columns.set(row.table_name, table);
  }
  const problems: string[] = [];
  for (const kind of kinds) {
    for (const table of Object.values(kindTables(kind)) as PgTable[]) {
      const config = getTableConfig(table);
      const existing = columns.get(config.name);
      if (!existing) {
        problems.push(`kind ${kind.name}: table ${config.name} does not exist`);
        continue;
      }
      for (const column of config.columns) {
        const type = existing.get(column.name);
        const wanted = column.getSQLType();
        if (type !== wanted) {
          const found = type === undefined ? "is missing" : `is ${type}`;
          problems.push(`kind ${kind.name}: column ${config.name}.${column.name} ${found}, not ${wanted}`);
        }
      }
    }
  }
  return problems;
}

/** Stops the start when a registered kind's tables are not there, naming the kind and the command that fixes it. */
export async function verifySchema(url: string): Promise<void> {
  const { db, client } = createDb(url, 1);
  try {
    const problems = await schemaProblems(db);
    if (problems.length === 0) return;
    const names = [...new Set(problems.map((problem) => problem.split(":")[0]?.replace("kind ", "")))];
    throw new SchemaMismatch(
      `the database lacks what registered kinds need:\n  ${problems.join("\n  ")}\n` +
        `no migration in drizzle/ creates it: run \`bun run db:generate --name ${names.join("-")}\`, ` +
        "then start again (start applies new migrations; `bun run migrate` applies them alone)",
    );
  } finally {
    await client.end();
  }
}
