import { AsyncLocalStorage } from "node:async_hooks";
import { writeSync } from "node:fs";

const levels = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof levels;

export type Logger = Record<
  Exclude<LogLevel, "silent">,
  (message: string, fields?: Record<string, unknown>) => void
>;

/** Fields every line logged while handling one request carries: its id, and what the handlers add. */
export const logContext = new AsyncLocalStorage<Record<string, unknown>>();

const secret = /pass(word)?|secret|token|authorization|api[-_]?keys?$|^key$|cookie/i;

/** Values of fields whose names say they are secrets never reach the log, however deep. */
function redact(value: unknown, depth = 0): unknown {
  if (depth > 4 || typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  return Object.fromEntries(
    Object.entries(value).map(([name, field]) => [
      name,
      secret.test(name) ? "[redacted]" : redact(field, depth + 1),
    ]),
  );
}

let pending = "";
function flush() {
  const text = pending;
  pending = "";
  if (text) process.stdout.write(text);
}
process.on("exit", () => {
  try {
    if (pending) writeSync(1, pending);
  } catch {}
});

/**
 * Lines are gathered and written together once per turn of the event loop, and at exit: a write per line
 * was a tenth of a busy gateway's time.
 */
function writeStdout(line: string) {
  if (!pending) setImmediate(flush);
  pending += line;
}

/** One JSON object per line on stdout, the shape log shippers expect. */
export function createLogger(
  level: LogLevel,
  base: Record<string, unknown> = {},
  write: (line: string) => void = writeStdout,
): Logger {
  const at =
    (name: Exclude<LogLevel, "silent">) =>
    (message: string, fields: Record<string, unknown> = {}) => {
      if (levels[name] < levels[level]) return;
      const line = {
        time: new Date().toISOString(),
        level: name,
        message,
        ...base,
        ...logContext.getStore(),
        ...fields,
      };
      write(`${JSON.stringify(redact(line))}\n`);
    };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}
