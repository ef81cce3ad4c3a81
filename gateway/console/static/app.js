// The console's shell: a tiny hash router (#/orders?state=unknown), the navigation, sign-out, and
// the way back to sign-in when the gateway answers 401. Routes never carry the token.

import { onUnauthorized, session } from "./api.js";
import { clearMessages, h, showError } from "./dom.js";
import * as alerts from "./pages/alerts.js";
import * as catalog from "./pages/catalog.js";
import * as customer from "./pages/customer.js";
import * as customers from "./pages/customers.js";
import * as dashboard from "./pages/dashboard.js";
import * as order from "./pages/order.js";
import * as orders from "./pages/orders.js";
import * as refills from "./pages/refills.js";
import * as signin from "./pages/signin.js";

const ROUTES = [
  [/^\/signin$/, signin, null],
  [/^\/dashboard$/, dashboard, "dashboard"],
  [/^\/customers$/, customers, "customers"],
  [/^\/customers\/(\d+)$/, customer, "customers"],
  [/^\/catalog$/, catalog, "catalog"],
  [/^\/orders$/, orders, "orders"],
  [/^\/orders\/(\d+)$/, order, "orders"],
  [/^\/refills$/, refills, "refills"],
  [/^\/refills\/(\d+)$/, refills.detail, "refills"],
  [/^\/alerts$/, alerts, "alerts"],
];
const HOME = "#/dashboard";

let generation = 0;
let afterSignIn = HOME;
let signInMessage = "";

function parseRoute() {
  const raw = window.location.hash.slice(1);
  const [path, query] = raw.split("?", 2);
  return { path, params: new URLSearchParams(query || "") };
}

export function navigate(hash) {
  if (window.location.hash === hash) render();
  else window.location.hash = hash;
}

function closeDialogs() {
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
}

function signedInChrome(signedIn, section) {
  document.getElementById("nav").hidden = !signedIn;
  document.getElementById("sign-out").hidden = !signedIn;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.section === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function render() {
  const hash = window.location.hash;
  if (!hash.startsWith("#/")) {
    // "#main" (the skip link) is not a route; anything else goes home.
    if (hash !== "#main") window.location.replace(HOME);
    return;
  }
  const { path, params } = parseRoute();
  const route = ROUTES.find(([pattern]) => pattern.test(path));
  if (!route) {
    window.location.replace(HOME);
    return;
  }
  const [pattern, page, section] = route;
  if (page !== signin && !session.token()) {
    afterSignIn = hash;
    window.location.replace("#/signin");
    return;
  }
  if (page === signin && session.token()) {
    window.location.replace(afterSignIn);
    return;
  }

  const current = ++generation;
  const main = document.getElementById("main");
  signedInChrome(page !== signin, section);
  closeDialogs();
  main.setAttribute("aria-busy", "true");
  main.replaceChildren(h("p", {}, "Loading…"));
  const context = {
    params,
    match: pattern.exec(path),
    navigate,
    isCurrent: () => current === generation,
    message: page === signin ? signInMessage : "",
    afterSignIn: () => {
      const target = afterSignIn;
      afterSignIn = HOME;
      navigate(target);
    },
  };
  if (page === signin) signInMessage = "";
  let view;
  try {
    if (page !== signin) document.documentElement.dataset.scope = await session.learnScope();
    else delete document.documentElement.dataset.scope;
    view = await page.render(context);
  } catch (error) {
    if (current !== generation) return;
    if (error && error.status === 401) return;
    view = h("div", {}, h("h1", { tabindex: "-1" }, "This page could not be loaded"), h("p", {}, error.message));
    showError(error);
  }
  if (current !== generation) return;
  main.replaceChildren(view);
  main.removeAttribute("aria-busy");
  document.title = `${page.title || "Console"} · Gateway console`;
  const first = main.querySelector("[data-autofocus]");
  const heading = main.querySelector("h1");
  if (first) {
    first.focus();
  } else if (heading) {
    if (!heading.hasAttribute("tabindex")) heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: false });
  }
}

onUnauthorized((message) => {
  session.signOut();
  signInMessage = message;
  const { path } = parseRoute();
  if (path !== "/signin") afterSignIn = window.location.hash || HOME;
  closeDialogs();
  navigate("#/signin");
});

document.getElementById("sign-out").addEventListener("click", () => {
  session.signOut();
  afterSignIn = HOME;
  clearMessages();
  signInMessage = "You are signed out. The token was removed from this tab.";
  navigate("#/signin");
});

document.getElementById("skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  document.getElementById("main").focus();
});

// A user who changes page should not keep reading the previous page's message.
window.addEventListener("hashchange", () => {
  clearMessages();
  render();
});
render();
