// Refills: the list (unknown ones first of all: they wait for the operator), and one refill with its
// upstream calls and, while its outcome is unknown, the form that settles it.

import { get, post } from "../api.js";
import { announce, append, busy, confirmAction, dash, facts, field, h, select, showError, table, tableRow, time } from "../dom.js";
import { upstreamCalls } from "./calls.js";
import { stateBadge } from "./orders.js";

export const title = "Refills";

const PAGE = 100;
export const STATES = ["submitting", "placed", "unknown", "failed"];
// The list opens on what needs the operator; "all" lifts the filter.
const DEFAULT_STATE = "unknown";
const ALL = "all";

const COLUMNS = [
  { label: "ID", cell: (r) => h("a", { href: `#/refills/${r.id}`, "aria-label": `Refill ${r.id}` }, `#${r.id}`), num: true },
  { label: "Created", cell: (r) => time(r.created_at) },
  { label: "Customer", cell: (r) => h("a", { href: `#/customers/${r.customer_id}`, "aria-label": `Customer ${r.customer_id}` }, `#${r.customer_id}`) },
  { label: "Order", cell: (r) => h("a", { href: `#/orders/${r.order_id}`, "aria-label": `Order ${r.order_id}` }, `#${r.order_id}`) },
  { label: "Provider", cell: (r) => `#${r.provider_id}` },
  { label: "Upstream refill ID", cell: (r) => dash(r.upstream_refill_id), num: true },
  { label: "Status", cell: (r) => r.status },
  { label: "State", cell: (r) => stateBadge(r.state) },
  { label: "Last error", cell: (r) => dash(r.last_error), className: "link-cell" },
];

function chosenState(params) {
  const state = params.get("state");
  if (state === ALL) return ALL;
  return STATES.includes(state) ? state : DEFAULT_STATE;
}

function filterForm(state, navigate) {
  const control = select([[ALL, "Any state"], ...STATES.map((s) => [s, s])], { id: "filter-refill-state", value: state });
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter refills" },
    field("State", control),
    h("button", { type: "submit" }, "Apply filter"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate(control.value === DEFAULT_STATE ? "#/refills" : `#/refills?state=${encodeURIComponent(control.value)}`);
  });
  return form;
}

export async function render({ params, navigate }) {
  const state = chosenState(params);
  const query = { limit: PAGE };
  if (state !== ALL) query.state = state;
  const rows = await get("/refills", query);
  const slot = h("div", { id: "refills" });
  const more = h("button", { type: "button", class: "secondary", hidden: rows.length < PAGE }, "Load older refills");
  let last = rows.length ? rows[rows.length - 1].id : null;
  more.addEventListener("click", () =>
    busy(more, async () => {
      const older = await get("/refills", { ...query, before: last });
      if (older.length) last = older[older.length - 1].id;
      const body = slot.querySelector("tbody");
      for (const refill of older) body.append(tableRow(COLUMNS, refill));
      more.hidden = older.length < PAGE;
      announce(`${older.length} older refills loaded.`);
    }),
  );
  const caption = state === ALL ? "All refills, newest first" : `Refills in state ${state}, newest first`;
  const empty = state === DEFAULT_STATE ? "No refill waits for the operator." : "No refills match.";
  slot.append(table(caption, COLUMNS, rows, { id: "refills-table", empty }));
  return h(
    "div",
    {},
    h("h1", {}, "Refills"),
    h(
      "p",
      { class: "hint" },
      "A refill is unknown when its request may have reached the upstream but no answer came back: " +
        "the gateway never re-sends it, and the customer sees Pending until it is resolved here.",
    ),
    filterForm(state, navigate),
    slot,
    more,
  );
}

function refillFacts(r, order) {
  return facts([
    ["Order", h("a", { href: `#/orders/${r.order_id}` }, `#${r.order_id}`)],
    ["Upstream order ID", dash(order.upstream_order_id), "refill-upstream-order-id"],
    ["Customer", h("a", { href: `#/customers/${r.customer_id}` }, `#${r.customer_id}`)],
    ["Provider", `#${r.provider_id}`],
    ["Upstream refill ID", dash(r.upstream_refill_id), "refill-upstream-id"],
    ["Status", r.status_raw && r.status_raw !== r.status ? `${r.status} (upstream: ${r.status_raw})` : r.status, "refill-status"],
    ["State", stateBadge(r.state), "refill-state"],
    ["Last error", dash(r.last_error)],
    ["Created", time(r.created_at)],
    ["Updated", time(r.updated_at)],
    ["Last checked", time(r.last_checked_at)],
  ]);
}

