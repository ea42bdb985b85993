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

const secretNames = new Map<string, boolean>();
function isSecret(name: string) {
  let verdict = secretNames.get(name);
  if (verdict === undefined) {
    verdict = secret.test(name);
    if (secretNames.size < 10_000) secretNames.set(name, verdict);
  }
  return verdict;
}

/**
 * Values of fields whose names say they are secrets never reach the log, however deep. Objects are copied
 * only when something in them is redacted: most lines have nothing to hide.
 */
function redact(value: unknown, depth = 0): unknown {
  if (depth > 4 || typeof value !== "object" || value === null) return value;
  if (Array.isArray(value)) {
    const items = value.map((item) => redact(item, depth + 1));
    return items.some((item, i) => item !== value[i]) ? items : value;
  }
  let copy: Record<string, unknown> | undefined;
  for (const name in value) {
    const field = (value as Record<string, unknown>)[name];
    const clean = isSecret(name) ? "[redacted]" : redact(field, depth + 1);
    if (clean !== field) {
      copy ??= { ...value };
      copy[name] = clean;
    }
  }
  return copy ?? value;
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
