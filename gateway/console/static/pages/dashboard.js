// Dashboard: today's and this month's totals, the last 30 days, upstream balances, orders needing attention.

import { get, post } from "../api.js";
import { dailyChart } from "../chart.js";
import { announce, badge, busy, dash, h, showError, table, time } from "../dom.js";
import { banner } from "./alerts.js";

export const title = "Dashboard";

const DAY = 86_400_000;
const STUCK_SECONDS = 3600;
const LIST_LIMIT = 1000;

function utcMidnight(date) {
  return Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate());
}

function isoDay(ms) {
  return new Date(ms).toISOString().slice(0, 10);
}

function periods(now = new Date()) {
  const today = utcMidnight(now);
  const monthStart = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1);
  const nextMonth = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1);
  return {
    today: { from: new Date(today).toISOString(), to: new Date(today + DAY).toISOString() },
    month: { from: new Date(monthStart).toISOString(), to: new Date(nextMonth).toISOString() },
    last30: { from: new Date(today - 29 * DAY).toISOString(), to: new Date(today + DAY).toISOString(), first: today - 29 * DAY },
  };
}

function count(list) {
  return list.length >= LIST_LIMIT ? `${LIST_LIMIT}+` : String(list.length);
}

function attention(label, value, href, id, hint) {
  const needsLook = value !== "0";
  return h(
    "a",
    { class: `stat${needsLook ? " attention" : ""}`, href, id },
    h("span", { class: "value" }, value),
    h("span", { class: "label" }, label),
    hint ? h("span", { class: "hint" }, hint) : null,
  );
}

function summaryTable(today, month, currency) {
  const rows = [
    ["Today (UTC)", today, "summary-today"],
    ["This month (UTC)", month, "summary-month"],
  ];
  const columns = [
    { label: "Period", cell: (r) => r[0], rowHeader: true },
    { label: "Orders", cell: (r) => String(r[1].orders), num: true },
    { label: `Revenue (${currency})`, cell: (r) => r[1].revenue, num: true },
    { label: `Cost (${currency})`, cell: (r) => r[1].cost, num: true },
    { label: `Profit (${currency})`, cell: (r) => r[1].profit, num: true },
    { label: `Refunds (${currency})`, cell: (r) => r[1].refunds, num: true },
  ];
  const wrap = table("Totals of orders created in the period", columns, rows, { id: "summary" });
  wrap.querySelectorAll("tbody tr").forEach((tr, i) => tr.setAttribute("id", rows[i][2]));
  return wrap;
}

function fillDays(rows, first) {
  const byDay = new Map(rows.map((r) => [r.key, r]));
  const days = [];
  for (let i = 0; i < 30; i += 1) {
    const day = isoDay(first + i * DAY);
    const row = byDay.get(day);
    days.push({
      day,
      orders: row ? row.orders : 0,
      revenue: row ? row.revenue : "0.00",
      cost: row ? row.cost : "0.00",
      profit: row ? row.profit : "0.00",
    });
  }
  return days;
}

function balancesTable(balances) {
  return table(
    "Upstream balances, as last checked",
    [
      { label: "Provider", cell: (b) => b.name, rowHeader: true },
      { label: "Balance", cell: (b) => dash(b.balance), num: true },
      { label: "Currency", cell: (b) => dash(b.currency) },
      { label: "Warn below", cell: (b) => dash(b.low_balance_threshold), num: true },
      { label: "Checked", cell: (b) => time(b.checked_at) },
      {
        label: "State",
        cell: (b) =>
          b.error
            ? badge(`Check failed: ${b.error}`, "bad")
            : b.low_balance
              ? badge("Low balance: top up", "bad")
              : b.balance === null
                ? badge("Not checked yet", "muted")
                : badge("OK", "ok"),
      },
    ],
    balances,
    { id: "balances", empty: "No providers yet." },
  );
}

