// The panels above the chart: rates, dead letters, sink lag and produce time from /metrics, and the latest
// dead letters.
import { escapeHtml } from "./chart.js";

const $ = (id) => document.getElementById(id);

// Prometheus text: name{labels} value → [{ name, labels, value }]
function parseMetrics(text) {
  return text
    .split("\n")
    .filter((line) => line && !line.startsWith("#"))
    .map((line) => {
      const match = line.match(/^(\w+)(?:\{(.*)\})?\s+(\S+)$/);
      if (!match) return undefined;
      const labels = Object.fromEntries(
        [...(match[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]),
      );
      return { name: match[1], labels, value: Number(match[3]) };
    })
    .filter(Boolean);
}
const total = (samples, name, filter = () => true) =>
  samples.filter((s) => s.name === name && filter(s.labels)).reduce((sum, s) => sum + s.value, 0);

let previous;
export async function refreshMetrics(api) {
  const samples = parseMetrics(await api("/metrics"));
  const now = performance.now();
  const accepted = {};
  for (const s of samples.filter((s) => s.name === "sluice_records_accepted_total")) {
    accepted[`${s.labels.kind} · ${s.labels.transport}`] = s.value;
  }
  const dead = total(samples, "sluice_dead_letters_total");
  if (previous) {
    const seconds = (now - previous.at) / 1000;
    const rows = Object.entries(accepted).map(([name, value]) => [
      name,
      (value - (previous.accepted[name] ?? 0)) / seconds,
    ]);
    $("rate-total").textContent = rows.reduce((sum, [, rate]) => sum + rate, 0).toFixed(1);
    $("rates").innerHTML = rows
      .map(([name, rate]) => `<tr><td>${escapeHtml(name)}</td><td>${rate.toFixed(1)}</td></tr>`)
      .join("");
    $("dead-rate").textContent = ((dead - previous.dead) / seconds).toFixed(2);
  }
  refreshSpool(samples, previous && (now - previous.at) / 1000);
  previous = { at: now, accepted, dead, spool: spoolCounters(samples) };
  // Since the gateway started, by kind and reason, whatever the transport: most frequent first.
  const byReason = new Map();
  for (const s of samples.filter((s) => s.name === "sluice_dead_letters_total" && s.value > 0)) {
    const key = JSON.stringify([s.labels.kind, s.labels.reason]);
    byReason.set(key, (byReason.get(key) ?? 0) + s.value);
  }
  $("dead-reasons").innerHTML = [...byReason]
    .sort(([a, m], [b, n]) => n - m || a.localeCompare(b))
    .map(([key, count]) => {
      const [kind, reason] = JSON.parse(key);
      return `<tr><td>${escapeHtml(kind)}</td><td>${escapeHtml(reason)}</td><td>${count}</td></tr>`;
    })
    .join("");
  $("lag").textContent = String(total(samples, "sluice_sink_lag_records"));
  $("rows").textContent = `${total(samples, "sluice_sink_rows_written_total")} rows stored`;
  const count = total(samples, "sluice_kafka_produce_duration_seconds_count");
  const sum = total(samples, "sluice_kafka_produce_duration_seconds_sum");
  $("produce").textContent = count ? `${((sum / count) * 1000).toFixed(1)} ms` : "–";
  $("memory").textContent =
    `memory ${(total(samples, "sluice_process_resident_memory_bytes") / 2 ** 20).toFixed(0)} MiB`;
}

const spoolCounters = (samples) => ({
  spooled: total(samples, "sluice_spool_spooled_records_total"),
  forwarded: total(samples, "sluice_spool_forwarded_records_total"),
});
const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

// The spool's card shows only on a gateway that has one (SPOOL_DIR): its SPOOL_MAX_BYTES is 0 otherwise.
function refreshSpool(samples, seconds) {
  const maxBytes = total(samples, "sluice_spool_max_bytes");
  $("spool-card").classList.toggle("hidden", maxBytes === 0);
  if (maxBytes === 0) return;
  const bytes = total(samples, "sluice_spool_bytes");
  const age = total(samples, "sluice_spool_oldest_age_seconds");
  $("spool-depth").textContent = `${total(samples, "sluice_spool_records")} records`;
  const counters = spoolCounters(samples);
  const rate = (name) =>
    seconds && previous.spool ? ((counters[name] - previous.spool[name]) / seconds).toFixed(1) : "–";
  const refused = samples.filter((s) => s.name === "sluice_spool_refused_records_total" && s.value > 0);
  const rows = [
    ["size", `${mib(bytes)} of ${mib(maxBytes)} (${((bytes / maxBytes) * 100).toFixed(1)} %)`],
    ["oldest", age > 0 ? `${age.toFixed(0)} s ago` : "–"],
    ["spooled / s", rate("spooled")],
    ["forwarded / s", rate("forwarded")],
    ["refused", refused.map((s) => `${s.value} ${s.labels.reason}`).join(", ") || "none"],
    ["damaged entries dead-lettered", String(total(samples, "sluice_spool_corrupt_entries_total"))],
  ];
  $("spool").innerHTML = rows
    .map(([name, value]) => `<tr><td>${escapeHtml(name)}</td><td>${escapeHtml(value)}</td></tr>`)
    .join("");
}

const when = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "–");

