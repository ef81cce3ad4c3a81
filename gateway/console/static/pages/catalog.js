// Catalog: services with cost, resale rate and margin side by side; local edits; markup rules;
// providers and their sync.

import { get, patch, put } from "../api.js";
import { margin, marginPercent } from "../decimal.js";
import { announce, badge, busy, field, formDialog, h, select, showError, table } from "../dom.js";
import { markupSection } from "./markup.js";
import { providersSection } from "./providers.js";

export const title = "Catalog";

const MAX_ROWS = 500;
const RATE = /^\d+(\.\d{1,6})?$/;

function sourceBadges(s) {
  return [
    s.rate_source,
    s.below_cost ? [" ", badge("below cost", "bad")] : null,
    s.margin_protected ? [" ", badge("margin floor", "warn")] : null,
    !s.upstream_present ? [" ", badge("gone upstream", "muted")] : null,
  ];
}

function editService(service, onSaved) {
  return formDialog(
    `Edit service #${service.id}`,
    (form) => {
      form.append(
        h("p", { class: "hint" }, `Upstream: “${service.upstream_name}”, ${service.upstream_rate} per 1000. Local edits survive every sync.`),
        field(
          "Name shown to customers",
          h("input", { id: "edit-name", value: service.name === service.upstream_name ? "" : service.name, "data-field": "name", placeholder: service.upstream_name }),
          "Empty: the upstream's name.",
        ),
        field(
          "Fixed rate per 1000",
          h("input", { id: "edit-rate", inputmode: "decimal", value: service.fixed_rate || "", "data-field": "rate" }),
          `Empty: the markup rules decide. Cost is ${service.cost_rate}.`,
        ),
      );
    },
    async (form) => {
      const name = form.querySelector("#edit-name").value.trim();
      const rate = form.querySelector("#edit-rate").value.trim();
      if (rate && !RATE.test(rate)) {
        const input = form.querySelector("#edit-rate");
        input.setAttribute("aria-invalid", "true");
        input.focus();
        throw Object.assign(new Error("The fixed rate must be a decimal such as 1.25 (up to 6 decimals)."), { field: "rate" });
      }
      const updated = await patch(`/services/${service.id}`, { name: name || null, rate: rate || null });
      announce(`Service #${updated.id} saved: ${updated.name} at ${updated.rate} per 1000 (${updated.rate_source}).`);
      await onSaved();
      return true;
    },
  );
}

const MAX_ROUTES = 10;

function routeRow(route, providers, onRemove) {
  const priority = h("input", { type: "number", min: "1", max: "1000", value: String(route.priority), class: "route-priority", "aria-label": "Priority" });
  const provider = select(
    providers.map((p) => [String(p.id), `${p.name} (#${p.id})`]),
    { class: "route-provider", "aria-label": "Provider" },
  );
  provider.value = String(route.provider_id);
  const upstream = h("input", { value: route.upstream_service_id, inputmode: "numeric", class: "route-upstream", "aria-label": "Upstream service ID" });
  const remove = h("button", { type: "button", class: "secondary small" }, "Remove");
  const row = h("div", { class: "route-row actions" }, priority, provider, upstream, remove);
  remove.addEventListener("click", () => onRemove(row));
  return row;
}

