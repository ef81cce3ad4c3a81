// Catalog page, markup rules part: the rules, removing one, and adding one with a live preview of
// the prices it would give (computed here with exact integer arithmetic and the gateway's minimum
// margin; the server decides).

import { del, get, post } from "../api.js";
import { markupPreview, parseDecimal, subtract, formatDecimal } from "../decimal.js";
import { announce, busy, confirmAction, field, h, select, table, time } from "../dom.js";

const PREVIEW_ROWS = 50;
const SCOPES = [
  ["global", "Global (every service)"],
  ["provider", "Provider"],
  ["category", "Category"],
  ["service", "Service"],
];
const TARGET_HINT = {
  global: "A global rule has no target.",
  provider: "The provider's ID.",
  category: "The category name, exactly as listed.",
  service: "The gateway's service ID.",
};

function key(scope, target) {
  return `${scope}:${target === null || target === undefined ? "" : String(target).trim()}`;
}

/** The most specific rule for a service, as the gateway picks it: service > category > provider > global. */
function ruleFor(service, rules) {
  return (
    rules.get(key("service", service.id)) ||
    rules.get(key("category", service.category)) ||
    rules.get(key("provider", service.provider_id)) ||
    rules.get(key("global", null)) ||
    null
  );
}

function previewRows(services, rules, candidate, minMarginPercent) {
  const withCandidate = new Map(rules.map((r) => [key(r.scope, r.target), r]));
  withCandidate.set(key(candidate.scope, candidate.target), candidate);
  const affected = [];
  for (const service of services) {
    if (service.fixed_rate !== null) continue; // a fixed rate replaces every rule
    if (ruleFor(service, withCandidate) !== candidate) continue;
    const rate = markupPreview(service.cost_rate, candidate.percent, candidate.fixed, minMarginPercent);
    if (rate === null) return null;
    affected.push({ service, rate, change: formatDecimal(subtract(parseDecimal(rate), parseDecimal(service.rate))) });
  }
  return affected;
}