/** What tells one refusal from another: the reason and the first error, with the field it is about. */
function problemOf(item) {
  const error = item.errors[0];
  if (!error) return "";
  const more = item.errors.length > 1 ? ` (and ${item.errors.length - 1} more)` : "";
  return `${error.path ? `${error.path}: ` : ""}${error.message}${more}`;
}

/** The latest dead letters, one row per kind, reason and problem, the most frequent first. */
export async function refreshDeadLetters(api) {
  const { items } = await api("/v1/deadletters");
  const groups = new Map();
  for (const item of items) {
    const problem = problemOf(item);
    const key = JSON.stringify([item.kind ?? "", item.reason, problem]);
    const group = groups.get(key) ?? { ...item, problem, count: 0, via: new Set(), last: item.receivedAt };
    group.count++;
    group.via.add(item.via);
    if (item.receivedAt > group.last) group.last = item.receivedAt;
    groups.set(key, group);
  }
  const rows = [...groups.values()]
    .sort((a, b) => b.count - a.count || b.last.localeCompare(a.last))
    .slice(0, 12)
    .map(
      (group) =>
        `<tr><td>${group.count}</td><td>${escapeHtml(group.kind ?? "")}</td><td>${escapeHtml(group.reason)}</td><td>${escapeHtml(group.problem)}</td><td>${escapeHtml([...group.via].sort().join(", "))}</td><td>${when(group.last)}</td></tr>`,
    );
  $("dead").innerHTML =
    `<tr><th>count</th><th>kind</th><th>reason</th><th>first error</th><th>via</th><th>last received</th></tr>${rows.join("")}`;
  $("dead-note").textContent = items.length
    ? `of the latest ${items.length} this gateway wrote, the most frequent first`
    : "none yet";
}

/** The pull connectors this gateway runs; the card stays hidden when it runs none. */
export async function refreshConnectors(api) {
  const { items } = await api("/v1/connectors");
  $("connectors-card").classList.toggle("hidden", items.length === 0);
  const quota = (item) => item.quota.map((q) => `${q.left}/${q.limit} a ${q.period}`).join(", ") || "–";
  const rows = items.map(
    (item) =>
      `<tr><td>${escapeHtml(item.name)}</td><td>${escapeHtml(item.kind)}</td><td>${escapeHtml(item.state)}</td><td>${when(item.lastSuccess)}</td><td>${item.lastRecords}</td><td>${when(item.nextRun)}</td><td>${escapeHtml(quota(item))}</td><td>${escapeHtml(item.lastError ?? "")}</td></tr>`,
  );
  $("connectors").innerHTML =
    `<tr><th>name</th><th>kind</th><th>state</th><th>last success</th><th>records</th><th>next run</th><th>quota left</th><th>last error</th></tr>${rows.join("")}`;
}
