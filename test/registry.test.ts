import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { z } from "@hono/zod-openapi";
import { generateDrizzleJson, generateMigration } from "drizzle-kit/api";
import postgres from "postgres";
import journal from "../drizzle/meta/_journal.json";
import { allTables } from "../src/db/schema";
import { kindNames } from "../src/kinds";
import { defineKind } from "../src/kinds/define";
import { simulators } from "../src/simulators";
import { freePort, testDatabase } from "./helpers";

const root = resolve(import.meta.dir, "..");

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return /\.(ts|cts|js|htm)$/.test(name) ? [path] : [];
  });
}

/** Relative imports of a file (static, type-only, re-exports, dynamic and require), resolved to files. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specifiers = [
    ...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s+"(\.[^"]+)"/g),
    ...text.matchAll(/\b(?:import|require)\(\s*"(\.[^"]+)"\s*\)/g),
  ].map((match) => match[1] as string);
  return specifiers.map((specifier) => {
    const base = resolve(dirname(file), specifier);
    const found = [base, `${base}.ts`, `${base}.cts`, join(base, "index.ts")].find(
      (path) => existsSync(path) && statSync(path).isFile(),
    );
    if (!found) throw new Error(`${relative(root, file)} imports ${specifier}, which does not exist`);
    return found;
  });
}

/** Every cycle of a graph, each as the path that closes it. */
function findCycles(graph: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, "open" | "done">();
  const visit = (node: string, trail: string[]) => {
    if (state.get(node) === "done") return;
    if (state.get(node) === "open") {
      cycles.push([...trail.slice(trail.indexOf(node)), node]);
      return;
    }
    state.set(node, "open");
    for (const next of graph.get(node) ?? []) visit(next, [...trail, node]);
    state.set(node, "done");
  };
  for (const node of graph.keys()) visit(node, []);
  return cycles;
}

describe("the code's shape", () => {
  const files = sourceFiles(join(root, "src"));

  test("no import cycles in src/, type imports and dynamic imports included", () => {
    const graph = new Map(
      files.map((file) => [file, importsOf(file).filter((path) => path.includes("/src/"))]),
    );
    const cycles = findCycles(graph).map((cycle) => cycle.map((path) => relative(root, path)).join(" -> "));
    expect(cycles).toEqual([]);
    // What the check reads: a type import counts as much as any other.
    expect(graph.get(join(root, "src/ingest/validate.ts"))).toContain(join(root, "src/ingest/decode.ts"));
    expect(
      findCycles(
        new Map([
          ["a", ["b"]],
          ["b", ["c"]],
          ["c", ["a"]],
        ]),
      ),
    ).toEqual([["a", "b", "c", "a"]]);
  });

  test("every source file is under 300 lines", () => {
    const long = files
      .map((file) => [relative(root, file), readFileSync(file, "utf8").split("\n").length] as const)
      .filter(([, lines]) => lines > 300);
    expect(long).toEqual([]);
  });
});

describe("the registry cannot be half done", () => {
  test("the migrations in drizzle/ create exactly the tables the registry derives", async () => {
    const last = journal.entries.at(-1);
    const snapshot = await Bun.file(
      `${root}/drizzle/meta/${String(last?.idx).padStart(4, "0")}_snapshot.json`,
    ).json();
    const statements = await generateDrizzleJson(allTables, snapshot.id);
    const missing = await generateMigration(snapshot, statements);
    // A kind listed without its migration: run `bun run db:generate --name <kind>`.
    expect(missing).toEqual([]);
  });

  test("every registered kind has a simulator", () => {
    expect(Object.keys(simulators).sort()).toEqual([...kindNames].sort());
  });

  test("a metric that is not a number field describing its unit stops the definition", () => {
    const spec = {
      name: "parcels",
      resource: "scans",
      title: "ParcelScan",
      description: "A parcel scanned at a depot.",
      sourceField: "parcelId",
      example: () => ({}),
    };
    expect(() => defineKind({ ...spec, fields: { weight: z.number() }, metrics: { weight: {} } })).toThrow(
      "kind parcels: metric weight at weight must be a number field that describes its unit",
    );
    expect(() =>
      defineKind({
        ...spec,
        fields: { weight: z.number().describe("kg") },
        metrics: { mass: { path: "weight.kg" } },
      }),
    ).toThrow("metric mass at weight.kg");
  });
});

describe("a kind whose tables are missing", () => {
  let database: Awaited<ReturnType<typeof testDatabase>>;
  beforeAll(async () => {
    database = await testDatabase();
    const sql = postgres(database.url, { max: 1, onnotice: () => {} });
    await sql`drop table flights_records`;
    await sql`alter table weather_rollups drop column pressure_sum`;
    await sql.end();
  });
  afterAll(() => database.drop());

  test("stops the start with a message naming the kind, the table and the command that fixes it", async () => {
    const proc = Bun.spawn(["bun", "src/main.ts", "start"], {
      cwd: root,
      env: { ...process.env, DATABASE_URL: database.url, PORT: String(await freePort()), LOG_LEVEL: "warn" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const exited = await Promise.race([proc.exited, Bun.sleep(30_000).then(() => "still running")]);
    if (exited === "still running") proc.kill("SIGKILL");
    const stderr = await new Response(proc.stderr).text();
    expect(exited).toBe(1);
    expect(stderr).toContain("kind flights: table flights_records does not exist");
    expect(stderr).toContain(
      "kind weather: column weather_rollups.pressure_sum is missing, not double precision",
    );
    expect(stderr).toContain("bun run db:generate --name weather-flights");
  }, 40_000);
});
