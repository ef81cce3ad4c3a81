// A customer's status webhooks: the receiver URL, the signing secret (shown once), a test event, and
// the delivery log (attempts, status codes, next retry) with "resend".

import { get, patch, post } from "../api.js";
import { announce, badge, busy, dash, field, h, showSecret, table, time } from "../dom.js";

function state(d) {
  if (d.delivered_at) return badge("delivered", "ok");
  if (d.failed_at) return badge("given up", "bad");
  return badge(d.attempts ? "retrying" : "pending", "warn");
}

export function webhooksSection(customer, onChanged) {
  const slot = h("div", { id: "webhook-log" });
  const url = h("input", {
    id: "webhook-url",
    type: "url",
    value: customer.webhook_url || "",
    placeholder: "https://hooks.example.com/smm",
    "data-field": "webhook_url",
  });
  const save = h("button", { type: "submit" }, "Save webhook URL");
  const form = h(
    "form",
    { class: "filters", novalidate: true, "aria-label": "Webhook receiver", "data-needs": "operator" },
    field("Webhook URL", url, "Empty: no webhooks. http(s) on a public address; status changes are POSTed there, signed."),
    save,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    busy(save, async () => {
      const updated = await patch(`/customers/${customer.id}`, { webhook_url: url.value.trim() || null });
      announce(updated.webhook_url ? `Webhooks go to ${updated.webhook_url}.` : "Webhooks are off.");
      await onChanged(updated);
    });
  });
  const secret = h("button", { type: "button", class: "secondary", id: "webhook-secret" }, "New signing secret");
  secret.addEventListener("click", () =>
    busy(secret, async () => {
      const { secret: value } = await post(`/customers/${customer.id}/webhook-secret`);
      announce("A new webhook signing secret was issued; the previous one no longer signs.");
      await showSecret(
        `Webhook signing secret of ${customer.name}`,
        "Shown only now. The customer checks X-Gateway-Signature with it (see the README).",
        value,
      );
      await onChanged(await get(`/customers/${customer.id}`));
    }),
  );
  const test = h("button", { type: "button", class: "secondary", id: "webhook-test" }, "Send a test event");
  test.addEventListener("click", () =>
    busy(test, async () => {
      const result = await post(`/customers/${customer.id}/webhook-test`);
      announce(
        result.delivered_at
          ? `Test event delivered (HTTP ${result.last_status}).`
          : `Test event not delivered: ${result.last_error || `HTTP ${result.last_status}`}.`,
      );
      await load();
    }),
  );

  async function load() {
    const log = await get(`/customers/${customer.id}/webhooks`, { limit: 50 });
    slot.replaceChildren(
      table(
        "Webhook deliveries, newest first",
        [
          { label: "ID", cell: (d) => String(d.id), num: true },
          { label: "Event", cell: (d) => d.event },
          { label: "Order", cell: (d) => (d.order_id ? h("a", { href: `#/orders/${d.order_id}` }, `#${d.order_id}`) : "—") },
          { label: "Status", cell: (d) => (d.payload && d.payload.status) || "—" },
          { label: "State", cell: state },
          { label: "Attempts", cell: (d) => String(d.attempts), num: true },
          { label: "Last answer", cell: (d) => dash(d.last_status ? `HTTP ${d.last_status}` : d.last_error) },
          { label: "Next retry", cell: (d) => time(d.next_attempt_at) },
          { label: "Created", cell: (d) => time(d.created_at) },
          { label: "", cell: (d) => (d.delivered_at || d.failed_at ? resendButton(d) : null) },
        ],
        log,
        { id: "webhook-deliveries", empty: "No webhook event yet." },
      ),
    );
  }

  function resendButton(d) {
    const button = h("button", { type: "button", class: "secondary small", "data-needs": "operator" }, `Resend ${d.id}`);
    button.addEventListener("click", () =>
      busy(button, async () => {
        await post(`/customers/${customer.id}/webhooks/${d.id}/resend`);
        announce(`Event ${d.id} will be sent again at the worker's next pass.`);
        await load();
      }),
    );
    return button;
  }

  const node = h(
    "section",
    { "aria-labelledby": "webhooks-title" },
    h("h2", { id: "webhooks-title" }, "Status webhooks"),
    h(
      "p",
      { class: "hint" },
      customer.webhook_url
        ? `Status changes are POSTed to ${customer.webhook_url}${customer.webhook_secret_set ? ", signed." : " (no signing secret yet)."}`
        : "Off: the customer polls status.",
    ),
    form,
    customer.webhook_url ? h("div", { class: "actions", "data-needs": "operator" }, secret, test) : null,
    slot,
  );
  return { node, load };
}
