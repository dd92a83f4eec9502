// Executions: the list (status and live progress) and the form that starts a backtest, built
// from the hub's `strategies`.

import { ApiError, clearErrors, gql, showError } from "../api.js";
import { Table, field, formError, h, num, progressBar, statusBadge, time } from "../dom.js";
import { Stream, live } from "../live.js";
import { EXECUTIONS, START_BACKTEST, STATUS_SUB, STRATEGIES } from "../ops.js";

const TERMINAL = new Set(["COMPLETED", "FAILED", "STOPPED"]);

export function render(view) {
  const streams = new Map();
  const rows = new Map();
  const table = new Table(
    [
      { label: "#", cell: (e) => h("a", { href: `#/executions/${e.executionId}` }, `#${e.executionNumber}`) },
      { label: "Strategy", cell: (e) => h("a", { href: `#/executions/${e.executionId}` }, e.strategy) },
      { label: "Symbol", cell: (e) => `${e.symbols.join(", ")} · ${e.timeframe}` },
      { label: "Mode", cell: (e) => e.mode },
      { label: "Status", cell: (e) => statusBadge(e.status) },
      { label: "Progress", cell: (e) => progressBar(e.progress) },
      { label: "Final value", num: true, cell: (e) => num(e.finalValue) },
      { label: "Created", cell: (e) => time(e.createdAt) },
    ],
    { empty: "No executions yet: start a backtest.", newestFirst: false },
  );
  const listError = h("p", { class: "error", hidden: true });

  function follow(e) {
    if (TERMINAL.has(e.status) || streams.has(e.executionId)) return;
    const stream = live.subscribe(
      new Stream({
        query: STATUS_SUB,
        field: "executionStatus",
        variables: { executionId: e.executionId },
        resumable: false,
        onEvent: (update) => {
          Object.assign(e, { status: update.status, progress: update.progress });
          table.upsert(e.executionId, e);
          if (TERMINAL.has(update.status)) {
            live.unsubscribe(stream);
            streams.delete(e.executionId);
            load();
          }
        },
      }),
    );
    streams.set(e.executionId, stream);
  }

  async function load() {
    try {
      const data = await gql(EXECUTIONS, { limit: 50 });
      listError.hidden = true;
      table.clear();
      for (const e of data.executions) {
        rows.set(e.executionId, e);
        table.upsert(e.executionId, e);
        follow(e);
      }
    } catch (error) {
      listError.textContent = error.message;
      listError.hidden = false;
    }
  }

  const form = startForm();
  view.append(
    h("div", { class: "grid two" },
      h("section", { class: "card span" },
        h("div", { class: "card-head" }, h("h2", {}, "Executions"), h("button", { type: "button", onclick: load }, "Refresh")),
        listError,
        table.el,
      ),
      h("section", { class: "card" }, h("h2", {}, "Start a backtest"), form),
    ),
  );
  load();
  return () => {
    for (const stream of streams.values()) live.unsubscribe(stream);
  };
}

function startForm() {
  const strategy = h("select", { name: "strategy", required: true });
  const params = h("fieldset", { class: "params" });
  const symbols = h("datalist", { id: "dataset-symbols" });
  const symbol = h("input", { name: "symbol", list: "dataset-symbols", required: true, placeholder: "BTCUSD" });
  const timeframe = h("input", { name: "timeframe", value: "1h", required: true });
  const capital = h("input", { name: "initialCapital", type: "number", step: "any", value: "10000", required: true });
  const start = h("input", { name: "start", type: "datetime-local", step: "1" });
  const end = h("input", { name: "end", type: "datetime-local", step: "1" });
  const submit = h("button", { type: "submit", class: "primary", disabled: true }, "Start backtest");
  const form = h(
    "form",
    { class: "stack", id: "start-backtest" },
    field("Strategy", strategy),
    h("p", { class: "muted small description", id: "strategy-description" }),
    params,
    h("div", { class: "row" }, field("Symbol", symbol), field("Timeframe", timeframe)),
    h("div", { class: "row" }, field("Start (UTC)", start), field("End (UTC)", end)),
    field("Initial capital", capital, "initialCapital"),
    formError(),
    submit,
    symbols,
  );
  let catalogue = [];

  function showParams() {
    const chosen = catalogue.find((s) => s.name === strategy.value);
    params.replaceChildren(h("legend", {}, "Parameters"));
    form.querySelector("#strategy-description").textContent = chosen ? chosen.description : "";
    if (!chosen) return;
    for (const p of chosen.params) {
      const numeric = p.type === "int" || p.type === "float";
      const input = h("input", {
        name: `param.${p.name}`,
        "data-param": p.name,
        "data-type": p.type,
        type: numeric ? "number" : p.type === "bool" ? "checkbox" : "text",
        step: p.type === "int" ? "1" : "any",
        title: p.description,
      });
      if (p.bounds && numeric) {
        if (p.bounds[0] !== null) input.min = p.bounds[0];
        if (p.bounds[1] !== null) input.max = p.bounds[1];
      }
      if (p.type === "bool") input.checked = Boolean(p.default);
      else if (p.default !== null && p.default !== undefined) input.value = p.default;
      params.append(field(p.name, input, p.name));
    }
  }

  gql(STRATEGIES)
    .then((data) => {
      catalogue = data.strategies;
      strategy.replaceChildren(...catalogue.map((s) => h("option", { value: s.name }, s.name)));
      const seen = new Set();
      for (const d of data.datasets) {
        if (seen.has(d.symbol)) continue;
        seen.add(d.symbol);
        symbols.append(h("option", { value: d.symbol }, d.granularity));
      }
      if (!symbol.value && data.datasets.length) {
        symbol.value = data.datasets[0].symbol;
        timeframe.value = data.datasets[0].granularity || timeframe.value;
      }
      showParams();
      submit.disabled = false;
    })
    .catch((error) => showError(form, error));
  strategy.addEventListener("change", showParams);

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form);
    const values = {};
    for (const input of params.querySelectorAll("[data-param]")) {
      if (input.type === "checkbox") values[input.dataset.param] = input.checked;
      else if (input.value === "") continue;
      else if (input.dataset.type === "int" || input.dataset.type === "float") values[input.dataset.param] = Number(input.value);
      else values[input.dataset.param] = input.value;
    }
    const input = {
      strategy: strategy.value,
      params: values,
      symbol: symbol.value.trim(),
      timeframe: timeframe.value.trim(),
      initialCapital: Number(capital.value),
    };
    if (start.value) input.start = new Date(start.value + "Z").toISOString();
    if (end.value) input.end = new Date(end.value + "Z").toISOString();
    submit.disabled = true;
    try {
      const data = await gql(START_BACKTEST, { input });
      location.hash = `#/executions/${data.startBacktest.executionId}`;
    } catch (error) {
      if (error instanceof ApiError) showError(form, error, { symbols: "symbol", initial_capital: "initialCapital" });
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}
