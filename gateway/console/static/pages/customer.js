// One customer: funds, settings, key rotation, own prices and the ledger.

import { del, get, patch, post, put } from "../api.js";
import { parseDecimal } from "../decimal.js";
import {
  announce,
  badge,
  busy,
  confirmAction,
  dash,
  facts,
  field,
  h,
  select,
  showError,
  showSecret,
  table,
  tableRow,
  time,
} from "../dom.js";
import { DIALECTS } from "./customers.js";
import { webhooksSection } from "./webhooks.js";

export const title = "Customer";

const PAGE = 100;
const AMOUNT = /^-?\d+(\.\d{1,5})?$/;

const LEDGER_COLUMNS = [
  { label: "ID", cell: (e) => String(e.id), num: true },
  { label: "When", cell: (e) => time(e.created_at) },
  { label: "Kind", cell: (e) => e.kind },
  { label: "Amount", cell: (e) => e.amount, num: true },
  { label: "Balance after", cell: (e) => e.balance_after, num: true },
  { label: "Order", cell: (e) => (e.order_id ? h("a", { href: `#/orders/${e.order_id}` }, `#${e.order_id}`) : "—") },
  { label: "Note", cell: (e) => dash(e.note) },
  { label: "By", cell: (e) => dash(e.actor) },
];

function summary(customer) {
  return facts([
    ["ID", String(customer.id)],
    ["Balance", customer.balance, "customer-balance"],
    ["State", customer.enabled ? badge("enabled", "ok") : badge("disabled", "bad"), "customer-state"],
    ["Dialect", customer.dialect || "gateway default"],
    ["Discount", `${customer.discount_percent} %`],
    ["API key", h("code", {}, customer.api_key_hint)],
    ["Created", time(customer.created_at)],
    ["Orders", h("a", { href: `#/orders?customer_id=${customer.id}` }, "This customer's orders")],
  ]);
}

