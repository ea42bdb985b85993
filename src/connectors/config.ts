import { z } from "zod";
import { formatPath } from "../ingest/validate";
import { kindNames } from "../kinds";

/** `30s`, `10m`, `1h`, `1d` in milliseconds, or undefined when the text is no such duration. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)(s|m|h|d)$/.exec(text);
  if (!match) return undefined;
  return Number(match[1]) * { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[match[2] as "s"];
}

function isCron(text: string) {
  try {
    Bun.cron.parse(text);
    return true;
  } catch {
    return false;
  }
}

const every = z
  .string()
  .refine(
    (text) => (parseDuration(text) ?? 0) >= 1000 || isCron(text),
    "a duration (30s, 10m, 1h) of at least 1 s, or a five-field cron expression (0 * * * *)",
  );

const url = z.url({ protocol: /^https?$/, error: "an http:// or https:// URL" });
const limit = z.number().int().min(1).optional();
const params = z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])).default({});

/** What every connector takes. */
const common = {
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, "lowercase letters, digits and . _ - (at most 63)"),
  every,
  baseUrl: url.optional(),
  timeoutMs: z.number().int().min(100).max(300_000).default(10_000),
  maxPerMinute: limit,
  maxPerDay: limit,
  maxPerMonth: limit,
};

const location = z.union([
  z.strictObject({ id: z.number().int().positive() }),
  z.strictObject({ q: z.string().min(1) }),
  z.strictObject({ lat: z.number().min(-90).max(90), lon: z.number().min(-180).max(180) }),
]);

const openweather = z.strictObject({
  ...common,
  type: z.literal("openweather"),
  apiKey: z.string().min(1),
  units: z.enum(["standard", "metric", "imperial"]).default("metric"),
  locations: z.array(location).min(1),
});

const aviationstack = z.strictObject({
  ...common,
  type: z.literal("aviationstack"),
  apiKey: z.string().min(1),
  params,
  limit: z.number().int().min(1).max(100).default(100),
  maxPages: z.number().int().min(1).default(1),
});

const pagination = z.discriminatedUnion("type", [
  z.strictObject({
    type: z.literal("offset"),
    offsetParam: z.string().min(1).default("offset"),
    limitParam: z.string().min(1).default("limit"),
    limit: z.number().int().min(1).default(100),
  }),
  z.strictObject({
    type: z.literal("cursor"),
    /** Dotted path of the next cursor in the body; a missing or null one ends the poll. */
    path: z.string().min(1),
    param: z.string().min(1),
  }),
  z.strictObject({ type: z.literal("link") }),
]);

const http = z.strictObject({
  ...common,
  type: z.literal("http"),
  kind: z.enum(kindNames as [string, ...string[]]),
  url,
  method: z.enum(["GET", "POST"]).default("GET"),
  headers: z.record(z.string(), z.string()).default({}),
  query: params,
  body: z.unknown().optional(),
  /** Dotted path of the array of records in the body; empty for the body itself. */
  items: z.string().default(""),
  pagination: pagination.optional(),
  maxPages: z.number().int().min(1).default(10),
});

export const connectorSchema = z.discriminatedUnion("type", [openweather, aviationstack, http]);
export type ConnectorConfig = z.infer<typeof connectorSchema>;

const fileSchema = z.strictObject({
  connectors: z.array(connectorSchema).superRefine((connectors, ctx) => {
    const seen = new Set<string>();
    connectors.forEach((connector, index) => {
      if (seen.has(connector.name)) {
        ctx.addIssue({ code: "custom", path: [index, "name"], message: `${connector.name} is used twice` });
      }
      seen.add(connector.name);
    });
  }),
});

export class ConnectorsFileError extends Error {}

/** `${VAR}` in every string, from the environment; a variable that is not set is an error at its path. */
function expand(
  value: unknown,
  env: Record<string, string | undefined>,
  path: PropertyKey[],
  errors: string[],
): unknown {
  if (typeof value === "string") {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_, name: string) => {
      const found = env[name];
      if (found === undefined || found === "")
        errors.push(`${formatPath(path)}: environment variable ${name} is not set`);
      return found ?? "";
    });
  }
  if (Array.isArray(value)) return value.map((item, i) => expand(item, env, [...path, i], errors));
  if (typeof value === "object" && value !== null) {
    return Object.fromEntries(
      Object.entries(value).map(([key, item]) => [key, expand(item, env, [...path, key], errors)]),
    );
  }
  return value;
}

/** Reads CONNECTORS_FILE (YAML, or JSON, which is YAML); a bad file is refused with each error's path. */
export async function loadConnectors(file: string, env: Record<string, string | undefined> = process.env) {
  const fail = (lines: string[]) => {
    throw new ConnectorsFileError(`${file} is not a valid connectors file:\n  ${lines.join("\n  ")}`);
  };
  let parsed: unknown;
  try {
    parsed = Bun.YAML.parse(await Bun.file(file).text());
  } catch (error) {
    fail([(error as Error).message]);
  }
  const errors: string[] = [];
  const result = fileSchema.safeParse(expand(parsed, env, [], errors));
  if (!result.success) {
    errors.push(
      ...result.error.issues.map((issue) => `${formatPath(issue.path) || "(file)"}: ${issue.message}`),
    );
  }
  if (errors.length > 0 || !result.success) fail(errors);
  return result.data?.connectors ?? [];
}
