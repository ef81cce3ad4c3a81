// Small DOM helpers. Text always goes in as text nodes (never innerHTML), so nothing the API returns
// (names, links, notes, errors) can become markup.

let nextId = 0;

/** A fresh element id, for label/aria wiring. */
export function uid(prefix = "f") {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** Build an element: h("a", {href: "#/x", class: "y", onclick: fn}, "text", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      el.className = value;
    } else if (name === "for") {
      el.htmlFor = value;
    } else if (name === "value") {
      // The default too, so that form.reset() goes back to it.
      if ("defaultValue" in el) el.defaultValue = value;
      el.value = value;
    } else if (name === "checked" || name === "selected" || name === "disabled" || name === "required") {
      el[name] = Boolean(value);
      if (value) el.setAttribute(name, "");
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A labelled control: h("label") + the control + an optional hint tied by aria-describedby. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid();
  const parts = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hintId = `${control.id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("span", { id: hintId, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

export function select(options, attrs = {}) {
  const el = h("select", attrs);
  for (const [value, label] of options) el.append(h("option", { value }, label));
  if (attrs.value !== undefined) el.value = attrs.value;
  return el;
}

/** A table with a caption and column headers; columns: [{label, cell(row), num}]. */
export function table(caption, columns, rows, { empty = "Nothing here yet.", id } = {}) {
  const body = h("tbody");
  for (const row of rows) body.append(tableRow(columns, row));
  if (rows.length === 0) {
    body.append(h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty)));
  }
  const el = h(
    "table",
    { id },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.label)))),
    body,
  );
  return h("div", { class: "table-wrap" }, el);
}

export function tableRow(columns, row) {
  return h(
    "tr",
    {},
    columns.map((c, index) => {
      const content = c.cell(row);
      const cls = [c.num ? "num" : "", c.className || ""].join(" ").trim() || null;
      return index === 0 && c.rowHeader
        ? h("th", { scope: "row", class: cls }, content)
        : h("td", { class: cls }, content);
    }),
  );
}

export function badge(text, kind = "muted") {
  return h("span", { class: `badge ${kind}` }, text);
}

/** An ISO timestamp as "YYYY-MM-DD HH:MM:SS UTC" inside a <time>. */
export function time(iso) {
  if (!iso) return "—";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const text = `${date.toISOString().slice(0, 19).replace("T", " ")} UTC`;
  return h("time", { datetime: iso }, text);
}

export function dash(value) {
  return value === null || value === undefined || value === "" ? "—" : String(value);
}

export function facts(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.map(([term, value, id]) => [h("dt", {}, term), h("dd", { id }, value)]),
  );
}

// Status messages: one polite live region for outcomes, one alert region for failures.

export function announce(message) {
  const alert = document.getElementById("alert");
  if (alert) alert.textContent = "";
  const status = document.getElementById("status");
  if (!status) return;
  // Cleared first so that the same message twice is announced twice.
  status.textContent = "";
  window.setTimeout(() => {
    status.textContent = message;
  }, 30);
}

export function showError(error) {
  const status = document.getElementById("status");
  if (status) status.textContent = "";
  const alert = document.getElementById("alert");
  if (!alert) return;
  const field = error && error.field ? ` (field: ${error.field})` : "";
  alert.textContent = `${error && error.message ? error.message : String(error)}${field}`;
}

export function clearMessages() {
  for (const id of ["status", "alert"]) {
    const el = document.getElementById(id);
    if (el) el.textContent = "";
  }
}

/** Run an action from a form or button: disable it meanwhile, report failures in the alert region. */
export async function busy(control, action) {
  const buttons = control instanceof HTMLFormElement ? [...control.querySelectorAll("button")] : [control];
  for (const button of buttons) button.disabled = true;
  try {
    const result = await action();
    if (control instanceof HTMLFormElement) markInvalid(control, null);
    return result;
  } catch (error) {
    if (!(error && error.status === 401)) {
      showError(error);
      if (control instanceof HTMLFormElement) markInvalid(control, error);
    }
    return undefined;
  } finally {
    for (const button of buttons) button.disabled = false;
  }
}

/** Mark the field a 400 named as invalid and move focus to it. */
export function markInvalid(form, error) {
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  if (!error || !error.field) return;
  const control = form.querySelector(`[data-field="${CSS.escape(error.field)}"]`);
  if (control) {
    control.setAttribute("aria-invalid", "true");
    control.focus();
  }
}

// Dialogs: native <dialog>, so focus is trapped and Escape closes them.

function openDialog(dialog) {
  document.body.append(dialog);
  const previous = document.activeElement;
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (previous && previous.isConnected && typeof previous.focus === "function") previous.focus();
  });
  dialog.showModal();
}

/** Ask before something that cannot be undone; resolves true when confirmed. */
export function confirmAction(title, message, confirmLabel = "Confirm", { danger = false } = {}) {
  return new Promise((resolve) => {
    const titleId = uid("dlg");
    const dialog = h("dialog", { "aria-labelledby": titleId, class: "confirm" });
    let answer = false;
    const ok = h(
      "button",
      {
        type: "button",
        class: danger ? "danger" : null,
        onclick: () => {
          answer = true;
          dialog.close();
        },
      },
      confirmLabel,
    );
    const cancel = h("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Cancel");
    append(dialog, [h("h2", { id: titleId }, title), h("p", {}, message), h("div", { class: "actions" }, ok, cancel)]);
    dialog.addEventListener("close", () => resolve(answer));
    openDialog(dialog);
    cancel.focus();
  });
}

/** Show a secret (a new API key) this once, with a copy button. */
export function showSecret(title, explanation, secret) {
  return new Promise((resolve) => {
    const titleId = uid("dlg");
    const secretId = uid("secret");
    const dialog = h("dialog", { "aria-labelledby": titleId, id: "secret-dialog" });
    const result = h("p", { class: "hint", role: "status", "aria-live": "polite" });
    const copy = h(
      "button",
      {
        type: "button",
        onclick: async () => {
          try {
            await navigator.clipboard.writeText(secret);
            result.textContent = "Copied to the clipboard.";
          } catch {
            const range = document.createRange();
            range.selectNodeContents(document.getElementById(secretId));
            const selection = window.getSelection();
            selection.removeAllRanges();
            selection.addRange(range);
            result.textContent = "Copying is not allowed here: the key is selected, copy it by hand.";
          }
        },
      },
      "Copy key",
    );
    const close = h("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "I have saved it");
    append(dialog, [
      h("h2", { id: titleId }, title),
      h("p", {}, explanation),
      h("code", { id: secretId, class: "secret", "data-secret": "api-key" }, secret),
      h("div", { class: "actions" }, copy, close),
      result,
    ]);
    dialog.addEventListener("close", () => resolve());
    openDialog(dialog);
    copy.focus();
  });
}

/** A modal form; `build(form)` adds the controls, `submit(form)` returns true to close. */
export function formDialog(title, build, submit, submitLabel = "Save") {
  return new Promise((resolve) => {
    const titleId = uid("dlg");
    const dialog = h("dialog", { "aria-labelledby": titleId });
    let saved = false;
    const form = h("form", { novalidate: true });
    form.append(h("h2", { id: titleId }, title));
    build(form);
    form.append(
      h(
        "div",
        { class: "actions" },
        h("button", { type: "submit" }, submitLabel),
        h("button", { type: "button", class: "secondary", onclick: () => dialog.close() }, "Cancel"),
      ),
    );
    // Errors are shown inside the dialog: the page behind a modal dialog is inert.
    const problem = h("p", { class: "alert", role: "alert" });
    form.append(problem);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const buttons = [...form.querySelectorAll("button")];
      for (const button of buttons) button.disabled = true;
      problem.textContent = "";
      try {
        if (await submit(form)) {
          saved = true;
          dialog.close();
        }
      } catch (error) {
        if (error && error.status === 401) return;
        problem.textContent = error && error.message ? error.message : String(error);
        markInvalid(form, error);
      } finally {
        for (const button of buttons) button.disabled = false;
      }
    });
    dialog.append(form);
    dialog.addEventListener("close", () => resolve(saved));
    openDialog(dialog);
    const first = form.querySelector("input, select, textarea");
    if (first) first.focus();
  });
}
