// One live status line for scripts/up.sh, from the gateway's /metrics: records/s per kind, dead letters, sink lag.
//   bun scripts/status.ts <base URL>      (every 2 s; on a terminal the line is rewritten in place)
import { kinds } from "../src/kinds";

const base = process.argv[2] ?? "http://127.0.0.1:8080";
const tty = process.stdout.isTTY;

/** Sums of the samples of each metric, by the value of one label (or "" for all). */
function sums(text: string, metric: string, label?: string) {
  const totals = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${metric}{`) && !line.startsWith(`${metric} `)) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    const key = label ? (line.match(new RegExp(`${label}="([^"]*)"`))?.[1] ?? "") : "";
    totals.set(key, (totals.get(key) ?? 0) + value);
  }
  return totals;
}

let previous: { at: number; accepted: Map<string, number>; dead: number } | undefined;
let printedAt = Number.NEGATIVE_INFINITY;
for (;;) {
  const text = await fetch(`${base}/metrics`)
    .then((response) => response.text())
    .catch(() => undefined);
  if (text) {
    const now = performance.now();
    const accepted = sums(text, "sluice_records_accepted_total", "kind");
    const dead = sums(text, "sluice_dead_letters_total").get("") ?? 0;
    const lag = sums(text, "sluice_sink_lag_records").get("") ?? 0;
    if (previous) {
      const seconds = (now - previous.at) / 1000;
      const rate = (value: number, before = 0) => ((value - before) / seconds).toFixed(1);
      const perKind = kinds.map(
        ({ name }) => `${name} ${rate(accepted.get(name) ?? 0, previous?.accepted.get(name))}/s`,
      );
      const line = `${perKind.join(" · ")} · dead letters ${dead} (${rate(dead, previous.dead)}/s) · sink lag ${lag}`;
      if (tty) process.stdout.write(`\r\x1b[2K${line}`);
      else if (now - printedAt > 30_000) {
        console.log(line);
        printedAt = now;
      }
    }
    previous = { at: now, accepted, dead };
  }
  await Bun.sleep(2000);
}
