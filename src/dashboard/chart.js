// The chart: lines of [time, value] points on round axes, drawn into an SVG element.
const palette = [
  "#2563eb",
  "#dc2626",
  "#16a34a",
  "#d97706",
  "#7c3aed",
  "#0891b2",
  "#db2777",
  "#65a30d",
  "#4b5563",
  "#ea580c",
];
// Past the palette, hues a golden angle apart stay distinct from their neighbours.
const colour = (i) => (i < palette.length ? palette[i] : `hsl(${Math.round((i * 137.508) % 360)} 65% 40%)`);
export const escapeHtml = (text) =>
  String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

// Round steps for an axis: 1, 2 or 5 × 10^n, about `count` of them over `range`.
function niceStep(range, count = 5) {
  const raw = range / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((f) => f * power).find((step) => step >= raw * 0.999);
}
const minute = 60_000,
  hour = 3_600_000,
  day = 86_400_000;
const timeSteps = [
  minute,
  5 * minute,
  10 * minute,
  15 * minute,
  30 * minute,
  hour,
  2 * hour,
  3 * hour,
  6 * hour,
  12 * hour,
  day,
  2 * day,
  7 * day,
];
const dateLabel = (t) => new Date(t).toLocaleDateString([], { month: "short", day: "numeric" });
const timeLabel = (t) => new Date(t).toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });

export function draw(svg, legend, lines, { title, unit, step }) {
  const [w, h, left, right, top, bottom] = [1000, 320, 70, 36, 34, 38];
  const heading = `<text class="title" x="${left}" y="16">${escapeHtml(title)}</text>`;
  const all = lines.flatMap((line) => line.points);
  if (all.length === 0) {
    svg.innerHTML = `${heading}<text x="${w / 2}" y="${h / 2}" text-anchor="middle">no data in this range yet</text>`;
    legend.innerHTML = "";
    return;
  }
  const xs = all.map(([x]) => x),
    ys = all.map(([, y]) => y);
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x0 === x1) {
    x0 -= step;
    x1 += step;
  }
  const [low, high] = [Math.min(...ys), Math.max(...ys)];
  const yStep = niceStep(high - low || Math.abs(high) || 1);
  let [y0, y1] = [Math.floor(low / yStep) * yStep, Math.ceil(high / yStep) * yStep];
  if (y0 === y1) y1 += yStep;
  const X = (x) => left + ((x - x0) / (x1 - x0)) * (w - left - right);
  const Y = (y) => top + (1 - (y - y0) / (y1 - y0)) * (h - top - bottom);

  const digits = Math.max(0, -Math.floor(Math.log10(yStep) + 1e-9));
  const number = (v) =>
    (Number(v.toFixed(digits)) || 0).toLocaleString([], {
      minimumFractionDigits: digits,
      maximumFractionDigits: digits,
    });
  const yTicks = Array.from({ length: Math.round((y1 - y0) / yStep) + 1 }, (_, i) => y0 + i * yStep);
  const grid = yTicks.map(
    (t) =>
      `<line x1="${left}" x2="${w - right}" y1="${Y(t)}" y2="${Y(t)}" stroke="#e3e7ee"/><text x="${left - 6}" y="${Y(t) + 4}" text-anchor="end">${number(t)}</text>`,
  );
  const unitLabel = `<text transform="translate(14 ${(top + h - bottom) / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(unit)}</text>`;

  // Time ticks at round local times, the date under the first and wherever the day changes.
  const tStep = timeSteps.find((s) => (x1 - x0) / s <= 8) ?? 30 * day;
  const offset = -new Date(x0).getTimezoneOffset() * minute;
  const xTicks = [];
  for (let t = Math.ceil((x0 + offset) / tStep) * tStep - offset; t <= x1; t += tStep) xTicks.push(t);
  const axis = xTicks.map((t, i) => {
    const newDay = i === 0 || dateLabel(t) !== dateLabel(xTicks[i - 1]);
    const label = tStep >= day ? dateLabel(t) : timeLabel(t);
    const date =
      tStep < day && newDay
        ? `<text x="${X(t)}" y="${h - 4}" text-anchor="middle">${dateLabel(t)}</text>`
        : "";
    return `<line x1="${X(t)}" x2="${X(t)}" y1="${h - bottom}" y2="${h - bottom + 4}" stroke="#9aa3b0"/><text x="${X(t)}" y="${h - bottom + 16}" text-anchor="middle">${label}</text>${date}`;
  });
  const frame = `<line x1="${left}" x2="${w - right}" y1="${h - bottom}" y2="${h - bottom}" stroke="#9aa3b0"/>`;

  // A gap of more than three buckets breaks the line. Each point can be hovered for its value.
  const paths = lines.map((line, i) => {
    const points = line.points.sort((a, b) => a[0] - b[0]);
    const d = points
      .map(
        ([x, y], j) =>
          `${j && x - points[j - 1][0] <= 3 * step ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`,
      )
      .join("");
    const r = points.length <= 60 ? 2.5 : 1.5;
    const dots = points.map(
      ([x, y]) =>
        `<circle class="point" data-at="${new Date(x).toISOString()}" data-value="${y}" cx="${X(x).toFixed(1)}" cy="${Y(y).toFixed(1)}" r="${r}" fill="${colour(i)}"><title>${escapeHtml(line.name)} · ${dateLabel(x)} ${timeLabel(x)} · ${y.toLocaleString()} ${escapeHtml(unit)}</title></circle>`,
    );
    return `<g><path class="series" data-series="${escapeHtml(line.name)}" d="${d}" fill="none" stroke="${colour(i)}" stroke-width="2"/>${dots.join("")}</g>`;
  });
  svg.innerHTML = `${heading}${grid.join("")}${unitLabel}${frame}${axis.join("")}${paths.join("")}`;
  legend.innerHTML = lines
    .map((line, i) => `<span><i style="background:${colour(i)}"></i>${escapeHtml(line.name)}</span>`)
    .join("");
}
