// One order: its fields, ledger entries and upstream calls; resolve it when its outcome is unknown,
// retry it when it is queued.

import { get, post } from "../api.js";
import { announce, append, busy, confirmAction, dash, facts, field, h, showError, table, time } from "../dom.js";
import { stateBadge } from "./orders.js";

export const title = "Order";

function orderFacts(o) {
  return facts([
    ["Customer", h("a", { href: `#/customers/${o.customer_id}` }, `#${o.customer_id}`)],
    ["Service", `#${o.service_id} (upstream service ${o.upstream_service_id})`],
    ["Provider", `#${o.provider_id}`],
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
    ["Start count", dash(o.start_count)],
    ["Remains", dash(o.remains)],
    ["Send attempts", String(o.attempts)],
    ["Last error", dash(o.last_error)],
    ["Created", time(o.created_at)],
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
    { class: "card", novalidate: true, "aria-labelledby": "resolve-title" },
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
    { class: "card", "aria-labelledby": "retry-title" },
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
      o.state === "queued" ? retrySection(o, after) : null,
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
      h(
        "section",
        { "aria-labelledby": "order-calls-title" },
        h("h2", { id: "order-calls-title" }, "Upstream calls"),
        table(
          "Requests to the upstream about this order",
          [
            { label: "When", cell: (c) => time(c.created_at) },
            { label: "Action", cell: (c) => c.action },
            { label: "Outcome", cell: (c) => c.outcome },
            { label: "HTTP", cell: (c) => dash(c.http_status), num: true },
            { label: "Took (ms)", cell: (c) => String(c.duration_ms), num: true },
            { label: "Error", cell: (c) => dash(c.error) },
          ],
          detail.upstream_calls,
          { id: "order-calls", empty: "No upstream call recorded." },
        ),
      ),
    ]);
    if (message) {
      announce(message);
      root.querySelector("h1").focus();
    }
  }

  await draw();
  return root;
}
