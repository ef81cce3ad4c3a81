// Customers: search, list (newest first, page by page) and create (the key is shown once).

import { get, post } from "../api.js";
import { announce, badge, busy, dash, field, h, select, showSecret, table, tableRow, time } from "../dom.js";

export const title = "Customers";

const PAGE = 100;

export const DIALECTS = [
  ["", "Gateway default"],
  ["documented", "documented"],
  ["perfectpanel", "perfectpanel"],
];

const COLUMNS = [
  { label: "ID", cell: (c) => String(c.id), num: true },
  { label: "Name", cell: (c) => h("a", { href: `#/customers/${c.id}` }, c.name) },
  { label: "Balance", cell: (c) => c.balance, num: true },
  { label: "State", cell: (c) => (c.enabled ? badge("enabled", "ok") : badge("disabled", "bad")) },
  { label: "Dialect", cell: (c) => dash(c.dialect) },
  { label: "Discount %", cell: (c) => c.discount_percent, num: true },
  { label: "Key", cell: (c) => h("code", {}, c.api_key_hint) },
  { label: "Created", cell: (c) => time(c.created_at) },
];

function listSection(search) {
  const slot = h("div", { id: "customer-list" });
  const more = h("button", { type: "button", class: "secondary", hidden: true }, "Load older customers");
  let last = null;

  async function load(append) {
    const rows = await get("/customers", { search, limit: PAGE, before: append ? last : undefined });
    if (rows.length) last = rows[rows.length - 1].id;
    if (append) {
      const body = slot.querySelector("tbody");
      for (const row of rows) body.append(tableRow(COLUMNS, row));
      announce(`${rows.length} more customers loaded.`);
    } else {
      slot.replaceChildren(
        table(search ? `Customers matching “${search}”` : "Customers, newest first", COLUMNS, rows, {
          id: "customers-table",
          empty: search ? "No customer matches." : "No customers yet.",
        }),
      );
    }
    more.hidden = rows.length < PAGE;
  }
  more.addEventListener("click", () => busy(more, () => load(true)));
  return { node: h("div", {}, slot, more), load: () => load(false) };
}

function createForm(onCreated) {
  const name = h("input", { id: "new-customer-name", required: true, maxlength: 200, "data-field": "name" });
  const balance = h("input", { id: "new-customer-balance", inputmode: "decimal", value: "0", "data-field": "balance" });
  const dialect = select(DIALECTS, { id: "new-customer-dialect", "data-field": "dialect" });
  const discount = h("input", { id: "new-customer-discount", inputmode: "decimal", value: "0", "data-field": "discount_percent" });
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "create-title", novalidate: true, "data-needs": "operator" },
    h("h2", { id: "create-title" }, "New customer"),
    h(
      "div",
      { class: "filters" },
      field("Name", name),
      field("Starting balance", balance, "A deposit, e.g. 25.00"),
      field("Answer dialect", dialect),
      field("Discount %", discount),
    ),
    h("button", { type: "submit" }, "Create customer"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { name: name.value.trim(), balance: balance.value.trim() || "0", discount_percent: discount.value.trim() || "0" };
    if (dialect.value) body.dialect = dialect.value;
    await busy(form, async () => {
      const created = await post("/customers", body);
      form.reset();
      announce(`Customer ${created.name} (#${created.id}) created.`);
      await showSecret(
        `API key of ${created.name}`,
        "This key is shown only now: the gateway keeps a hash of it. Give it to the customer over a safe channel.",
        created.api_key,
      );
      await onCreated(created);
    });
  });
  return form;
}

export async function render({ params, navigate }) {
  const search = params.get("search") || "";
  const list = listSection(search);
  await list.load();
  const query = h("input", { id: "customer-search", type: "search", value: search, maxlength: 200 });
  const searchForm = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Customers" },
    field("Search by name", query),
    h("button", { type: "submit" }, "Search"),
    search ? h("a", { href: "#/customers" }, "Show all") : null,
  );
  searchForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = query.value.trim();
    navigate(value ? `#/customers?search=${encodeURIComponent(value)}` : "#/customers");
  });
  return h(
    "div",
    {},
    h("h1", {}, "Customers"),
    searchForm,
    list.node,
    createForm(() => list.load()),
  );
}