function resolveForm(r, order, onDone) {
  const placed = h("input", { type: "radio", name: "outcome", value: "placed", id: "refill-outcome-placed", checked: true });
  const failed = h("input", { type: "radio", name: "outcome", value: "failed", id: "refill-outcome-failed" });
  const upstreamId = h("input", { id: "resolve-upstream-refill-id", inputmode: "numeric", autocomplete: "off", "data-field": "upstream_refill_id" });
  const upstreamField = field(
    "Upstream refill ID",
    upstreamId,
    `Find it in the upstream panel among the refills of upstream order ${dash(order.upstream_order_id)}.`,
  );
  const sync = () => {
    upstreamId.disabled = failed.checked;
  };
  placed.addEventListener("change", sync);
  failed.addEventListener("change", sync);
  const form = h(
    "form",
    { class: "card", novalidate: true, "aria-labelledby": "resolve-refill-title", "data-needs": "operator" },
    h("h2", { id: "resolve-refill-title" }, "Resolve this refill"),
    h(
      "p",
      {},
      "The request may have reached the upstream, so the gateway does not send it again on its own. " +
        "Check the upstream panel, then record what happened.",
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "What happened upstream?"),
      h("label", { class: "choice", for: "refill-outcome-placed" }, placed, "It was placed: keep following it"),
      h("label", { class: "choice", for: "refill-outcome-failed" }, failed, "It was not placed: mark it failed (the customer sees Rejected)"),
    ),
    upstreamField,
    h("button", { type: "submit" }, "Resolve refill"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { outcome: failed.checked ? "failed" : "placed" };
    if (body.outcome === "placed") {
      const value = upstreamId.value.trim();
      // Beyond 2^53 a JavaScript number would silently become another id.
      if (!/^\d+$/.test(value) || !Number.isSafeInteger(Number(value)) || Number(value) < 1) {
        upstreamId.setAttribute("aria-invalid", "true");
        showError(new Error("Enter the upstream refill ID (a positive number) to mark the refill placed."));
        upstreamId.focus();
        return;
      }
      body.upstream_refill_id = Number(value);
    } else {
      const sure = await confirmAction(
        "Mark the refill failed?",
        `The customer sees refill #${r.id} as Rejected. This cannot be undone.`,
        "Mark failed",
        { danger: true },
      );
      if (!sure) return;
    }
    await busy(form, async () => {
      const resolved = await post(`/refills/${r.id}/resolve`, body);
      await onDone(`Refill #${r.id} resolved: ${resolved.state}${resolved.state === "failed" ? ", the customer sees Rejected" : ""}.`);
    });
  });
  return form;
}

async function renderOne({ match, isCurrent }) {
  const id = Number(match[1]);
  const root = h("div");

  async function draw(message) {
    const detail = await get(`/refills/${id}`);
    const order = (await get(`/orders/${detail.refill.order_id}`)).order;
    if (!isCurrent()) return;
    const r = detail.refill;
    root.replaceChildren();
    append(root, [
      h("p", {}, h("a", { href: "#/refills" }, "← Refills")),
      h("h1", { tabindex: "-1" }, `Refill #${r.id}`),
      refillFacts(r, order),
      r.state === "unknown" ? resolveForm(r, order, draw) : null,
      upstreamCalls(detail.upstream_calls, {
        id: "refill-calls",
        caption: "Requests to the upstream about this refill",
        empty: "No upstream call recorded about this refill alone.",
      }),
    ]);
    if (message) {
      announce(message);
      root.querySelector("h1").focus();
    }
  }

  await draw();
  return root;
}

/** One refill: a page of its own on the same module (routes take anything with render and title). */
export const detail = { title: "Refill", render: renderOne };
