// Alerts: the conditions the gateway opened by itself (a price rise under the margin floor, an
// upstream billing more than it said, money stuck), newest first; open ones by default. An alert
// closes on its own when its condition ends; acknowledging says "someone is on it".

import { get, post } from "../api.js";
import { announce, badge, busy, dash, field, h, select, table, time } from "../dom.js";

export const title = "Alerts";

const PAGE = 200;
export const KINDS = {
  margin: "Margin below the floor",
  charge_drift: "Charge drift",
  low_balance: "Low upstream balance",
  orders_unknown: "Orders with an unknown outcome",
  orders_queued: "Orders queued too long",
  circuit_open: "Provider circuit open",
  order_anomalies: "Upstream anomalies",
};
const SHOW = { open: "Open", closed: "Closed", all: "Open and closed" };

export function kindLabel(kind) {
  return KINDS[kind] || kind;
}

function orderLinks(ids) {
  if (!Array.isArray(ids) || !ids.length) return [];
  return ids.flatMap((id, i) => [i ? ", " : "", h("a", { href: `#/orders/${Number(id)}` }, `#${Number(id)}`)]);
}

function belowFloor(entry) {
  const who =
    entry.price === "fixed"
      ? "fixed rate"
      : entry.price === "customer"
        ? `customer #${entry.customer_id}'s own rate`
        : entry.price === "discount"
          ? `${entry.discount_percent}% discount (customer #${entry.customer_id})`
          : `${entry.price} (lifted to the floor)`;
  return `${who} ${dash(entry.rate || entry.floored_to)}`;
}

/** The details of an alert in the operator's words (the raw JSON stays one click away). */
export function describe(alert) {
  const d = alert.details || {};
  switch (alert.kind) {
    case "margin":
      return [
        `${dash(d.name)}: cost ${dash(d.cost_rate)}${d.previous_cost_rate ? ` (was ${d.previous_cost_rate})` : ""}, floor ${dash(d.floor)}. `,
        `Below the floor: ${(d.below_floor || []).map(belowFloor).join("; ") || "—"}. `,
        d.off_sale ? badge("Off sale until the price is back", "bad") : badge("Still on sale", "warn"),
      ];
    case "charge_drift":
      return `${d.orders} order(s) in the last ${dash(d.window_hours)} h: expected ${dash(d.expected_cost)}, billed ${dash(d.reported_cost)}, drift ${dash(d.drift)}${d.drift_percent ? ` (${d.drift_percent}%)` : ""}; alert above ${dash(d.threshold_percent)}%.`;
    case "low_balance":
      return `${dash(d.name)}: ${dash(d.balance)} ${dash(d.currency)}, warning level ${dash(d.warning_level)}.`;
    case "orders_unknown":
      return [`${d.orders} order(s) wait to be resolved: `, ...orderLinks(d.order_ids)];
    case "orders_queued":
      return [`${d.orders} order(s) queued for over ${dash(d.threshold_seconds)} s (oldest ${dash(d.oldest_seconds)} s): `, ...orderLinks(d.order_ids)];
    case "circuit_open":
      return `Provider #${dash(d.provider_id)} ${dash(d.state)} for ${dash(d.down_seconds)} s.`;
    case "order_anomalies":
      return [`${d.orders} order(s) in the last ${dash(d.window_hours)} h: `, ...orderLinks(d.order_ids)];
    default:
      return JSON.stringify(d);
  }
}

function chosen(params) {
  const show = SHOW[params.get("show")] ? params.get("show") : "open";
  const kind = KINDS[params.get("kind")] ? params.get("kind") : "";
  return { show, kind };
}

function filterForm({ show, kind }, navigate) {
  const showControl = select(Object.entries(SHOW), { id: "filter-alert-show", value: show });
  const kindControl = select([["", "Any kind"], ...Object.entries(KINDS)], { id: "filter-alert-kind", value: kind });
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter alerts" },
    field("Show", showControl),
    field("Kind", kindControl),
    h("button", { type: "submit" }, "Apply filter"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    if (showControl.value !== "open") query.set("show", showControl.value);
    if (kindControl.value) query.set("kind", kindControl.value);
    const text = query.toString();
    navigate(text ? `#/alerts?${text}` : "#/alerts");
  });
  return form;
}

function ackCell(alert, redraw) {
  if (alert.acknowledged_at) {
    return h("span", {}, badge("Acknowledged", "ok"), ` by ${dash(alert.acknowledged_by)} `, time(alert.acknowledged_at));
  }
  if (!alert.open) return "—";
  const button = h("button", { type: "button", class: "secondary", "aria-label": `Acknowledge alert ${alert.id}` }, "Acknowledge");
  button.addEventListener("click", () =>
    busy(button, async () => {
      await post(`/alerts/${alert.id}/ack`);
      await redraw(`Alert #${alert.id} acknowledged; it closes by itself when its condition ends.`);
    }),
  );
  return button;
}

export async function render({ params, navigate, isCurrent }) {
  const filter = chosen(params);
  const query = { limit: PAGE };
  if (filter.show !== "all") query.open = filter.show === "open";
  if (filter.kind) query.kind = filter.kind;
  const root = h("div");

  async function draw(message) {
    const rows = await get("/alerts", query);
    if (!isCurrent()) return;
    const columns = [
      { label: "ID", cell: (a) => `#${a.id}`, num: true },
      { label: "Kind", cell: (a) => kindLabel(a.kind), rowHeader: true },
      { label: "Subject", cell: (a) => a.subject },
      { label: "What", cell: (a) => h("span", {}, describe(a)), className: "link-cell" },
      { label: "Opened", cell: (a) => time(a.opened_at) },
      { label: "State", cell: (a) => (a.open ? badge("Open", "bad") : h("span", {}, badge("Closed", "muted"), " ", time(a.closed_at))) },
      { label: "Acknowledged", cell: (a) => ackCell(a, draw) },
    ];
    const caption = `${SHOW[filter.show]} alerts${filter.kind ? ` (${kindLabel(filter.kind)})` : ""}, newest first`;
    const empty = filter.show === "open" ? "No open alert: nothing needs you." : "No alerts match.";
    root.replaceChildren(
      h("h1", {}, "Alerts"),
      h(
        "p",
        { class: "hint" },
        "The gateway opens an alert when a condition starts (an upstream price rise under the margin floor, " +
          "an upstream billing more than it said, a low balance, orders stuck) and closes it when the condition ends. " +
          "Acknowledging one says someone is on it; it stays open until the condition is gone.",
      ),
      filterForm(filter, navigate),
      table(caption, columns, rows, { id: "alerts-table", empty }),
    );
    if (message) announce(message);
  }

  await draw();
  return root;
}

/** The dashboard's banner: the open alerts per kind, linking to the page; null when none. */
export function banner(openAlerts) {
  if (!openAlerts.length) return null;
  const perKind = new Map();
  for (const alert of openAlerts) perKind.set(alert.kind, (perKind.get(alert.kind) || 0) + 1);
  const parts = [...perKind].map(([kind, n]) => `${n} × ${kindLabel(kind)}`);
  const unacked = openAlerts.filter((a) => !a.acknowledged_at).length;
  return h(
    "section",
    { class: "banner", id: "alerts-banner", "aria-labelledby": "alerts-banner-title" },
    h("h2", { id: "alerts-banner-title" }, `${openAlerts.length} open alert${openAlerts.length === 1 ? "" : "s"}`),
    h("p", {}, parts.join(" · "), unacked ? ` (${unacked} not acknowledged)` : ""),
    h("a", { href: "#/alerts", class: "button" }, "Review alerts"),
  );
}
