// The dashboard's shell: routes in the URL fragment, the connection indicator, and sign-in as a
// dialog over the page (an expired session asks again without leaving the page or its state).

import { ApiError, onExpired, session, showError, clearErrors, signInWithKey, signInWithPassword } from "./api.js";
import { field, formError, h } from "./dom.js";
import { live } from "./live.js";
// Each page's module loads when it is first opened (an execution page loads only its own).
const ROUTES = [
  [/^#\/executions\/([^/]+)$/, () => import("./pages/execution.js")],
  [/^#\/executions$/, () => import("./pages/executions.js")],
  [/^#\/accounts(?:\/([^/]+))?$/, () => import("./pages/accounts.js")],
  [/^#\/jobs$/, () => import("./pages/jobs.js")],
  [/^#\/market(?:\/([^/]+))?$/, () => import("./pages/market.js")],
];

const view = document.getElementById("view");
const conn = document.getElementById("conn");
const who = document.getElementById("who");
let cleanup = null;
let rendered = null;

live.onState = (state) => {
  conn.dataset.state = state;
  conn.textContent = { live: "live", connecting: "connecting…", reconnecting: "reconnecting…", idle: "", "signed out": "signed out" }[state] ?? state;
};

async function route() {
  if (!location.hash || location.hash === "#/") {
    location.replace("#/executions");
    return;
  }
  if (!session.token) {
    askSignIn();
    return;
  }
  if (rendered === location.hash) return;
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", location.hash.startsWith(link.getAttribute("href")));
  const match = ROUTES.map(([re, page]) => [location.hash.match(re), page]).find(([m]) => m);
  if (cleanup) cleanup();
  cleanup = null;
  view.replaceChildren();
  rendered = location.hash;
  if (!match) {
    view.append(h("section", { class: "card" }, h("h2", {}, "Not found"), h("p", {}, "No page at ", location.hash, ".")));
    return;
  }
  const [m, load] = match;
  const hash = location.hash;
  const page = await load();
  if (rendered !== hash) return; // moved on while the page's module loaded
  // The socket opens with the page's first live view, or soon after (for the indicator): not
  // before, so a page's first query has the hub to itself.
  setTimeout(() => session.token && live.start(), 500);
  cleanup = page.render(view, m.slice(1).map((p) => (p === undefined ? p : decodeURIComponent(p))));
}

// --- sign in -------------------------------------------------------------------------------

const dialog = document.getElementById("signin");

function askSignIn() {
  who.textContent = "";
  dialog.hidden = false;
  document.body.classList.add("locked");
  const user = dialog.querySelector("input[name=username]");
  if (!user.value) user.value = session.user;
  (user.value ? dialog.querySelector("input[name=password]") : user).focus();
}

function signedIn(name) {
  dialog.hidden = true;
  document.body.classList.remove("locked");
  who.textContent = name;
  for (const form of dialog.querySelectorAll("form")) form.reset();
  live.stop();
  live.start();
  route();
}

function buildSignIn() {
  const password = h(
    "form",
    { class: "stack", id: "signin-password" },
    field("Username", h("input", { name: "username", autocomplete: "username", required: true })),
    field("Password", h("input", { name: "password", type: "password", autocomplete: "current-password", required: true })),
    formError(),
    h("button", { type: "submit", class: "primary" }, "Sign in"),
  );
  const key = h(
    "form",
    { class: "stack", id: "signin-key", hidden: true },
    field("API key", h("input", { name: "key", type: "password", autocomplete: "off", required: true })),
    formError(),
    h("button", { type: "submit", class: "primary" }, "Sign in with key"),
  );
  const submit = (form, attempt) => async (event) => {
    event.preventDefault();
    clearErrors(form);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      signedIn(await attempt(new FormData(form)));
    } catch (error) {
      showError(form, error instanceof ApiError ? error : new ApiError(String(error.message || error)));
    } finally {
      button.disabled = false;
    }
  };
  password.addEventListener("submit", submit(password, (d) => signInWithPassword(d.get("username"), d.get("password"))));
  key.addEventListener("submit", submit(key, (d) => signInWithKey(d.get("key").trim())));
  const tab = (label, form) =>
    h("button", {
      type: "button",
      class: "tab",
      onclick: (e) => {
        for (const f of [password, key]) f.hidden = f !== form;
        for (const t of e.target.parentNode.children) t.classList.toggle("active", t === e.target);
      },
    }, label);
  const tabs = h("div", { class: "tabs" }, tab("Password", password), tab("API key", key));
  tabs.firstChild.classList.add("active");
  dialog.append(h("div", { class: "dialog card" }, h("h2", {}, "Sign in to tradehub"), h("p", { class: "muted" }, "Kept in this browser tab only."), tabs, password, key));
}

onExpired(() => {
  live.stop();
  live.setState("signed out");
  askSignIn();
});

document.getElementById("signout").addEventListener("click", () => {
  session.clear();
  sessionStorage.removeItem("tradehub.user");
  live.stop();
  if (cleanup) cleanup();
  cleanup = null;
  rendered = null;
  view.replaceChildren(h("section", { class: "card" }, h("p", {}, "Signed out.")));
  askSignIn();
});

buildSignIn();
window.addEventListener("hashchange", route);
if (session.token) who.textContent = session.user;
view.replaceChildren(h("section", { class: "card" }, h("p", { class: "muted" }, "Sign in to see your executions, accounts and jobs.")));
route();
