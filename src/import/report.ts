import type { FieldError } from "./send";

export interface Counters {
  /** Records taken from the file (sent or on their way). */
  read: number;
  /** Records the gateway has answered for. */
  sent: number;
  accepted: number;
  /** Records refused by the gateway or found unsendable in the file. */
  refused: number;
  bytes: number;
}

interface Output {
  write(text: string): unknown;
}

export interface ReportOptions {
  /** The file's size, when it is known and fixed: percent and ETA. */
  total?: number;
  /** Redraw one progress line in place (a terminal), or print plain lines now and then. */
  tty: boolean;
  out: Output;
  err: Output;
  /** How many refused records are printed; the rest are counted. */
  shown?: number;
  intervalMs?: number;
}

export const SHOWN_REFUSALS = 20;

const grouped = (n: number) => Math.round(n).toLocaleString("en-US");

export function formatBytes(bytes: number) {
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function formatDuration(seconds: number) {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

/** Progress while it runs, the refused records as they are known, and the summary at the end. */
export function createReport(options: ReportOptions) {
  const counters: Counters = { read: 0, sent: 0, accepted: 0, refused: 0, bytes: 0 };
  const started = performance.now();
  const shownLimit = options.shown ?? SHOWN_REFUSALS;
  let shown = 0;
  let drawn = false;
  /** (time, records answered) a few seconds back, for the current rate. */
  const samples: [number, number][] = [[started, 0]];

  const rate = () => {
    const now = performance.now();
    while (samples.length > 1 && now - (samples[1] as [number, number])[0] > 5000) samples.shift();
    const [then, count] = samples[0] as [number, number];
    samples.push([now, counters.sent]);
    return now - then > 0 ? ((counters.sent - count) * 1000) / (now - then) : 0;
  };

  const progressLine = () => {
    const seconds = (performance.now() - started) / 1000;
    const parts = [`${grouped(counters.sent)} records sent`, `${grouped(rate())}/s`];
    const { total } = options;
    if (total && total > 0) {
      const share = Math.min(1, counters.bytes / total);
      const eta = counters.bytes > 0 ? (seconds * (total - counters.bytes)) / counters.bytes : Number.NaN;
      parts.push(
        `${formatBytes(counters.bytes)} of ${formatBytes(total)} (${(share * 100).toFixed(1)}%)`,
        `ETA ${formatDuration(eta)}`,
      );
    } else parts.push(`${formatBytes(counters.bytes)} read`);
    parts.push(`${grouped(counters.accepted)} accepted`, `${grouped(counters.refused)} refused`);
    return parts.join(" · ");
  };

  const clear = () => {
    if (options.tty && drawn) options.out.write("\r\x1b[K");
    drawn = false;
  };
  const draw = () => {
    if (options.tty) {
      options.out.write(`\r\x1b[K${progressLine()}`);
      drawn = true;
    } else options.out.write(`${formatDuration((performance.now() - started) / 1000)} ${progressLine()}\n`);
  };
  const timer = setInterval(draw, options.intervalMs ?? (options.tty ? 250 : 5000));

  /** A line on stderr, above the progress line. */
  const say = (text: string) => {
    const redraw = drawn;
    clear();
    options.err.write(`${text}\n`);
    if (redraw) draw();
  };

  return {
    counters,
    say,
    /** One refused record: printed while fewer than `shown` were, counted always. */
    refuse(where: string, errors: FieldError[]) {
      counters.refused++;
      if (shown >= shownLimit) return;
      shown++;
      const text = errors.map(({ path, message }) => (path ? `${path}: ${message}` : message)).join("; ");
      say(`${where}: ${text}`);
    },
    /** Stops the progress and prints the summary; returns the summary line. */
    finish(name: string) {
      clearInterval(timer);
      clear();
      if (counters.refused > shown) options.err.write(`... and ${counters.refused - shown} more refused\n`);
      const seconds = (performance.now() - started) / 1000;
      const perSecond = counters.sent / Math.max(seconds, 0.001);
      const summary =
        `imported ${name}: ${counters.sent} records sent, ${counters.accepted} accepted, ` +
        `${counters.refused} refused, ${seconds.toFixed(1)} s, ${Math.round(perSecond)} records/s`;
      options.out.write(`${summary}\n`);
      return { summary, seconds, perSecond };
    },
  };
}
