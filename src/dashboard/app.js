import { draw, escapeHtml } from "./chart.js";
import { refreshConnectors, refreshDeadLetters, refreshMetrics } from "./panels.js";

// Everything about the kinds (their names, metrics, units, source fields, groups) comes from GET /v1/kinds,
// and every number drawn is one the aggregates endpoint served: this page only picks and plots.
const $ = (id) => document.getElementById(id);
const bucketMs = { "1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000, "1d": 86_400_000 };
// The range drawn for each bucket width.
const spanMs = {
  "1m": 3 * 3_600_000,
  "5m": 12 * 3_600_000,
  "15m": 24 * 3_600_000,
  "1h": 48 * 3_600_000,
  "1d": 30 * 86_400_000,
};
const MAX_SOURCES = 100; // source ids one aggregates request may name

// The key comes from the URL fragment, which browsers never send to the server, or from the form; it is
// kept in this tab's session storage and sent only as an Authorization header.
const fragment = new URLSearchParams(location.hash.slice(1));
if (fragment.get("key")) {
  sessionStorage.setItem("sluice-key", fragment.get("key"));
  history.replaceState(null, "", location.pathname);
}
let key = sessionStorage.getItem("sluice-key");

async function api(path) {
  const response = await fetch(path, { headers: { authorization: `Bearer ${key}` } });
  if (response.status === 401 || response.status === 403)
    throw Object.assign(new Error("key refused"), { auth: true });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return path === "/metrics" ? response.text() : response.json();
}

function showLogin(message = "") {
  $("login").classList.remove("hidden");
  $("board").classList.add("hidden");
  $("login-error").textContent = message;
}
$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  key = $("key-input").value.trim();
  sessionStorage.setItem("sluice-key", key);
  start();
});

// The kinds, as GET /v1/kinds describes them; read once.
let kinds = [];
const currentKind = () => kinds.find((kind) => kind.name === $("kind").value);

async function loadKinds() {
  if (kinds.length) return;
  kinds = (await api("/v1/kinds")).items;
  fillSelect(
    $("kind"),
    kinds.map((kind) => ({ value: kind.name, title: kind.description })),
  );
  chooseKind();
}

// A new kind: its metrics and derived values, and its ways of splitting sources into series.
function chooseKind() {
  const kind = currentKind();
  const options = [
    ...kind.metrics.map((metric) => ({ value: metric.name, label: `${metric.name} (${metric.unit})` })),
    ...kind.derived.map((value) => ({
      value: value.name,
      label: `${value.name} (${value.unit})`,
      title: value.description,
    })),
  ];
  fillSelect($("metric"), options);
  $("metric").value = options[0].value;
  const wanted = $("group").value;
  fillSelect($("group"), [
    ...(kind.group ? [{ value: "group", label: `per ${kind.group.label}` }] : []),
    { value: "source", label: "per source" },
    { value: "all", label: "all together" },
  ]);
  if (wanted === "group" && !kind.group) $("group").value = "source";
  $("only").value = "";
  chooseMetric();
}

// A metric starts on the statistic that sums its buckets up; a derived value has none to choose.
function chooseMetric() {
  const metric = currentMetric(currentKind());
  $("stat").disabled = metric.derived;
  $("stat").parentElement.classList.toggle("hidden", metric.derived);
  if (!metric.derived) $("stat").value = metric.summary;
}

function currentMetric(kind) {
  const name = $("metric").value;
  const metric = kind.metrics.find((m) => m.name === name);
  if (metric) return { ...metric, derived: false };
  return { ...kind.derived.find((d) => d.name === name), derived: true };
}

// The group a source is in: the value at the kind's group path in its newest record.
function groupOf(kind, item) {
  const value = kind.group.path.split(".").reduce((data, field) => data?.[field], item.data);
  return value === undefined || value === null || value === "" ? item.sourceId : String(value);
}