export async function render() {
  const p = periods();
  const [system, today, month, daily, balances, queued, unknown, stuck, held, anomalous, unknownRefills, openAlerts] = await Promise.all([
    get("/system"),
    get("/reports/summary", p.today),
    get("/reports/summary", p.month),
    get("/reports/daily", { from: p.last30.from, to: p.last30.to }),
    get("/reports/balances"),
    get("/orders", { state: "queued", limit: LIST_LIMIT }),
    get("/orders", { state: "unknown", limit: LIST_LIMIT }),
    get("/orders/stuck", { older_than: STUCK_SECONDS, limit: LIST_LIMIT }),
    get("/orders", { held: true, limit: LIST_LIMIT }),
    get("/orders", { anomalies: true, limit: LIST_LIMIT }),
    get("/refills", { state: "unknown", limit: LIST_LIMIT }),
    get("/alerts", { open: true, limit: LIST_LIMIT }),
  ]);
  const currency = system.currency;
  const days = fillDays(daily, p.last30.first);

  const balancesSlot = h("div", {}, balancesTable(balances));
  const refresh = h("button", { type: "button", class: "secondary", id: "refresh-balances", "data-needs": "operator" }, "Refresh balances from the upstreams");
  refresh.addEventListener("click", () =>
    busy(refresh, async () => {
      const fresh = await post("/reports/balances/refresh");
      balancesSlot.replaceChildren(balancesTable(fresh));
      const failed = fresh.filter((b) => b.error).length;
      const low = fresh.filter((b) => b.low_balance).length;
      if (failed) showError(new Error(`${failed} provider balance check(s) failed; see the table.`));
      else announce(`Balances refreshed${low ? `: ${low} low` : ""}.`);
    }),
  );

  const lowCount = balances.filter((b) => b.low_balance).length;
  return h(
    "div",
    {},
    h("h1", {}, "Dashboard"),
    banner(openAlerts),
    h(
      "section",
      { "aria-labelledby": "attention-title" },
      h("h2", { id: "attention-title" }, "Orders needing attention"),
      h(
        "div",
        { class: "grid" },
        attention("queued (not yet sent upstream)", count(queued), "#/orders?state=queued", "count-queued"),
        attention("unknown outcome (resolve by hand)", count(unknown), "#/orders?state=unknown", "count-unknown"),
        attention("stuck (unfinished after 1 hour)", count(stuck), `#/orders?stuck=${STUCK_SECONDS}`, "count-stuck"),
        attention(
          "waiting for a refund decision (settle by hand)",
          count(held),
          "#/orders?held=true",
          "count-held",
          "the upstream ended them without saying how much was delivered",
        ),
        attention("with upstream anomalies", count(anomalous), "#/orders?anomalies=true", "count-anomalies"),
        attention("refills with an unknown outcome (resolve by hand)", count(unknownRefills), "#/refills", "count-unknown-refills"),
      ),
    ),
    h(
      "section",
      { "aria-labelledby": "summary-title" },
      h("h2", { id: "summary-title" }, "Revenue, cost and profit"),
      summaryTable(today, month, currency),
    ),
    h(
      "section",
      { "aria-labelledby": "daily-title" },
      h("h2", { id: "daily-title" }, "Last 30 days"),
      h(
        "ul",
        { class: "legend" },
        h("li", {}, h("span", { class: "swatch bar", "aria-hidden": "true" }), "Revenue"),
        h("li", {}, h("span", { class: "swatch line", "aria-hidden": "true" }), "Profit"),
      ),
      dailyChart(days, currency),
      h(
        "details",
        {},
        h("summary", {}, "The same figures as a table"),
        table(
          "Per day (UTC)",
          [
            { label: "Day", cell: (d) => d.day, rowHeader: true },
            { label: "Orders", cell: (d) => String(d.orders), num: true },
            { label: "Revenue", cell: (d) => d.revenue, num: true },
            { label: "Cost", cell: (d) => d.cost, num: true },
            { label: "Profit", cell: (d) => d.profit, num: true },
          ],
          [...days].reverse(),
        ),
      ),
    ),
    h(
      "section",
      { "aria-labelledby": "balances-title" },
      h("h2", { id: "balances-title" }, "Upstream balances"),
      lowCount ? h("p", { class: "alert", id: "low-balance-warning" }, `${lowCount} provider(s) below their low-balance threshold.`) : null,
      balancesSlot,
      refresh,
    ),
  );
}
