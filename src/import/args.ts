import { parseArgs } from "node:util";
import { findKind, type Kind, kindNames } from "../kinds";

export const formats = ["csv", "ndjson", "json"] as const;
export type Format = (typeof formats)[number];

export const importUsage = `usage: bun run import <file|-> --kind <kind> [options]
  <file|->              the file to import; - reads stdin (then --format is required)
  --kind ${kindNames.join("|")}
  --format csv|ndjson|json  default from the extension: .csv, .ndjson or .jsonl, .json
                        csv: a header row (dotted names for nested fields), sent again with every batch
                        ndjson: one record per line; json: one top-level array, streamed
  --batch <n>           records per request, 1 to 5000 (default 1000); requests also stay under --max-bytes
  --max-bytes <n>       request body limit, the gateway's MAX_BODY_BYTES (default 1048576)
  --concurrency <n>     requests in flight (default 4)
  --follow              at the end keep reading what is appended, across rotation and truncation,
                        until Ctrl-C or SIGTERM (files only; not with json)
  --idle-ms <n>         with --follow or stdin, send a partial batch after this much quiet (default 500)
exit status: 0 all records accepted, 1 records refused or the import stopped, 2 bad arguments
environment: SLUICE_URL (http://127.0.0.1:8080), API_KEY`;

export class UsageError extends Error {}

export interface ImportOptions {
  /** The file's path, or "-" for stdin. */
  path: string;
  kind: Kind;
  format: Format;
  batch: number;
  maxBytes: number;
  concurrency: number;
  follow: boolean;
  idleMs: number;
}

const extensions: Record<string, Format> = {
  csv: "csv",
  ndjson: "ndjson",
  jsonl: "ndjson",
  json: "json",
};

/** The format a file name implies, looking through a trailing rotation number such as `.1`. */
export function formatOfPath(path: string): Format | undefined {
  const name = path.toLowerCase().replace(/(\.\d+)+$/, "");
  const extension = name.match(/\.([a-z]+)$/)?.[1];
  return extension ? extensions[extension] : undefined;
}

export function parseImportArgs(argv: string[]): ImportOptions {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) throw new UsageError("");
  if (positionals.length !== 1) throw new UsageError("name one file to import, or - for stdin");
  const path = positionals[0] as string;
  if (!values.kind) throw new UsageError("--kind is required");
  const kind = findKind(values.kind);
  if (!kind) throw new UsageError(`--kind ${values.kind} is not one of ${kindNames.join(", ")}`);
  const named = values.format;
  if (named !== undefined && !(formats as readonly string[]).includes(named))
    throw new UsageError(`--format must be one of ${formats.join(", ")}`);
  const format = (named as Format | undefined) ?? (path === "-" ? undefined : formatOfPath(path));
  if (!format) {
    throw new UsageError(
      path === "-"
        ? "reading stdin needs --format"
        : `cannot tell the format of ${path} from its extension; pass --format`,
    );
  }
  if (values.follow && path === "-") throw new UsageError("--follow needs a file, not stdin");
  if (values.follow && format === "json") throw new UsageError("--follow works with csv and ndjson only");
  const number = (name: string, value: string | undefined, fallback: number, min: number, max: number) => {
    const n = value === undefined ? fallback : Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new UsageError(`--${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
  return {
    path,
    kind,
    format,
    batch: number("batch", values.batch, 1000, 1, 5000),
    maxBytes: number("max-bytes", values["max-bytes"], 1_048_576, 1024, 1 << 30),
    concurrency: number("concurrency", values.concurrency, 4, 1, 64),
    follow: values.follow ?? false,
    idleMs: number("idle-ms", values["idle-ms"], 500, 10, 60_000),
  };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      kind: { type: "string" },
      format: { type: "string" },
      batch: { type: "string" },
      "max-bytes": { type: "string" },
      concurrency: { type: "string" },
      follow: { type: "boolean" },
      "idle-ms": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}
