// The admin API client. The token lives in this tab's sessionStorage only: never in a URL, never in
// localStorage or a cookie, and it leaves the browser only in the Authorization header of /admin calls.

const TOKEN_KEY = "gateway.console.adminToken";

// The signed-in token's scope (read, operator, admin), learnt from GET /admin/system; kept in
// memory only (the page shows a token only the actions it may take; the gateway enforces them).
let scope = null;

export const session = {
  token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  signIn(token) {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  signOut() {
    sessionStorage.removeItem(TOKEN_KEY);
    scope = null;
  },
  scope() {
    return scope;
  },
  async learnScope() {
    if (scope === null) {
      const system = await api("GET", "/system");
      scope = system.scope || "read";
    }
    return scope;
  },
};

export class ApiError extends Error {
  constructor(status, message, field = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.field = field;
  }
}

let unauthorized = () => {};

/** What to do when the gateway answers 401: the page layer sends the operator back to sign-in. */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

function adminUrl(path, query) {
  const url = new URL(`/admin${path}`, window.location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
  }
  return url.pathname + url.search;
}

async function send(token, method, path, { query, body } = {}) {
  const headers = { Accept: "application/json", Authorization: `Bearer ${token}` };
  const init = { method, headers, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(adminUrl(path, query), init);
  } catch {
    throw new ApiError(0, "The gateway could not be reached. Check the connection and try again.");
  }
  const text = response.status === 204 ? "" : await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!response.ok) {
    const message = (data && data.error) || `The gateway answered HTTP ${response.status}`;
    throw new ApiError(response.status, message, (data && data.field) || null);
  }
  return data;
}

/** Check a token before keeping it: true when the admin API accepts it. */
export async function tokenIsAccepted(token) {
  try {
    await send(token, "GET", "/system");
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return false;
    throw error;
  }
}

/** Call the admin API with the signed-in token; a 401 signs the operator out. */
export async function api(method, path, options = {}) {
  const token = session.token();
  if (!token) {
    unauthorized("Sign in with an admin token to continue.");
    throw new ApiError(401, "Not signed in");
  }
  try {
    return await send(token, method, path, options);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      session.signOut();
      unauthorized(`The gateway refused the token (${error.message}). Sign in again.`);
    }
    throw error;
  }
}

export const get = (path, query) => api("GET", path, { query });
export const post = (path, body, query) => api("POST", path, { body, query });
export const patch = (path, body) => api("PATCH", path, { body });
export const put = (path, body) => api("PUT", path, { body });
export const del = (path) => api("DELETE", path);
