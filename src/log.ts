const levels = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 } as const;
export type LogLevel = keyof typeof levels;

export type Logger = Record<
  Exclude<LogLevel, "silent">,
  (message: string, fields?: Record<string, unknown>) => void
>;

/** One JSON object per line on stdout, the shape log shippers expect. */
export function createLogger(level: LogLevel, base: Record<string, unknown> = {}): Logger {
  const write =
    (name: Exclude<LogLevel, "silent">) =>
    (message: string, fields: Record<string, unknown> = {}) => {
      if (levels[name] < levels[level]) return;
      process.stdout.write(
        `${JSON.stringify({ time: new Date().toISOString(), level: name, message, ...base, ...fields })}\n`,
      );
    };
  return { debug: write("debug"), info: write("info"), warn: write("warn"), error: write("error") };
}
