// Sign-in: the admin token is checked against the API, then kept in this tab's sessionStorage.

import { session, tokenIsAccepted } from "../api.js";
import { announce, busy, field, h, showError } from "../dom.js";

export const title = "Sign in";

export async function render({ message, afterSignIn }) {
  // No name attribute and no action: the token can never be submitted as a form field or a URL.
  const input = h("input", {
    id: "admin-token",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    autocapitalize: "off",
    required: true,
    "data-autofocus": true,
  });
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title", novalidate: true },
    h("h1", { id: "signin-title", tabindex: "-1" }, "Sign in to the gateway console"),
    message ? h("p", { id: "signin-message", class: "alert", role: "alert" }, message) : null,
    h("p", {}, "Use GATEWAY_ADMIN_TOKEN or a named admin token."),
    field(
      "Admin token",
      input,
      "Kept in this browser tab only (session storage) and sent only in the Authorization header of admin API calls. Closing the tab or signing out forgets it.",
    ),
    h("button", { type: "submit" }, "Sign in"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      input.setAttribute("aria-invalid", "true");
      showError(new Error("Enter an admin token."));
      input.focus();
      return;
    }
    await busy(form, async () => {
      if (!(await tokenIsAccepted(token))) {
        input.setAttribute("aria-invalid", "true");
        input.select();
        showError(new Error("The gateway refused this token."));
        return;
      }
      input.value = "";
      session.signIn(token);
      announce("Signed in.");
      afterSignIn();
    });
  });
  return form;
}
