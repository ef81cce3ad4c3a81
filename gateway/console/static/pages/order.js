// One order: its fields, ledger entries, upstream calls and anomalies; resolve it when its outcome is
// unknown, settle it when its refund waits for a decision, retry it when it is queued.

import { get, post } from "../api.js";
import { announce, append, badge, busy, confirmAction, dash, facts, field, h, showError, table, time } from "../dom.js";
import { upstreamCalls } from "./calls.js";
import { stateBadge } from "./orders.js";

const FINAL = ["Completed", "Partial", "Canceled"];

export const title = "Order";

function orderFacts(o) {
  return facts([
    ["Customer", h("a", { href: `#/customers/${o.customer_id}` }, `#${o.customer_id}`)],
    ["Service", `#${o.service_id} (upstream service ${o.upstream_service_id})`],
    ["Provider", `#${o.provider_id}`],
    ["Route", o.route_priority === 0 ? "0 (the service's own provider service)" : `${o.route_priority} (failover)`, "order-route"],
    ["Upstream order ID", dash(o.upstream_order_id), "order-upstream-id"],
    ["Link", dash(o.link)],
    ["Quantity", String(o.quantity)],
    ["Rate", `${o.rate} ${o.currency} per 1000`],
    ["Charge", `${o.charge} ${o.currency}`, "order-charge"],
    ["Cost", `${o.cost} ${o.currency}`],
    ["Profit", `${o.profit} ${o.currency}`],
    ["Refunded", `${o.refunded} ${o.currency}`, "order-refunded"],
    ["Status", o.status_raw && o.status_raw !== o.status ? `${o.status} (upstream: ${o.status_raw})` : o.status, "order-status"],
    ["State", stateBadge(o.state), "order-state"],
    ["Held final status", o.held_status ? badge(`${o.held_status}: waiting for a refund decision`, "bad") : "—", "order-held"],
    ["Start count", dash(o.start_count)],
    ["Remains", dash(o.remains)],
    ["Send attempts", String(o.attempts)],
    ["Last error", dash(o.last_error)],
    ["Created", time(o.created_at)],
    ["Send started", time(o.submitted_at), "order-submitted"],
    ["Placed", time(o.placed_at)],
    ["Completed", time(o.completed_at)],
    ["Last checked", time(o.last_checked_at)],
  ]);
}

function resolveForm(o, onDone) {
  const placed = h("input", { type: "radio", name: "outcome", value: "placed", id: "outcome-placed", checked: true });
  const failed = h("input", { type: "radio", name: "outcome", value: "failed", id: "outcome-failed" });
  const upstreamId = h("input", { id: "resolve-upstream-id", inputmode: "numeric", autocomplete: "off", "data-field": "upstream_order_id" });
  const upstreamField = field("Upstream order ID", upstreamId, "Find it in the upstream panel's order list (same link and quantity).");
  const sync = () => {
    upstreamId.disabled = failed.checked;
  };
  placed.addEventListener("change", sync);
  failed.addEventListener("change", sync);
  const form = h(
    "form",
    { class: "card", novalidate: true, "aria-labelledby": "resolve-title", "data-needs": "operator" },
    h("h2", { id: "resolve-title" }, "Resolve this order"),
    h(
      "p",
      {},
      "The request may have reached the upstream, so the gateway neither re-sends nor refunds it on its own. " +
        "Check the upstream panel, then record what happened.",
    ),
    h(
      "fieldset",
      {},
      h("legend", {}, "What happened upstream?"),
      h("label", { class: "choice", for: "outcome-placed" }, placed, "It was placed: keep following it"),
      h("label", { class: "choice", for: "outcome-failed" }, failed, `It was not placed: mark failed and refund ${o.charge} ${o.currency}`),
    ),
    upstreamField,
    h("button", { type: "submit" }, "Resolve order"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { outcome: failed.checked ? "failed" : "placed" };
    if (body.outcome === "placed") {
      const value = upstreamId.value.trim();
      if (!/^\d+$/.test(value)) {
        upstreamId.setAttribute("aria-invalid", "true");
        showError(new Error("Enter the upstream order ID (a number) to mark the order placed."));
        upstreamId.focus();
        return;
      }
      body.upstream_order_id = Number(value);
    } else {
      const sure = await confirmAction("Mark the order failed?", `The customer gets ${o.charge} ${o.currency} back. This cannot be undone.`, "Mark failed and refund", {
        danger: true,
      });
      if (!sure) return;
    }
    await busy(form, async () => {
      const resolved = await post(`/orders/${o.id}/resolve`, body);
      await onDone(`Order #${o.id} resolved: ${resolved.state}${resolved.state === "failed" ? `, ${resolved.refunded} refunded` : ""}.`);
    });
  });
  return form;
}