let chartCall = 0;
async function refreshChart() {
  await loadKinds();
  const call = ++chartCall;
  const kind = currentKind();
  const metric = currentMetric(kind);
  const stat = metric.derived ? undefined : $("stat").value;
  const bucket = $("bucket").value;
  const mode = $("group").value;
  const from = new Date(Date.now() - spanMs[bucket]).toISOString();
  const aggregates = (filter) => {
    const query = new URLSearchParams({
      bucket,
      from,
      ...(metric.derived ? {} : { metrics: metric.name }),
      ...filter,
    });
    return api(`${kind.paths.aggregates}?${query}`).then((answer) => answer.items);
  };
  // Values as served: a statistic of the metric, or the derived value the server computed for the bucket.
  const served = (item) => (metric.derived ? item[metric.name] : item.metrics[metric.name]?.[stat]);
  const line = (name, items) => ({
    name,
    points: items
      .map((item) => [Date.parse(item.bucketStart), served(item)])
      .filter(([, v]) => typeof v === "number"),
  });

  // The series and the sources each covers, from the newest record of every source.
  const series = new Map();
  if (mode !== "all") {
    const { items } = await api(kind.paths.latest);
    for (const item of items) {
      const name = mode === "group" ? groupOf(kind, item) : item.sourceId;
      series.set(name, [...(series.get(name) ?? []), item.sourceId]);
    }
  }
  if (call !== chartCall) return;
  fillSelect($("only"), [
    { value: "", label: "(all)" },
    ...[...series.keys()].sort().map((value) => ({ value })),
  ]);
  $("only").disabled = mode === "all";
  const only = $("only").value;

  let lines;
  const notes = [];
  if (mode === "all") {
    lines = [line("all together", await aggregates({}))];
  } else if (mode === "source") {
    const items = await aggregates({ groupBy: "source", ...(only ? { [kind.sourceField]: only } : {}) });
    const bySource = Map.groupBy(items, (item) => item.sourceId);
    lines = [...bySource.keys()].sort().map((name) => line(name, bySource.get(name)));
  } else {
    const groups = [...series]
      .filter(([name]) => !only || name === only)
      .sort(([a], [b]) => a.localeCompare(b));
    for (const [name, ids] of groups.filter(([, ids]) => ids.length > MAX_SOURCES)) {
      notes.push(
        `${name}: ${ids.length} sources, more than one request may name (${MAX_SOURCES}); not drawn`,
      );
    }
    const drawn = groups.filter(([, ids]) => ids.length <= MAX_SOURCES);
    lines = await Promise.all(
      drawn.map(async ([name, ids]) => line(name, await aggregates({ [kind.sourceField]: ids.join(",") }))),
    );
  }
  if (call !== chartCall) return;
  const unit = stat === "count" ? "records" : metric.unit;
  const title = metric.derived
    ? `${metric.name} (${unit}) per ${bucket} bucket`
    : `${metric.name} (${unit}) · ${stat} per ${bucket} bucket`;
  draw(
    $("chart"),
    $("legend"),
    lines.filter((l) => l.points.length),
    { title, unit, step: bucketMs[bucket] },
  );
  $("chart-note").textContent = notes.join(" · ");
}

// Options as { value, label?, title? }; the chosen value stays when it is still offered.
function fillSelect(select, options) {
  const wanted = JSON.stringify(options);
  if (select.dataset.options === wanted) return;
  select.dataset.options = wanted;
  const current = select.value;
  select.innerHTML = options
    .map(
      (o) =>
        `<option value="${escapeHtml(o.value)}"${o.title ? ` title="${escapeHtml(o.title)}"` : ""}>${escapeHtml(o.label ?? o.value)}</option>`,
    )
    .join("");
  if (options.some((o) => o.value === current)) select.value = current;
}

let timer;
async function tick() {
  try {
    await Promise.all([refreshMetrics(api), refreshDeadLetters(api), refreshConnectors(api), refreshChart()]);
    $("status").textContent = `live · updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (error.auth) {
      clearInterval(timer);
      sessionStorage.removeItem("sluice-key");
      return showLogin("That key was refused: it needs read scopes.");
    }
    $("status").textContent = `retrying: ${error.message}`;
  }
}

function start() {
  if (!key) return showLogin();
  $("login").classList.add("hidden");
  $("board").classList.remove("hidden");
  clearInterval(timer);
  tick();
  timer = setInterval(tick, 5000);
}
const redraw = () =>
  refreshChart().catch((error) => {
    $("status").textContent = `retrying: ${error.message}`;
  });
$("kind").addEventListener("change", () => {
  chooseKind();
  redraw();
});
$("metric").addEventListener("change", () => {
  chooseMetric();
  redraw();
});
$("group").addEventListener("change", () => {
  $("only").value = "";
  redraw();
});
for (const id of ["only", "stat", "bucket"]) $(id).addEventListener("change", redraw);
start();