export function markupSection(initialRules, catalog, onChange) {
  let rules = initialRules;
  const slot = h("div", { id: "markup-rules" });

  function describeTarget(rule) {
    if (rule.scope === "global") return "—";
    if (rule.scope === "provider") {
      const provider = catalog.providers().find((p) => p.id === rule.target);
      return provider ? `${provider.name} (#${rule.target})` : `#${rule.target}`;
    }
    return rule.scope === "service" ? `#${rule.target}` : String(rule.target);
  }

  function draw() {
    slot.replaceChildren(
      table(
        "Markup rules (the most specific scope wins)",
        [
          { label: "ID", cell: (r) => String(r.id), num: true },
          { label: "Scope", cell: (r) => r.scope },
          { label: "Target", cell: describeTarget },
          { label: "Percent", cell: (r) => `${r.percent} %`, num: true },
          { label: "Fixed", cell: (r) => r.fixed, num: true },
          { label: "Created", cell: (r) => time(r.created_at) },
          {
            label: "Actions",
            cell: (r) => {
              const remove = h("button", { type: "button", class: "secondary small", "data-needs": "operator" }, `Delete rule ${r.id}`);
              remove.addEventListener("click", async () => {
                const sure = await confirmAction("Delete this markup rule?", "Prices fall back to the next matching rule at once.", "Delete", { danger: true });
                if (!sure) return;
                await busy(remove, async () => {
                  await del(`/markup-rules/${r.id}`);
                  announce(`Markup rule ${r.id} deleted.`);
                  await reload();
                });
              });
              return remove;
            },
          },
        ],
        rules,
        { id: "rules-table", empty: "No rules: services sell at cost (or at their fixed rate)." },
      ),
    );
  }

  async function reload() {
    rules = await get("/markup-rules");
    draw();
    await onChange();
  }

  const scope = select(SCOPES, { id: "rule-scope", "data-field": "scope" });
  const target = h("input", { id: "rule-target", "data-field": "target", list: "rule-target-options", autocomplete: "off" });
  const targetOptions = h("datalist", { id: "rule-target-options" });
  const percent = h("input", { id: "rule-percent", inputmode: "decimal", value: "20", required: true, "data-field": "percent" });
  const fixed = h("input", { id: "rule-fixed", inputmode: "decimal", value: "0", "data-field": "fixed" });
  const targetField = field("Target", target, TARGET_HINT.global);
  const previewSummary = h("p", { id: "preview-summary", "aria-live": "polite" });
  const previewTable = h("div", { id: "preview-table" });

  function candidate() {
    const value = target.value.trim();
    let ruleTarget = null;
    if (scope.value === "category") ruleTarget = value;
    else if (scope.value !== "global") ruleTarget = /^\d+$/.test(value) ? Number(value) : value;
    return { scope: scope.value, target: ruleTarget, percent: percent.value.trim(), fixed: fixed.value.trim() || "0" };
  }

  function updateTargetChoices() {
    const hint = targetField.querySelector(".hint");
    hint.textContent = TARGET_HINT[scope.value];
    target.disabled = scope.value === "global";
    if (target.disabled) target.value = "";
    let options = [];
    if (scope.value === "provider") options = catalog.providers().map((p) => [String(p.id), p.name]);
    else if (scope.value === "category") options = catalog.categories().map((c) => [c, c]);
    targetOptions.replaceChildren(...options.map(([value, label]) => h("option", { value }, label)));
  }

  function updatePreview() {
    const rule = candidate();
    if (!parseDecimal(rule.percent) || !parseDecimal(rule.fixed)) {
      previewSummary.textContent = "Enter a percent and a fixed amount as decimals to see a preview.";
      previewTable.replaceChildren();
      return;
    }
    if (rule.scope !== "global" && (rule.target === "" || rule.target === null)) {
      previewSummary.textContent = "Choose a target to see a preview.";
      previewTable.replaceChildren();
      return;
    }
    const rows = previewRows(catalog.services(), rules, rule, catalog.minMarginPercent()) || [];
    previewSummary.textContent = rows.length
      ? `This rule would set the price of ${rows.length} service(s)${rows.length > PREVIEW_ROWS ? `; the first ${PREVIEW_ROWS} are shown` : ""}.`
      : "This rule would set the price of no service (a more specific rule or a fixed rate wins, or nothing matches).";
    previewTable.replaceChildren(
      table(
        `Preview only: computed in the browser with the gateway's minimum margin of ${catalog.minMarginPercent()} %; the server's price is authoritative once saved`,
        [
          { label: "ID", cell: (r) => String(r.service.id), num: true },
          { label: "Service", cell: (r) => r.service.name },
          { label: "Cost", cell: (r) => r.service.cost_rate, num: true },
          { label: "Rate now", cell: (r) => r.service.rate, num: true },
          { label: "Preview rate", cell: (r) => r.rate, num: true },
          { label: "Change", cell: (r) => r.change, num: true },
        ],
        rows.slice(0, PREVIEW_ROWS),
        { empty: "No service affected." },
      ),
    );
  }

  const form = h(
    "form",
    { class: "card", novalidate: true, "aria-labelledby": "new-rule-title", "data-needs": "operator" },
    h("h3", { id: "new-rule-title" }, "New markup rule"),
    h(
      "div",
      { class: "filters" },
      field("Scope", scope),
      targetField,
      targetOptions,
      field("Percent", percent, "Added to the cost, e.g. 20"),
      field("Fixed", fixed, "Added per 1000 after the percent"),
      h("button", { type: "submit" }, "Add rule"),
    ),
    h(
      "section",
      { class: "preview", "aria-labelledby": "preview-title" },
      h("h3", { id: "preview-title" }, "Preview of the resulting prices"),
      h(
        "p",
        { class: "hint", id: "preview-rule" },
        `cost × (1 + percent/100) + fixed, rounded up to 4 decimals, never below cost × (1 + ${catalog.minMarginPercent()}/100) ` +
          "(the minimum margin, GATEWAY_MIN_MARGIN_PERCENT). Services with a fixed rate keep it.",
      ),
      previewSummary,
      previewTable,
    ),
  );
  scope.addEventListener("change", () => {
    updateTargetChoices();
    updatePreview();
  });
  for (const input of [target, percent, fixed]) input.addEventListener("input", updatePreview);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const rule = candidate();
    const body = { scope: rule.scope, percent: rule.percent, fixed: rule.fixed };
    if (rule.scope !== "global") body.target = rule.target;
    await busy(form, async () => {
      const created = await post("/markup-rules", body);
      announce(`Markup rule ${created.id} added; prices were recomputed by the gateway.`);
      await reload();
      updatePreview();
    });
  });

  draw();
  updateTargetChoices();
  updatePreview();
  return {
    node: h("section", { id: "markup", "aria-labelledby": "rules-title" }, h("h2", { id: "rules-title" }, "Markup rules"), slot, form),
    refreshPreview: () => {
      updateTargetChoices();
      updatePreview();
    },
  };
}