async function editRoutes(service, providers, onSaved) {
  const current = await get(`/services/${service.id}/routes`);
  return formDialog(
    `Routes of service #${service.id}`,
    (form) => {
      const own = current[0];
      const rows = h("div", { id: "routes-rows" });
      const add = h("button", { type: "button", class: "secondary small", id: "route-add" }, "Add a route");
      const remove = (row) => row.remove();
      for (const r of current.slice(1)) rows.append(routeRow(r, providers, remove));
      add.addEventListener("click", () => {
        const used = [...rows.querySelectorAll(".route-priority")].map((i) => Number(i.value) || 0);
        const next = used.length ? Math.max(...used) + 1 : 1;
        if (rows.children.length >= MAX_ROUTES) return;
        rows.append(routeRow({ priority: next, provider_id: providers[0] ? providers[0].id : "", upstream_service_id: "" }, providers, remove));
      });
      form.append(
        h(
          "p",
          { class: "hint" },
          `Orders go to the first route whose provider is enabled and whose circuit is closed; when a route definitely placed nothing ` +
            `(its balance, its key, its limits, service gone) the order moves to the next one at once. Never after a timeout. ` +
            `Route 0 is the service's own: provider #${own.provider_id}, upstream service ${own.upstream_service_id}. ` +
            `Customers keep paying ${service.rate} per 1000 whichever route serves.`,
        ),
        table(
          "Routes now (own first)",
          [
            { label: "Route", cell: (r) => String(r.priority), num: true },
            { label: "Provider", cell: (r) => `#${r.provider_id}` },
            { label: "Upstream service", cell: (r) => `${r.upstream_service_id} ${r.name}` },
            { label: "Cost", cell: (r) => r.cost_rate, num: true },
            { label: "Min–max", cell: (r) => `${r.min}–${r.max}`, num: true },
            { label: "Serves", cell: (r) => (r.usable ? badge("yes", "ok") : badge(r.problem || "no", "bad")) },
          ],
          current,
          { id: "routes-table" },
        ),
        h("h3", {}, "Failover routes"),
        rows,
        add,
      );
    },
    async (form) => {
      const routes = [...form.querySelectorAll(".route-row")].map((row) => ({
        priority: Number(row.querySelector(".route-priority").value),
        provider_id: Number(row.querySelector(".route-provider").value),
        upstream_service_id: row.querySelector(".route-upstream").value.trim(),
      }));
      const saved = await put(`/services/${service.id}/routes`, routes);
      const serving = saved.filter((r) => r.usable).length;
      announce(`Service #${service.id}: ${saved.length - 1} failover route(s) saved; ${serving} route(s) can serve now.`);
      await onSaved();
      return true;
    },
  );
}

