// The hub's HTTP side: the session (this tab's sessionStorage only), GraphQL over POST /graphql,
// and the errors a page shows (a field's error beside its field).

const TOKEN = "tradehub.token";
const USER = "tradehub.user";

export const session = {
  get token() {
    return sessionStorage.getItem(TOKEN);
  },
  get user() {
    return sessionStorage.getItem(USER) || "";
  },
  set(token, user) {
    sessionStorage.setItem(TOKEN, token);
    sessionStorage.setItem(USER, user);
  },
  clear() {
    sessionStorage.removeItem(TOKEN);
  },
};

/** The session is gone (expired JWT, revoked key): the page asks to sign in again. */
export class SessionExpired extends Error {
  constructor() {
    super("your session has ended: sign in again");
  }
}

/** A GraphQL or REST error: the server's message, and the input field it names, if any. */
export class ApiError extends Error {
  constructor(message, { field = null, code = null } = {}) {
    super(message);
    this.field = field;
    this.code = code;
  }
}

const expiredListeners = new Set();
export function onExpired(listener) {
  expiredListeners.add(listener);
}
export function expire() {
  session.clear();
  for (const listener of expiredListeners) listener();
}

function isAuthError(error) {
  const ext = error.extensions || {};
  return ext.code === "UNAUTHORIZED" || ext.status === 401;
}

export async function gql(query, variables = {}) {
  const token = session.token;
  if (!token) {
    expire();
    throw new SessionExpired();
  }
  const response = fetch("/graphql", {
    method: "POST",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return answer(response);
}

/** The answer of the query the page sent before its modules loaded (dashboard.html), if it
 * asked for this execution and these points with the current credential; else null. */
export function early(id, maxPoints) {
  const sent = window.tradehubEarly;
  window.tradehubEarly = null;
  if (!sent || sent.id !== id || sent.maxPoints !== maxPoints || sent.token !== session.token) return null;
  return answer(sent.response);
}

async function answer(pending) {
  let response;
  try {
    response = await pending;
  } catch {
    throw new ApiError("the hub does not answer (is it running?)", { code: "UNREACHABLE" });
  }
  if (response.status === 401) {
    expire();
    throw new SessionExpired();
  }
  const body = await response.json().catch(() => null);
  if (body === null) throw new ApiError(`the hub answered ${response.status}`);
  if (body.errors && body.errors.length) {
    if (body.errors.some(isAuthError)) {
      expire();
      throw new SessionExpired();
    }
    const first = body.errors.find((e) => e.extensions && e.extensions.field) || body.errors[0];
    const ext = first.extensions || {};
    throw new ApiError(first.message, { field: ext.field || null, code: ext.code || null });
  }
  return body.data;
}

/** GET a REST route of the hub as the signed-in caller; its JSON body. */
export async function rest(path) {
  const token = session.token;
  if (!token) {
    expire();
    throw new SessionExpired();
  }
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${token}` } });
  } catch {
    throw new ApiError("the hub does not answer (is it running?)", { code: "UNREACHABLE" });
  }
  if (response.status === 401) {
    expire();
    throw new SessionExpired();
  }
  const body = await response.json().catch(() => null);
  if (!response.ok || body === null) throw new ApiError(`the hub answered ${response.status} for ${path}`);
  return body;
}

/** Sign in with a username and password (a JWT from POST /api/v1/auth/token). */
export async function signInWithPassword(username, password) {
  let response;
  try {
    response = await fetch("/api/v1/auth/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username, password }),
    });
  } catch {
    throw new ApiError("the hub does not answer (is it running?)");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = body.error || {};
    const field = (error.details && error.details.field) || (response.status === 401 ? "password" : null);
    throw new ApiError(error.message || `sign-in failed (${response.status})`, { field });
  }
  session.set(body.access_token, username);
  return username;
}

/** Sign in with an API key: kept once the hub says who it belongs to. */
export async function signInWithKey(key) {
  sessionStorage.setItem(TOKEN, key);
  try {
    const data = await gql("query Me { me { username } }");
    session.set(key, data.me.username);
    return data.me.username;
  } catch (error) {
    session.clear();
    if (error instanceof SessionExpired) throw new ApiError("the hub does not know this key", { field: "key" });
    throw error;
  }
}

/** Put `error` beside the input of `form` it names (data-field), else in the form's own slot. */
export function showError(form, error, aliases = {}) {
  clearErrors(form);
  const norm = (name) => String(name).replace(/[_.\-]/g, "").toLowerCase();
  let target = null;
  if (error.field) {
    const wanted = [error.field, aliases[error.field], String(error.field).split(".").pop()].filter(Boolean).map(norm);
    for (const slot of form.querySelectorAll("[data-error-for]")) {
      if (wanted.includes(norm(slot.dataset.errorFor))) {
        target = slot;
        break;
      }
    }
  }
  target = target || form.querySelector("[data-error-for='form']");
  target.textContent = error.message;
  target.hidden = false;
  const input = target.previousElementSibling;
  if (input && input.matches("input, select, textarea")) input.setAttribute("aria-invalid", "true");
}

export function clearErrors(form) {
  for (const slot of form.querySelectorAll("[data-error-for]")) {
    slot.textContent = "";
    slot.hidden = true;
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}
