// Orders: filtered by status, state, customer and provider (the filter lives in the page's hash, so
// the dashboard links straight to "unknown" or "queued"), or the stuck ones.

import { get } from "../api.js";
import { announce, badge, busy, dash, field, h, select, table, tableRow, time } from "../dom.js";

export const title = "Orders";

const PAGE = 100;
export const STATUSES = ["Pending", "In progress", "Processing", "Completed", "Partial", "Canceled"];
export const STATES = ["queued", "submitting", "placed", "unknown", "failed", "canceled"];
const FILTERS = ["status", "state", "customer_id", "provider_id", "held", "anomalies"];

export function stateBadge(state) {
  const kind = { placed: "ok", unknown: "bad", queued: "warn", submitting: "warn", failed: "muted", canceled: "muted" }[state] || "muted";
  return badge(state, kind);
}

const COLUMNS = [
  { label: "ID", cell: (o) => h("a", { href: `#/orders/${o.id}`, "aria-label": `Order ${o.id}` }, `#${o.id}`), num: true },
  { label: "Created", cell: (o) => time(o.created_at) },
  { label: "Customer", cell: (o) => h("a", { href: `#/customers/${o.customer_id}`, "aria-label": `Customer ${o.customer_id}` }, `#${o.customer_id}`) },
  { label: "Service", cell: (o) => `#${o.service_id}` },
  { label: "Provider", cell: (o) => `#${o.provider_id}` },
  { label: "Link", cell: (o) => dash(o.link), className: "link-cell" },
  { label: "Quantity", cell: (o) => String(o.quantity), num: true },
  { label: "Charge", cell: (o) => o.charge, num: true },
  { label: "Cost", cell: (o) => o.cost, num: true },
  { label: "Status", cell: (o) => o.status },
  { label: "State", cell: (o) => (o.held_status ? [stateBadge(o.state), " ", badge(`held: ${o.held_status}`, "bad")] : stateBadge(o.state)) },
  { label: "Remains", cell: (o) => dash(o.remains), num: true },
  { label: "Upstream ID", cell: (o) => dash(o.upstream_order_id), num: true },
  { label: "Anomalies", cell: (o) => (o.anomalies ? badge(String(o.anomalies), "warn") : "0"), num: true },
];

function filterForm(params, providers, navigate) {
  const status = select([["", "Any status"], ...STATUSES.map((s) => [s, s])], { id: "filter-status", value: params.get("status") || "" });
  const state = select([["", "Any state"], ...STATES.map((s) => [s, s])], { id: "filter-state", value: params.get("state") || "" });
  const customer = h("input", { id: "filter-customer", inputmode: "numeric", size: 8, value: params.get("customer_id") || "" });
  const provider = select([["", "Any provider"], ...providers.map((p) => [String(p.id), `${p.name} (#${p.id})`])], {
    id: "filter-provider",
    value: params.get("provider_id") || "",
  });
  const held = select(
    [
      ["", "Any"],
      ["true", "Waiting for a refund decision"],
      ["false", "Not waiting"],
    ],
    { id: "filter-held", value: params.get("held") || "" },
  );
  const anomalies = select(
    [
      ["", "Any"],
      ["true", "With anomalies"],
      ["false", "Without anomalies"],
    ],
    { id: "filter-anomalies", value: params.get("anomalies") || "" },
  );
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter orders" },
    field("Status", status),
    field("State", state),
    field("Customer ID", customer),
    field("Provider", provider),
    field("Refund decision", held),
    field("Upstream anomalies", anomalies),
    h("button", { type: "submit" }, "Apply filters"),
    h("a", { href: "#/orders" }, "Clear"),
    h("a", { href: "#/orders?stuck=3600" }, "Stuck orders"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const query = new URLSearchParams();
    const values = {
      status: status.value,
      state: state.value,
      customer_id: customer.value.trim(),
      provider_id: provider.value,
      held: held.value,
      anomalies: anomalies.value,
    };
    for (const name of FILTERS) if (values[name]) query.set(name, values[name]);
    const text = query.toString();
    navigate(text ? `#/orders?${text}` : "#/orders");
  });
  return form;
}

const DESCRIBED = {
  held: { true: "a refund decision waiting", false: "no refund decision waiting" },
  anomalies: { true: "upstream anomalies", false: "no upstream anomalies" },
};

function describe(params) {
  const parts = FILTERS.filter((n) => params.get(n)).map((n) =>
    DESCRIBED[n] ? DESCRIBED[n][params.get(n)] || `${n} ${params.get(n)}` : `${n.replace("_id", "")} ${params.get(n)}`,
  );
  return parts.length ? `Orders with ${parts.join(", ")}, newest first` : "All orders, newest first";
}

export async function render({ params, navigate }) {
  const stuck = params.get("stuck");
  const providers = await get("/providers");
  const slot = h("div", { id: "orders" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load older orders");
  let caption;
  let rows;
  if (stuck !== null) {
    const seconds = /^\d+$/.test(stuck) ? stuck : "3600";
    rows = await get("/orders/stuck", { older_than: seconds, limit: 1000 });
    caption = `Stuck orders: unfinished and older than ${seconds} seconds, oldest first`;
  } else {
    const query = { limit: PAGE };
    for (const name of FILTERS) if (params.get(name)) query[name] = params.get(name);
    rows = await get("/orders", query);
    caption = describe(params);
    let last = rows.length ? rows[rows.length - 1].id : null;
    more.hidden = rows.length < PAGE;
    more.addEventListener("click", () =>
      busy(more, async () => {
        const older = await get("/orders", { ...query, before: last });
        if (older.length) last = older[older.length - 1].id;
        const body = slot.querySelector("tbody");
        for (const order of older) body.append(tableRow(COLUMNS, order));
        more.hidden = older.length < PAGE;
        announce(`${older.length} older orders loaded.`);
      }),
    );
  }
  slot.append(table(caption, COLUMNS, rows, { id: "orders-table", empty: "No orders match." }));
  return h(
    "div",
    {},
    h("h1", {}, stuck !== null ? "Stuck orders" : "Orders"),
    filterForm(params, providers, navigate),
    slot,
    more,
  );
}
