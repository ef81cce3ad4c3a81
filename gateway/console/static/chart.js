// An inline SVG chart: revenue per day as bars, profit as a line. No library; presentation only
// (each bar carries its exact figures as a tooltip, and the page has the same data as a table).

import { forDrawing } from "./decimal.js";
import { uid } from "./dom.js";

const SVG = "http://www.w3.org/2000/svg";

function s(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** days: [{day: "YYYY-MM-DD", orders, revenue, profit}] oldest first. */
export function dailyChart(days, currency) {
  const width = 760;
  const height = 260;
  const pad = { top: 16, right: 12, bottom: 34, left: 64 };
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  const revenue = days.map((d) => forDrawing(d.revenue));
  const profit = days.map((d) => forDrawing(d.profit));
  const top = Math.max(...revenue, ...profit, 0);
  const bottom = Math.min(...profit, 0);
  const span = top - bottom || 1;
  const y = (value) => pad.top + plotH - ((value - bottom) / span) * plotH;
  const slot = plotW / Math.max(days.length, 1);
  const barW = Math.max(2, slot * 0.7);

  const titleId = uid("chart-title");
  const descId = uid("chart-desc");
  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-labelledby": titleId,
    "aria-describedby": descId,
    id: "daily-chart",
  });
  svg.append(s("title", { id: titleId }, `Revenue and profit per day, last ${days.length} days (${currency})`));
  const best = days.reduce((a, d, i) => (revenue[i] > revenue[a] ? i : a), 0);
  const total = days.reduce((n, d) => n + d.orders, 0);
  svg.append(
    s(
      "desc",
      { id: descId },
      days.length && total
        ? `${total} orders in the period; the highest revenue was ${days[best].revenue} on ${days[best].day}.`
        : "No orders in the period.",
    ),
  );

  // Grid: zero, the top, and the middle, labelled with rounded values (axis labels only).
  const ticks = [...new Set([bottom, 0, top / 2, top])];
  for (const tick of ticks) {
    svg.append(s("line", { class: "grid-line", x1: pad.left, x2: width - pad.right, y1: y(tick), y2: y(tick) }));
    svg.append(
      s("text", { x: pad.left - 6, y: y(tick) + 4, "text-anchor": "end" }, tick.toLocaleString("en-US", { maximumFractionDigits: 2 })),
    );
  }
  svg.append(s("line", { class: "axis", x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0) }));

  days.forEach((d, i) => {
    const x = pad.left + i * slot + (slot - barW) / 2;
    const barTop = y(Math.max(revenue[i], 0));
    const bar = s("rect", {
      class: "bar",
      x: x.toFixed(2),
      y: barTop.toFixed(2),
      width: barW.toFixed(2),
      height: Math.max(0, y(0) - barTop).toFixed(2),
      "data-day": d.day,
    });
    bar.append(s("title", {}, `${d.day}: ${d.orders} orders, revenue ${d.revenue}, profit ${d.profit} ${currency}`));
    svg.append(bar);
    if (i % 5 === 0 || i === days.length - 1) {
      svg.append(s("text", { x: (x + barW / 2).toFixed(2), y: height - pad.bottom + 16, "text-anchor": "middle" }, d.day.slice(5)));
    }
  });

  const points = days.map((d, i) => `${(pad.left + i * slot + slot / 2).toFixed(2)},${y(profit[i]).toFixed(2)}`);
  if (points.length > 1) svg.append(s("polyline", { class: "profit", points: points.join(" ") }));
  points.forEach((point) => {
    const [cx, cy] = point.split(",");
    svg.append(s("circle", { class: "profit-dot", cx, cy, r: 2.5 }));
  });
  return svg;
}
