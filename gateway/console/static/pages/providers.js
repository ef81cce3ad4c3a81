// Catalog page, providers part: the list, catalog sync with its summary, and adding a provider.

import { get, post } from "../api.js";
import { announce, badge, busy, dash, field, h, table, time } from "../dom.js";

function syncButton(provider, onSynced) {
  const button = h("button", { type: "button", class: "small", "data-sync": String(provider.id), "data-needs": "operator" }, `Sync ${provider.name}`);
  button.addEventListener("click", () =>
    busy(button, async () => {
      const summary = await post(`/providers/${provider.id}/sync`);
      const text =
        `Sync of ${provider.name}: ${summary.created} created, ${summary.updated} updated, ` +
        `${summary.disabled} taken off sale, ${summary.unchanged} unchanged, ${summary.skipped} skipped.`;
      announce(text);
      await onSynced(provider, summary, text);
    }),
  );
  return button;
}

export function providersSection(initial, onChange) {
  let providers = initial;
  const slot = h("div", { id: "providers" });
  const lastSync = h("p", { id: "sync-summary", class: "hint" });

  function draw() {
    slot.replaceChildren(
      table(
        "Upstream panels",
        [
          { label: "ID", cell: (p) => String(p.id), num: true },
          { label: "Name", cell: (p) => p.name, rowHeader: true },
          { label: "API URL", cell: (p) => h("code", {}, p.api_url), className: "link-cell" },
          { label: "Currency", cell: (p) => `${p.currency} × ${p.fx_rate}` },
          { label: "State", cell: (p) => (p.enabled ? badge("enabled", "ok") : badge("disabled", "muted")) },
          { label: "Balance", cell: (p) => (p.last_balance ? `${p.last_balance} ${dash(p.last_balance_currency)}` : "—"), num: true },
          { label: "Low?", cell: (p) => (p.low_balance ? badge("low", "bad") : "—") },
          {
            label: "Last sync",
            cell: (p) => [time(p.last_sync_at), p.last_sync_error ? h("div", {}, badge(`error: ${p.last_sync_error}`, "bad")) : null],
          },
          { label: "Actions", cell: (p) => syncButton(p, synced) },
        ],
        providers,
        { id: "providers-table", empty: "No providers yet: add one below." },
      ),
    );
  }

  async function reload() {
    providers = await get("/providers");
    draw();
    await onChange(providers);
  }

  async function synced(_provider, _summary, text) {
    lastSync.textContent = text;
    await reload();
  }

  const name = h("input", { id: "provider-name", required: true, "data-field": "name" });
  const url = h("input", { id: "provider-url", type: "url", required: true, "data-field": "api_url", placeholder: "https://panel.example/api/v2" });
  const key = h("input", { id: "provider-key", type: "password", autocomplete: "off", required: true, "data-field": "api_key" });
  const currency = h("input", { id: "provider-currency", value: "USD", maxlength: 3, size: 4, "data-field": "currency" });
  const fx = h("input", { id: "provider-fx", inputmode: "decimal", value: "1", size: 8, "data-field": "fx_rate" });
  const threshold = h("input", { id: "provider-threshold", inputmode: "decimal", size: 10, "data-field": "low_balance_threshold" });
  const form = h(
    "form",
    { novalidate: true, "aria-label": "Add a provider" },
    h(
      "div",
      { class: "filters" },
      field("Name", name),
      field("API URL", url),
      field("API key", key, "Stored, never shown again."),
      field("Currency", currency),
      field("FX rate to the gateway currency", fx),
      field("Warn below balance", threshold, "Optional."),
    ),
    h("p", {}, h("button", { type: "submit" }, "Add provider")),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = {
      name: name.value.trim(),
      api_url: url.value.trim(),
      api_key: key.value,
      currency: currency.value.trim().toUpperCase() || "USD",
      fx_rate: fx.value.trim() || "1",
    };
    if (threshold.value.trim()) body.low_balance_threshold = threshold.value.trim();
    await busy(form, async () => {
      const created = await post("/providers", body);
      form.reset();
      announce(`Provider ${created.name} (#${created.id}) added. Sync it to bring its services in.`);
      await reload();
    });
  });

  draw();
  return h(
    "section",
    { "aria-labelledby": "providers-title" },
    h("h2", { id: "providers-title" }, "Providers"),
    slot,
    lastSync,
    h("details", { "data-needs": "admin" }, h("summary", {}, "Add a provider"), form),
  );
}