function ledgerSection(customerId) {
  const slot = h("div", { id: "ledger" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load older entries");
  let last = null;
  async function load(append = false) {
    const rows = await get(`/customers/${customerId}/ledger`, { limit: PAGE, before: append ? last : undefined });
    if (rows.length) last = rows[rows.length - 1].id;
    if (append) {
      const body = slot.querySelector("tbody");
      for (const row of rows) body.append(tableRow(LEDGER_COLUMNS, row));
    } else {
      slot.replaceChildren(table("Ledger entries, newest first", LEDGER_COLUMNS, rows, { id: "ledger-table", empty: "No entries yet." }));
    }
    more.hidden = rows.length < PAGE;
  }
  more.addEventListener("click", () => busy(more, () => load(true)));
  return {
    node: h("section", { "aria-labelledby": "ledger-title" }, h("h2", { id: "ledger-title" }, "Ledger"), slot, more),
    load,
  };
}

function fundsForm(customerId, onMoved) {
  const amount = h("input", { id: "funds-amount", inputmode: "decimal", required: true, "data-field": "amount", autocomplete: "off" });
  const note = h("input", { id: "funds-note", maxlength: 500, "data-field": "note", autocomplete: "off" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "funds-title", novalidate: true, "data-needs": "operator" },
    h("h2", { id: "funds-title" }, "Add or deduct funds"),
    h(
      "div",
      { class: "filters" },
      field("Amount", amount, "Positive adds (a deposit), negative deducts (an adjustment). Up to 5 decimals."),
      field("Note", note, "Why: shown in the ledger."),
      h("button", { type: "submit" }, "Record"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const value = amount.value.trim();
    if (!AMOUNT.test(value) || parseDecimal(value).units === 0n) {
      amount.setAttribute("aria-invalid", "true");
      showError(new Error("Enter a non-zero amount such as 10.00 or -2.50."));
      amount.focus();
      return;
    }
    amount.removeAttribute("aria-invalid");
    if (value.startsWith("-")) {
      const sure = await confirmAction("Deduct funds?", `Deduct ${value.slice(1)} from this customer's balance?`, "Deduct", { danger: true });
      if (!sure) return;
    }
    await busy(form, async () => {
      const body = { amount: value };
      if (note.value.trim()) body.note = note.value.trim();
      const result = await post(`/customers/${customerId}/funds`, body);
      form.reset();
      announce(`Recorded. The balance is now ${result.balance}.`);
      await onMoved(result.balance);
    });
  });
  return form;
}

function settingsForm(customer, onSaved) {
  const name = h("input", { id: "customer-name", value: customer.name, maxlength: 200, "data-field": "name" });
  const dialect = select(DIALECTS, { id: "customer-dialect", value: customer.dialect || "", "data-field": "dialect" });
  const discount = h("input", { id: "customer-discount", inputmode: "decimal", value: customer.discount_percent, "data-field": "discount_percent" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "settings-title", novalidate: true, "data-needs": "operator" },
    h("h2", { id: "settings-title" }, "Settings"),
    h(
      "div",
      { class: "filters" },
      field("Name", name),
      field("Answer dialect", dialect),
      field("Discount %", discount, "Off every computed price (never below the margin floor)."),
      h("button", { type: "submit" }, "Save settings"),
    ),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    await busy(form, async () => {
      const updated = await patch(`/customers/${customer.id}`, {
        name: name.value.trim(),
        dialect: dialect.value || null,
        discount_percent: discount.value.trim() || "0",
      });
      announce("Settings saved.");
      await onSaved(updated);
    });
  });
  return form;
}

function accessSection(customer, onChanged) {
  const toggle = h(
    "button",
    { type: "button", id: "toggle-enabled", class: customer.enabled ? "danger" : null },
    customer.enabled ? "Disable customer" : "Enable customer",
  );
  toggle.addEventListener("click", async () => {
    if (customer.enabled) {
      const sure = await confirmAction(
        "Disable this customer?",
        "Their API key is refused until you enable them again. Orders already placed continue.",
        "Disable",
        { danger: true },
      );
      if (!sure) return;
    }
    await busy(toggle, async () => {
      const updated = await patch(`/customers/${customer.id}`, { enabled: !customer.enabled });
      announce(updated.enabled ? "Customer enabled." : "Customer disabled.");
      await onChanged(updated);
    });
  });
  const rotate = h("button", { type: "button", id: "rotate-key", class: "secondary" }, "Rotate API key");
  rotate.addEventListener("click", async () => {
    const sure = await confirmAction("Rotate the API key?", "The current key stops working at once.", "Rotate key", { danger: true });
    if (!sure) return;
    await busy(rotate, async () => {
      const { api_key: key } = await post(`/customers/${customer.id}/rotate-key`);
      announce("A new API key was issued; the old one no longer works.");
      await showSecret(`New API key of ${customer.name}`, "This key is shown only now. The previous key no longer works.", key);
      await onChanged(await get(`/customers/${customer.id}`));
    });
  });
  return h(
    "section",
    { "aria-labelledby": "access-title", "data-needs": "operator" },
    h("h2", { id: "access-title" }, "Access"),
    h("div", { class: "actions" }, toggle, rotate),
  );
}

function ratesSection(customerId) {
  const slot = h("div", { id: "customer-rates" });
  async function load() {
    const rates = await get(`/customers/${customerId}/rates`);
    slot.replaceChildren(
      table(
        "This customer's own prices (they replace markup and discount)",
        [
          { label: "Service", cell: (r) => `#${r.service_id}`, num: true },
          { label: "Rate per 1000", cell: (r) => r.rate, num: true },
          {
            label: "Actions",
            cell: (r) => {
              const remove = h("button", { type: "button", class: "secondary small", "data-needs": "operator" }, `Remove price of service ${r.service_id}`);
              remove.addEventListener("click", () =>
                busy(remove, async () => {
                  await del(`/customers/${customerId}/rates/${r.service_id}`);
                  announce(`Own price for service ${r.service_id} removed.`);
                  await load();
                }),
              );
              return remove;
            },
          },
        ],
        rates,
        { empty: "None: the catalog price applies." },
      ),
    );
  }
  const service = h("input", { id: "rate-service", inputmode: "numeric", required: true, "data-field": "service_id" });
  const rate = h("input", { id: "rate-value", inputmode: "decimal", required: true, "data-field": "rate" });
  const form = h(
    "form",
    { class: "filters", novalidate: true, "aria-label": "Set an own price", "data-needs": "operator" },
    field("Service ID", service),
    field("Rate per 1000", rate, "Used as typed, even below cost."),
    h("button", { type: "submit" }, "Set price"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = service.value.trim();
    if (!/^\d+$/.test(id)) {
      service.setAttribute("aria-invalid", "true");
      showError(new Error("Enter a service ID (a number)."));
      service.focus();
      return;
    }
    await busy(form, async () => {
      const saved = await put(`/customers/${customerId}/rates/${id}`, { rate: rate.value.trim() });
      form.reset();
      announce(`Service ${saved.service_id} now costs this customer ${saved.rate} per 1000.`);
      await load();
    });
  });
  return {
    node: h("section", { "aria-labelledby": "rates-title" }, h("h2", { id: "rates-title" }, "Own prices"), slot, form),
    load,
  };
}

export async function render({ match, isCurrent }) {
  const id = Number(match[1]);
  let customer = await get(`/customers/${id}`);
  const heading = h("h1", {}, `Customer ${customer.name}`);
  const facts_ = h("div", {}, summary(customer));
  const ledger = ledgerSection(id);
  const rates = ratesSection(id);
  const accessSlot = h("div");
  const settingsSlot = h("div");
  const webhooksSlot = h("div");

  async function refresh(updated) {
    customer = updated || (await get(`/customers/${id}`));
    if (!isCurrent()) return;
    heading.textContent = `Customer ${customer.name}`;
    facts_.replaceChildren(summary(customer));
    accessSlot.replaceChildren(accessSection(customer, refresh));
    settingsSlot.replaceChildren(settingsForm(customer, refresh));
    const webhooks = webhooksSection(customer, refresh);
    webhooksSlot.replaceChildren(webhooks.node);
    await webhooks.load();
  }
  await Promise.all([ledger.load(), rates.load(), refresh(customer)]);

  return h(
    "div",
    {},
    h("p", {}, h("a", { href: "#/customers" }, "← All customers")),
    heading,
    facts_,
    fundsForm(id, async () => {
      await Promise.all([refresh(), ledger.load()]);
    }),
    accessSlot,
    settingsSlot,
    webhooksSlot,
    rates.node,
    ledger.node,
  );
}