function settleForm(o, onDone) {
  const byRemains = h("input", { type: "radio", name: "settle-by", value: "remains", id: "settle-by-remains", checked: true });
  const byRefund = h("input", { type: "radio", name: "settle-by", value: "refund", id: "settle-by-refund" });
  const remains = h("input", { id: "settle-remains", inputmode: "numeric", autocomplete: "off", "data-field": "remains" });
  const refund = h("input", { id: "settle-refund", inputmode: "decimal", autocomplete: "off", "data-field": "refund", disabled: true });
  const note = h("input", { id: "settle-note", maxlength: 500, autocomplete: "off", "data-field": "note" });
  const sync = () => {
    remains.disabled = byRefund.checked;
    refund.disabled = byRemains.checked;
  };
  byRemains.addEventListener("change", sync);
  byRefund.addEventListener("change", sync);
  const held = o.held_status
    ? `The upstream says ${o.held_status} but did not say how much was delivered, so nothing was refunded and the customer still sees ${o.status}.`
    : "The upstream no longer tells how this order ends (for example it answers \"Incorrect order ID\"). Settle it once you know.";
  const form = h(
    "form",
    { class: "card", novalidate: true, "aria-labelledby": "settle-title", "data-needs": "operator" },
    h("h2", { id: "settle-title" }, o.held_status ? "Decide the refund" : "Settle this order"),
    h("p", {}, held, " Check the upstream panel, then enter what was not delivered, or the amount to give back."),
    h(
      "fieldset",
      {},
      h("legend", {}, "Settle by"),
      h("label", { class: "choice", for: "settle-by-remains" }, byRemains, `Units not delivered (of ${o.quantity})`),
      h("label", { class: "choice", for: "settle-by-refund" }, byRefund, `Amount to refund (at most ${o.charge} ${o.currency})`),
    ),
    field("Units not delivered", remains, "0: delivered in full (Completed); all: nothing delivered (Canceled, whole charge back)."),
    field(`Refund (${o.currency})`, refund),
    field("Note for the ledger (optional)", note),
    h("button", { type: "submit" }, "Settle order"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {};
    let what;
    if (byRemains.checked) {
      const value = remains.value.trim();
      if (!/^\d+$/.test(value) || Number(value) > o.quantity) {
        remains.setAttribute("aria-invalid", "true");
        showError(new Error(`Enter the units not delivered: a whole number from 0 to ${o.quantity}.`));
        remains.focus();
        return;
      }
      body.remains = Number(value);
      what = `${value} of ${o.quantity} units not delivered: the customer gets that part of ${o.charge} ${o.currency} back, rounded down.`;
    } else {
      const value = refund.value.trim();
      if (!/^\d+(\.\d{1,5})?$/.test(value)) {
        refund.setAttribute("aria-invalid", "true");
        showError(new Error("Enter the refund as a decimal amount, e.g. 0.36."));
        refund.focus();
        return;
      }
      body.refund = value;
      what = `The customer gets ${value} ${o.currency} back.`;
    }
    if (note.value.trim()) body.note = note.value.trim();
    const sure = await confirmAction("Settle the order?", `${what} The order ends; this cannot be undone.`, "Settle order", { danger: true });
    if (!sure) return;
    await busy(form, async () => {
      const settled = await post(`/orders/${o.id}/settle`, body);
      await onDone(`Order #${o.id} settled: ${settled.status}, ${settled.refunded} ${settled.currency} refunded.`);
    });
  });
  return form;
}

