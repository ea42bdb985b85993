import { parseArgs } from "node:util";
import {
  type ApiName,
  type ApiServerOptions,
  apiNames,
  examplePaths,
  isApiName,
  startApiServer,
} from "./index";

export interface ServeOptions extends ApiServerOptions {
  api: ApiName;
}

/** `simulate --serve <api> [--port N] [--host H] [--api-key K] [--per-minute N] [--per-month N] [--devices N] [--seed N]` */
export function parseServeArgs(
  argv: string[],
  usage: string,
  env: Record<string, string | undefined> = process.env,
): ServeOptions {
  const fail = (message: string): never => {
    throw new Error(`${message}\n${usage}`);
  };
  let values: ReturnType<typeof parse>;
  try {
    values = parse(argv);
  } catch (error) {
    return fail((error as Error).message);
  }
  if (values.help) fail("");
  const api = values.serve;
  if (!isApiName(api)) return fail(`--serve takes one of ${apiNames.join(", ")}`);
  const number = (name: keyof typeof values, min: number, max = Number.MAX_SAFE_INTEGER) => {
    const value = values[name];
    if (value === undefined || typeof value !== "string") return undefined;
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < min || n > max)
      fail(`--${name} must be a whole number from ${min} to ${max}`);
    return n;
  };
  // From the environment, the key stays out of `ps` and out of `bun run`'s echo of the command line.
  const apiKey = values["api-key"] ?? (env.SIMULATED_API_KEY || undefined);
  if (apiKey === "") fail("--api-key must not be empty");
  return {
    api,
    port: number("port", 0, 65_535) ?? 0,
    hostname: values.host ?? "127.0.0.1",
    apiKey,
    perMinute: number("per-minute", 1),
    perMonth: number("per-month", 1),
    devices: number("devices", 1, 100_000),
    seed: number("seed", 0),
  };
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    strict: true,
    options: {
      serve: { type: "string" },
      port: { type: "string" },
      host: { type: "string" },
      "api-key": { type: "string" },
      "per-minute": { type: "string" },
      "per-month": { type: "string" },
      devices: { type: "string" },
      seed: { type: "string" },
      help: { type: "boolean" },
    },
  }).values;
}

/** curl's arguments for the example, with a placeholder where the credential goes. */
const exampleArgs: Record<ApiName, (url: string, key: boolean) => string> = {
  openweather: (url, key) => `'${url}${key ? "&appid=<api-key>" : ""}'`,
  aviationstack: (url, key) => `'${url}${key ? "&access_key=<api-key>" : ""}'`,
  store: (url, key) => `${key ? "-H 'Authorization: Bearer <api-key>' " : ""}'${url}'`,
};

/** Runs one simulated API until SIGINT or SIGTERM; prints where it is and how to ask it, never the key. */
export async function runServeCommand(argv: string[], usage: string) {
  let options: ServeOptions;
  try {
    options = parseServeArgs(argv, usage);
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  const server = startApiServer(options.api, options);
  const example = `${server.url}${examplePaths[options.api]}`;
  const limits = [
    options.apiKey ? "key required" : "no key required",
    options.perMinute ? `${options.perMinute} requests/min` : undefined,
    options.perMonth ? `${options.perMonth} requests/month` : undefined,
  ].filter(Boolean);
  console.log(`simulated ${options.api} API on ${server.url} (${limits.join(", ")})`);
  console.log(`example: curl ${exampleArgs[options.api](example, options.apiKey !== undefined)}`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await server.stop();
  console.log(`served ${server.stats.requests} requests ${JSON.stringify(server.stats.byStatus)}`);
  return 0;
}
