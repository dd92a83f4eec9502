// Paper accounts: the list (and a form that opens one); one account with its balances,
// positions and working orders live, an order ticket (market or limit) and cancel buttons.

import { ApiError, clearErrors, gql, showError } from "../api.js";
import { Table, field, formError, h, num, statusBadge, time } from "../dom.js";
import { Stream, live } from "../live.js";
import { ACCOUNT, ACCOUNTS, BALANCES_SUB, CANCEL_ORDER, CREATE_ACCOUNT, ORDERS_SUB, PLACE_ORDER, POSITIONS_SUB } from "../ops.js";

const WORKING = new Set(["PENDING", "WORKING", "PARTIALLY_FILLED"]);

export function render(view, [id]) {
  return id ? account(view, id) : list(view);
}

function list(view) {
  const table = new Table(
    [
      { label: "Name", cell: (a) => h("a", { href: `#/accounts/${a.id}` }, a.name) },
      { label: "Broker", cell: (a) => a.broker },
      { label: "Currency", cell: (a) => a.currency },
      { label: "Initial balance", num: true, cell: (a) => num(a.initialBalance) },
      { label: "Active", cell: (a) => (a.active ? "yes" : "no") },
      { label: "Created", cell: (a) => time(a.createdAt) },
    ],
    { empty: "No accounts yet: open a paper account.", newestFirst: false },
  );
  const error = h("p", { class: "error", hidden: true });
  const name = h("input", { name: "name", required: true, placeholder: "paper-1" });
  const balance = h("input", { name: "initialBalance", type: "number", step: "any", value: "100000" });
  const currency = h("input", { name: "currency", value: "USD" });
  const form = h("form", { class: "stack", id: "create-account" },
    field("Name", name), h("div", { class: "row" }, field("Initial balance", balance), field("Currency", currency)), formError(),
    h("button", { type: "submit", class: "primary" }, "Open paper account"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    try {
      const data = await gql(CREATE_ACCOUNT, { input: { name: name.value.trim(), initialBalance: Number(balance.value), currency: currency.value.trim() } });
      location.hash = `#/accounts/${data.createPaperAccount.id}`;
    } catch (e) {
      if (e instanceof ApiError) showError(form, e, { initial_balance: "initialBalance" });
    }
  });
  gql(ACCOUNTS)
    .then((data) => data.accounts.forEach((a) => table.upsert(a.id, a)))
    .catch((e) => {
      error.textContent = e.message;
      error.hidden = false;
    });
  view.append(h("div", { class: "grid two" },
    h("section", { class: "card span" }, h("h2", {}, "Accounts"), error, table.el),
    h("section", { class: "card" }, h("h2", {}, "Open a paper account"), form)));
  return () => {};
}

