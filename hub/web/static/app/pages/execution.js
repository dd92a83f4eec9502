// One execution: its status and progress, the equity curve (downsampled history from
// `equity(maxPoints)`, then every new point from the `equity` subscription), its trades and its
// events, all live; stop while it runs.

import { ApiError, early, gql, rest } from "../api.js";
import { SeriesChart } from "../chart.js";
import { Table, h, num, progressBar, seconds, statusBadge, time } from "../dom.js";
import { Stream, live } from "../live.js";
import { EQUITY_SUB, EVENTS_SUB, EXECUTION, STATUS_SUB, STOP_EXECUTION, TRADES_SUB } from "../ops.js";

const TERMINAL = new Set(["COMPLETED", "FAILED", "STOPPED"]);
const EVENTS_SHOWN = 200;
const TRADES_SHOWN = 500;

export function render(view, [id]) {
  const started = performance.now();
  performance.mark("execution:render");
  const streams = [];
  const follow = (spec) => {
    const stream = live.subscribe(new Stream(spec));
    streams.push(stream);
    return stream;
  };

  const title = h("h2", {}, `Execution ${id}`);
  const status = h("span", { class: "status" });
  const progress = h("span", { class: "progress-slot" });
  const facts = h("dl", { class: "facts" });
  const stop = h("button", { type: "button", class: "danger", id: "stop-execution", hidden: true }, "Stop");
  const stopError = h("span", { class: "error", hidden: true });
  const chartBox = h("div", { id: "equity", class: "chart-box" });
  const curveNote = h("p", { class: "muted small", id: "equity-note" });
  const tradeCount = h("span", { class: "count", id: "trade-count" }, "0");
  const trades = new Table(
    [
      { label: "#", num: true, cell: (t) => t.sequence },
      { label: "Side", cell: (t) => t.direction },
      { label: "Entry", cell: (t) => `${time(t.entryTime)} @ ${num(t.entryPrice, 4)}` },
      { label: "Exit", cell: (t) => (String(t.status).toLowerCase() === "open" ? `open (marked ${num(t.exitPrice, 4)})` : `${time(t.exitTime)} @ ${num(t.exitPrice, 4)}`) },
      { label: "Units", num: true, cell: (t) => num(t.units, 4) },
      { label: "P&L", num: true, cell: (t) => h("span", { class: t.pnl >= 0 ? "up" : "down" }, num(t.pnl)) },
      { label: "Fees", num: true, cell: (t) => num(t.fees) },
      { label: "Exit reason", cell: (t) => t.exitReason },
    ],
    { empty: "No trades yet.", limit: TRADES_SHOWN, className: "trades" },
  );
  const events = new Table(
    [
      { label: "#", num: true, cell: (e) => e.sequence },
      { label: "Type", cell: (e) => e.eventType.toLowerCase().replace(/_/g, " ") },
      { label: "Time", cell: (e) => time(e.timestamp) },
      { label: "Detail", cell: (e) => h("code", {}, JSON.stringify(e.event).slice(0, 160)) },
    ],
    { empty: "No events yet.", limit: EVENTS_SHOWN, className: "events" },
  );
  const pageError = h("p", { class: "error", hidden: true });

  view.append(
    h("p", { class: "crumbs" }, h("a", { href: "#/executions" }, "Executions"), " / ", id),
    pageError,
    h("section", { class: "card" },
      h("div", { class: "card-head" }, title, h("span", { class: "head-right" }, status, progress, stop)),
      stopError,
      facts,
    ),
    h("section", { class: "card" }, h("div", { class: "card-head" }, h("h3", {}, "Equity"), curveNote), chartBox),
    h("section", { class: "card" }, h("h3", {}, "Trades ", tradeCount), trades.el),
    h("section", { class: "card" }, h("h3", {}, "Events"), events.el),
  );

  const chart = new SeriesChart(chartBox, {
    label: "equity",
    // About four points a pixel: the curve keeps its shape, and a frame stays cheap to draw.
    cap: 6000,
    onDraw: (c) => {
      if (!chartBox.dataset.firstDrawMs && c.xs.length) {
        // From the route's render, and from the navigation (bench/dashboard.py reads both).
        chartBox.dataset.firstDrawMs = String(Math.round(performance.now() - started));
        chartBox.dataset.firstDrawAt = String(Math.round(performance.now()));
        performance.mark("execution:drawn");
      }
      const shown = document.getElementById("last-equity");
      if (shown) shown.textContent = lastEquity();
      const eq = equityStream;
      if (eq) Object.assign(chartBox.dataset, { gaps: eq.gaps, duplicates: eq.duplicates, received: eq.received });
    },
  });
  let equityStream = null;
  let execution = null;
  let count = 0;

  function showHeader() {
    const e = execution;
    title.textContent = `#${e.executionNumber} ${e.strategy}`;
    status.replaceChildren(statusBadge(e.status));
    status.dataset.status = e.status;
    // A live run has no end to progress toward: its bars and last equity say how far it is.
    const bounded = e.total > 0 || TERMINAL.has(e.status);
    progress.replaceChildren(bounded ? progressBar(e.progress) : "");
    stop.hidden = TERMINAL.has(e.status);
    const item = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
    facts.replaceChildren(
      ...item("Symbol", `${e.symbols.join(", ")} · ${e.timeframe}`),
      ...item("Mode", e.mode),
      ...item("Params", JSON.stringify(e.params)),
      ...item("Initial capital", num(e.initialCapital)),
      ...item("Final value", num(e.finalValue)),
      ...item("Bars", e.total > 0 ? `${Math.round(e.processed)} / ${Math.round(e.total)}` : `${Math.round(e.processed)}`),
      ...item("Equity", h("span", { id: "last-equity" }, lastEquity())),
      ...item("Started", time(e.startedAt)),
      ...item("Completed", time(e.completedAt)),
      ...(e.errorMessage ? item("Error", e.errorMessage) : []),
    );
  }

  function lastEquity() {
    return chart.ys.length ? num(chart.ys[chart.ys.length - 1]) : "–";
  }

  function addTrade(t) {
    trades.upsert(t.sequence, t);
    count = Math.max(count, t.sequence);
    tradeCount.textContent = String(count);
  }

  // One to two points a pixel, at a size a completed run stores downsampled (hub/executions/
  // curves.py: STORED_SIZES), so the hub reads kilobytes instead of the whole curve;
  // dashboard.html asks the same before this module loads.
  const maxPoints = () => (innerWidth >= 700 ? 2000 : 1000);

  /** How many events or trades the execution has (their sequences run 1..count). */
  async function counted(kind) {
    const body = await rest(`/api/trading/executions/${encodeURIComponent(id)}/${kind}/?page_size=1`);
    return body.count;
  }

  async function load() {
    chartBox.dataset.maxPoints = String(maxPoints());
    // The curve first (its query alone on the hub), then trades and events.
    await loadCurve();
    await loadRows();
  }

  async function loadCurve() {
    let data;
    try {
      performance.mark("execution:query");
      data = await (early(id, maxPoints()) || gql(EXECUTION, { id, maxPoints: maxPoints() }));
      performance.mark("execution:answered");
    } catch (error) {
      pageError.textContent = error.message;
      pageError.hidden = false;
      return;
    }
    pageError.hidden = true;
    execution = data.execution;
    const points = execution.equity;
    chart.reset(points.map((p) => [seconds(p.timestamp), p.balance, p.sequence]));
    showHeader();
    const last = points.length ? points[points.length - 1].sequence : 0;
    curveNote.textContent = points.length >= maxPoints() ? "history downsampled (LTTB), live points in full" : "";
    equityStream = follow({
      query: EQUITY_SUB,
      field: "equity",
      variables: { executionId: id },
      since: last,
      contiguous: true,
      onEvent: (p) => chart.push(seconds(p.timestamp), p.balance, p.sequence),
      onLost: () => reload(),
    });
    if (!TERMINAL.has(execution.status)) {
      const statusStream = follow({
        query: STATUS_SUB,
        field: "executionStatus",
        variables: { executionId: id },
        resumable: false,
        onEvent: (u) => {
          Object.assign(execution, { status: u.status, progress: u.progress, errorMessage: u.errorMessage });
          if (u.checkpoint) execution.processed = u.checkpoint.processed;
          showHeader();
          if (TERMINAL.has(u.status)) {
            live.unsubscribe(statusStream);
            refresh();
          }
        },
      });
    }
  }

  async function loadRows() {
    let eventCount, tradeTotal;
    try {
      [eventCount, tradeTotal] = await Promise.all([counted("events"), counted("trades")]);
    } catch (error) {
      pageError.textContent = error.message;
      pageError.hidden = false;
      return;
    }
    // The newest trades and events (a long run has many), then each new one as it comes.
    count = tradeTotal;
    tradeCount.textContent = String(count);
    follow({
      query: TRADES_SUB,
      field: "executionTrades",
      variables: { executionId: id },
      since: Math.max(0, tradeTotal - TRADES_SHOWN),
      onEvent: addTrade,
      onLost: () => reload(),
    });
    follow({
      query: EVENTS_SUB,
      field: "executionEvents",
      variables: { executionId: id },
      since: Math.max(0, eventCount - EVENTS_SHOWN),
      onEvent: (e) => events.upsert(e.sequence, e),
      onLost: () => reload(),
    });
  }

  async function refresh() {
    try {
      const data = await gql(EXECUTION, { id, maxPoints: 2 });
      Object.assign(execution, data.execution, { equity: undefined, trades: undefined });
      showHeader();
    } catch {
      /* the header keeps what it had */
    }
  }

  function reload() {
    for (const s of streams.splice(0)) live.unsubscribe(s);
    trades.clear();
    events.clear();
    count = 0;
    load();
  }

  stop.addEventListener("click", async () => {
    stopError.hidden = true;
    stop.disabled = true;
    try {
      const data = await gql(STOP_EXECUTION, { id });
      execution.status = data.stopExecution.status;
      showHeader();
    } catch (error) {
      if (error instanceof ApiError) {
        stopError.textContent = error.message;
        stopError.hidden = false;
      }
    } finally {
      stop.disabled = false;
    }
  });

  load();
  return () => {
    for (const s of streams) live.unsubscribe(s);
    chart.destroy();
  };
}