function anomaliesSection(anomalies) {
  return h(
    "section",
    { "aria-labelledby": "order-anomalies-title" },
    h("h2", { id: "order-anomalies-title" }, "Upstream anomalies"),
    table(
      "Values from the upstream that made no sense (the order is still followed)",
      [
        { label: "Kind", cell: (a) => a.kind },
        { label: "What was sent", cell: (a) => a.detail },
        { label: "Times", cell: (a) => String(a.times), num: true },
        { label: "First seen", cell: (a) => time(a.first_seen_at) },
        { label: "Last seen", cell: (a) => time(a.last_seen_at) },
      ],
      anomalies,
      { id: "order-anomalies", empty: "None." },
    ),
  );
}

function routesTriedSection(tried) {
  if (!tried || tried.length === 0) return null;
  return h(
    "section",
    { "aria-labelledby": "order-routes-title" },
    h("h2", { id: "order-routes-title" }, "Routes tried"),
    table(
      "Routes that did not take the order before the one it is on (nothing was placed there)",
      [
        { label: "Route", cell: (r) => String(r.priority), num: true },
        { label: "Provider", cell: (r) => `#${r.provider_id}` },
        { label: "Upstream service", cell: (r) => String(r.upstream_service_id) },
        { label: "Why", cell: (r) => dash(r.error) },
        { label: "When", cell: (r) => time(r.at) },
      ],
      tried,
      { id: "order-routes-tried" },
    ),
  );
}

function retrySection(o, onDone) {
  const retry = h("button", { type: "button", id: "retry-order" }, "Retry now");
  retry.addEventListener("click", () =>
    busy(retry, async () => {
      await post(`/orders/${o.id}/retry`);
      await onDone(`Order #${o.id} will be sent at the worker's next pass.`);
    }),
  );
  return h(
    "section",
    { class: "card", "aria-labelledby": "retry-title", "data-needs": "operator" },
    h("h2", { id: "retry-title" }, "Queued: not sent upstream yet"),
    h("p", {}, `Attempts so far: ${o.attempts}. ${o.last_error ? `Last error: ${o.last_error}` : ""}`),
    retry,
  );
}

export async function render({ match, isCurrent }) {
  const id = Number(match[1]);
  const root = h("div");

  async function draw(message) {
    const detail = await get(`/orders/${id}`);
    if (!isCurrent()) return;
    const o = detail.order;
    const after = async (text) => {
      await draw(text);
    };
    root.replaceChildren();
    append(root, [
      h("p", {}, h("a", { href: "#/orders" }, "← All orders")),
      h("h1", { tabindex: "-1" }, `Order #${o.id}`),
      orderFacts(o),
      o.state === "unknown" ? resolveForm(o, after) : null,
      o.state === "placed" && !FINAL.includes(o.status)
        ? o.held_status
          ? settleForm(o, after)
          : h("details", { id: "settle-by-hand", "data-needs": "operator" }, h("summary", {}, "Settle by hand (when the upstream no longer answers for it)"), settleForm(o, after))
        : null,
      o.state === "queued" ? retrySection(o, after) : null,
      routesTriedSection(o.routes_tried),
      anomaliesSection(detail.anomalies),
      h(
        "section",
        { "aria-labelledby": "order-ledger-title" },
        h("h2", { id: "order-ledger-title" }, "Ledger entries"),
        table(
          "Money moved for this order",
          [
            { label: "ID", cell: (e) => String(e.id), num: true },
            { label: "When", cell: (e) => time(e.created_at) },
            { label: "Kind", cell: (e) => e.kind },
            { label: "Amount", cell: (e) => e.amount, num: true },
            { label: "Balance after", cell: (e) => e.balance_after, num: true },
            { label: "Note", cell: (e) => dash(e.note) },
          ],
          detail.ledger,
          { id: "order-ledger" },
        ),
      ),
      upstreamCalls(detail.upstream_calls, {
        id: "order-calls",
        caption: "Requests to the upstream about this order",
        empty: "No upstream call recorded.",
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