function account(view, id) {
  const streams = [];
  const follow = (spec) => {
    const s = live.subscribe(new Stream(spec));
    streams.push(s);
    return s;
  };
  const title = h("h2", {}, `Account ${id}`);
  const pageError = h("p", { class: "error", hidden: true });
  const balances = h("dl", { class: "facts balances", id: "balances" });
  const positions = new Table(
    [
      { label: "Symbol", cell: (p) => p.symbol },
      { label: "Quantity", num: true, cell: (p) => num(p.quantity, 4) },
      { label: "Avg price", num: true, cell: (p) => num(p.averagePrice, 4) },
      { label: "Last", num: true, cell: (p) => num(p.lastPrice, 4) },
      { label: "Unrealized", num: true, cell: (p) => h("span", { class: p.unrealizedPnl >= 0 ? "up" : "down" }, num(p.unrealizedPnl)) },
      { label: "Realized", num: true, cell: (p) => num(p.realizedPnl) },
    ],
    { empty: "No positions.", newestFirst: false, className: "positions" },
  );
  const orders = new Table(
    [
      { label: "Symbol", cell: (o) => o.symbol },
      { label: "Side", cell: (o) => o.side.toLowerCase() },
      { label: "Type", cell: (o) => o.type.toLowerCase() },
      { label: "Qty", num: true, cell: (o) => `${num(o.filledQuantity, 4)} / ${num(o.quantity, 4)}` },
      { label: "Price", num: true, cell: (o) => num(o.price, 4) },
      { label: "Status", cell: (o) => statusBadge(o.status) },
      { label: "", cell: (o) => h("button", { type: "button", class: "small danger", "data-cancel": o.id, onclick: () => cancel(o) }, "Cancel") },
    ],
    { empty: "No working orders.", className: "orders" },
  );
  const fills = new Table(
    [
      { label: "Time", cell: (f) => time(f.ts) },
      { label: "Symbol", cell: (f) => f.symbol },
      { label: "Side", cell: (f) => f.side.toLowerCase() },
      { label: "Qty", num: true, cell: (f) => num(f.quantity, 4) },
      { label: "Price", num: true, cell: (f) => num(f.price, 4) },
      { label: "Fee", num: true, cell: (f) => num(f.fee) },
    ],
    { empty: "No fills yet.", limit: 100, className: "fills" },
  );
  const cancelError = h("p", { class: "error", hidden: true });

  const ticket = orderTicket(id);
  view.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/accounts" }, "Accounts"), " / ", id),
    pageError,
    h("section", { class: "card" }, title, balances),
    h("div", { class: "grid two" },
      h("section", { class: "card" }, h("h3", {}, "Positions"), positions.el),
      h("section", { class: "card" }, h("h3", {}, "Order ticket"), ticket)),
    // Full width: a fill's six columns do not fit beside the working orders.
    h("section", { class: "card" }, h("h3", {}, "Working orders"), cancelError, orders.el),
    h("section", { class: "card" }, h("h3", {}, "Fills"), fills.el),
  );

  let positionsSeq = -1;
  let balancesSeq = -1;
  function showBalances(b) {
    if (b.sequence <= balancesSeq) return;
    balancesSeq = b.sequence;
    const item = (k, v, key) => [h("dt", {}, k), h("dd", { "data-key": key }, v)];
    balances.replaceChildren(
      ...item("Cash", num(b.cash), "cash"),
      ...item("Balance", num(b.balance), "balance"),
      ...item("Net liquidating value", num(b.netLiquidatingValue), "nlv"),
      ...item("Open P&L", num(b.openPnl), "openPnl"),
      ...item("Realized P&L", num(b.realizedPnl), "realizedPnl"),
      ...item("Fees", num(b.feesPaid), "fees"),
    );
    balances.dataset.sequence = b.sequence;
  }
  function showPositions(p) {
    if (p.sequence <= positionsSeq) return;
    positionsSeq = p.sequence;
    const open = p.positions.filter((x) => x.quantity !== 0);
    const keep = new Set(open.map((x) => x.symbol));
    for (const key of [...positions.rows.keys()]) if (!keep.has(key)) positions.remove(key);
    for (const x of open) positions.upsert(x.symbol, x);
  }
  function showOrder(o) {
    if (WORKING.has(o.status)) orders.upsert(o.id, o);
    else orders.remove(o.id);
  }

  async function cancel(o) {
    cancelError.hidden = true;
    try {
      showOrder((await gql(CANCEL_ORDER, { id: o.id })).cancelOrder);
    } catch (e) {
      if (e instanceof ApiError) {
        cancelError.textContent = e.message;
        cancelError.hidden = false;
      }
    }
  }

  async function load() {
    let data;
    try {
      data = await gql(ACCOUNT, { id });
    } catch (e) {
      pageError.textContent = e.message;
      pageError.hidden = false;
      return;
    }
    title.textContent = `${data.account.name} · ${data.account.broker} · ${data.account.currency}`;
    showBalances(data.balances);
    showPositions(data.positions);
    // The order log from its start: every working order and fill, then each change, resumed
    // from the last sequence after a reconnect.
    follow({
      query: ORDERS_SUB,
      field: "orders",
      variables: { accountId: id },
      since: 0,
      onEvent: (u) => {
        showOrder(u.order);
        if (u.fill) fills.upsert(u.fill.id, { ...u.fill, symbol: u.order.symbol, side: u.order.side });
      },
      onLost: () => {
        // The log no longer reaches back: working orders from the query, changes from now on.
        for (const o of data.orders) showOrder(o);
      },
    });
    follow({ query: POSITIONS_SUB, field: "positions", variables: { accountId: id }, resumable: false, onEvent: showPositions });
    follow({ query: BALANCES_SUB, field: "balances", variables: { accountId: id }, resumable: false, onEvent: showBalances });
  }

  load();
  return () => streams.forEach((s) => live.unsubscribe(s));
}

function orderTicket(accountId) {
  const symbol = h("input", { name: "symbol", required: true, placeholder: "BTCUSD" });
  const side = h("select", { name: "side" }, h("option", { value: "BUY" }, "Buy"), h("option", { value: "SELL" }, "Sell"));
  const type = h("select", { name: "type" }, h("option", { value: "MARKET" }, "Market"), h("option", { value: "LIMIT" }, "Limit"));
  const quantity = h("input", { name: "quantity", type: "number", step: "any", value: "1", required: true });
  const price = h("input", { name: "price", type: "number", step: "any", disabled: true, placeholder: "limit price" });
  const tif = h("select", { name: "timeInForce" }, ...["GTC", "IOC", "FOK", "DAY"].map((t) => h("option", { value: t }, t)));
  const submit = h("button", { type: "submit", class: "primary" }, "Place order");
  const result = h("p", { class: "muted small", id: "ticket-result" });
  const form = h("form", { class: "stack", id: "order-ticket" },
    field("Symbol", symbol),
    h("div", { class: "row" }, field("Side", side), field("Type", type)),
    h("div", { class: "row" }, field("Quantity", quantity), field("Limit price", price)),
    field("Time in force", tif, "timeInForce"),
    formError(), submit, result);
  type.addEventListener("change", () => {
    price.disabled = type.value !== "LIMIT";
    price.required = type.value === "LIMIT";
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    result.textContent = "";
    const input = { accountId, symbol: symbol.value.trim(), side: side.value, type: type.value, quantity: Number(quantity.value), timeInForce: tif.value };
    if (type.value === "LIMIT" && price.value !== "") input.price = Number(price.value);
    submit.disabled = true;
    try {
      const order = (await gql(PLACE_ORDER, { input })).placeOrder;
      result.textContent = `${order.side.toLowerCase()} ${order.quantity} ${order.symbol}: ${order.status.toLowerCase()}${order.rejectReason ? ` (${order.rejectReason})` : ""}`;
    } catch (e) {
      if (e instanceof ApiError) showError(form, e, { account_id: "symbol", time_in_force: "timeInForce" });
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