function servicesSection(catalog, reloadServices) {
  const provider = select([["", "All providers"]], { id: "filter-provider" });
  const category = select([["", "All categories"]], { id: "filter-category" });
  const enabled = select(
    [
      ["", "Any"],
      ["true", "Enabled"],
      ["false", "Disabled"],
    ],
    { id: "filter-enabled" },
  );
  const search = h("input", { id: "filter-name", type: "search", autocomplete: "off" });
  const slot = h("div", { id: "services" });
  const count = h("p", { id: "services-count", class: "hint", "aria-live": "polite" });

  function fillChoices() {
    const keepProvider = provider.value;
    const keepCategory = category.value;
    provider.replaceChildren(
      h("option", { value: "" }, "All providers"),
      ...catalog.providers().map((p) => h("option", { value: String(p.id) }, `${p.name} (#${p.id})`)),
    );
    category.replaceChildren(h("option", { value: "" }, "All categories"), ...catalog.categories().map((c) => h("option", { value: c }, c)));
    provider.value = keepProvider;
    category.value = keepCategory;
  }

  function actions(s) {
    const toggle = h("button", { type: "button", class: "secondary small", "aria-label": `${s.enabled ? "Disable" : "Enable"} service ${s.id}` }, s.enabled ? "Disable" : "Enable");
    toggle.addEventListener("click", () =>
      busy(toggle, async () => {
        const updated = await patch(`/services/${s.id}`, { enabled: !s.enabled });
        announce(`Service #${updated.id} ${updated.enabled ? "enabled" : "disabled"}.`);
        await reloadServices();
      }),
    );
    const edit = h("button", { type: "button", class: "secondary small", "aria-label": `Edit service ${s.id}` }, "Edit");
    edit.addEventListener("click", () => editService(s, reloadServices));
    const routes = h("button", { type: "button", class: "secondary small", "aria-label": `Routes of service ${s.id}` }, "Routes");
    routes.addEventListener("click", () => busy(routes, () => editRoutes(s, catalog.providers(), reloadServices)));
    const parts = [toggle, edit, routes];
    if (s.fixed_rate !== null) {
      const clear = h("button", { type: "button", class: "secondary small", "aria-label": `Clear the fixed rate of service ${s.id}` }, "Clear fixed rate");
      clear.addEventListener("click", () =>
        busy(clear, async () => {
          const updated = await patch(`/services/${s.id}`, { rate: null });
          announce(`Service #${updated.id} now priced by ${updated.rate_source}: ${updated.rate}.`);
          await reloadServices();
        }),
      );
      parts.push(clear);
    }
    return h("div", { class: "actions", "data-needs": "operator" }, parts);
  }

  function draw() {
    const providerNames = new Map(catalog.providers().map((p) => [p.id, p.name]));
    const needle = search.value.trim().toLowerCase();
    const rows = catalog.services().filter(
      (s) =>
        (!provider.value || String(s.provider_id) === provider.value) &&
        (!category.value || s.category === category.value) &&
        (!enabled.value || String(s.enabled) === enabled.value) &&
        (!needle || s.name.toLowerCase().includes(needle) || String(s.id) === needle),
    );
    count.textContent =
      rows.length > MAX_ROWS ? `${rows.length} services match; the first ${MAX_ROWS} are shown. Narrow the filter.` : `${rows.length} service(s) match.`;
    slot.replaceChildren(
      table(
        "Services: what they cost upstream and what customers pay (per 1000)",
        [
          { label: "ID", cell: (s) => String(s.id), num: true },
          { label: "Provider", cell: (s) => providerNames.get(s.provider_id) || `#${s.provider_id}` },
          { label: "Name", cell: (s) => s.name, className: "wide" },
          { label: "Category", cell: (s) => s.category },
          { label: "Type", cell: (s) => s.type },
          { label: "Cost", cell: (s) => s.cost_rate, num: true },
          { label: "Rate", cell: (s) => s.rate, num: true },
          { label: "Margin", cell: (s) => margin(s.rate, s.cost_rate), num: true },
          { label: "Margin %", cell: (s) => marginPercent(s.rate, s.cost_rate), num: true },
          { label: "Priced by", cell: sourceBadges },
          { label: "Min–max", cell: (s) => `${s.min}–${s.max}`, num: true },
          { label: "Avg time", cell: (s) => (s.average_time === null || s.average_time === undefined ? "—" : `${s.average_time} min`), num: true },
          { label: "On sale", cell: (s) => (s.for_sale ? badge("yes", "ok") : badge(s.enabled ? "no" : "disabled", "muted")) },
          { label: "Actions", cell: actions },
        ],
        rows.slice(0, MAX_ROWS),
        { id: "services-table", empty: "No service matches. Sync a provider to bring its catalog in." },
      ),
    );
  }

  for (const control of [provider, category, enabled]) control.addEventListener("change", draw);
  search.addEventListener("input", draw);
  fillChoices();
  draw();
  return {
    node: h(
      "section",
      { "aria-labelledby": "services-title" },
      h("h2", { id: "services-title" }, "Services"),
      h(
        "form",
        { class: "filters", role: "search", "aria-label": "Filter services", onsubmit: (e) => e.preventDefault() },
        field("Provider", provider),
        field("Category", category),
        field("Enabled", enabled),
        field("Name or ID contains", search),
      ),
      count,
      slot,
    ),
    redraw: () => {
      fillChoices();
      draw();
    },
  };
}

export async function render() {
  const [providers, services, rules, system] = await Promise.all([
    get("/providers"),
    get("/services"),
    get("/markup-rules"),
    get("/system"),
  ]);
  const state = { providers, services };
  const catalog = {
    // The floor computed prices never go below (GATEWAY_MIN_MARGIN_PERCENT), for the markup preview.
    minMarginPercent: () => system.min_margin_percent,
    providers: () => state.providers,
    services: () => state.services,
    categories: () => [...new Set(state.services.map((s) => s.category))].sort(),
  };
  let servicesPart = null;
  let markupPart = null;

  async function reloadServices() {
    try {
      state.services = await get("/services");
    } catch (error) {
      if (error.status !== 401) showError(error);
      return;
    }
    servicesPart.redraw();
    markupPart.refreshPreview();
  }

  servicesPart = servicesSection(catalog, reloadServices);
  markupPart = markupSection(rules, catalog, reloadServices);
  const providersPart = providersSection(providers, async (fresh) => {
    state.providers = fresh;
    await reloadServices();
  });
  return h("div", {}, h("h1", {}, "Catalog"), servicesPart.node, markupPart.node, providersPart);
}
