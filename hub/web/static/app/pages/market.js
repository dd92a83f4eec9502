// Market data: a live price chart of one symbol's ticks, resumed from the last sequence and
// epoch after a dropped socket.

import { SeriesChart } from "../chart.js";
import { h, num, seconds, time } from "../dom.js";
import { Stream, live } from "../live.js";
import { TICKS_SUB } from "../ops.js";

export function render(view, [symbol]) {
  const input = h("input", { name: "symbol", value: symbol || "", placeholder: "BTCUSD", required: true });
  const form = h("form", { class: "inline", id: "market-symbol" }, h("label", { class: "field" }, h("span", {}, "Symbol"), input), h("button", { type: "submit", class: "primary" }, "Watch"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    location.hash = `#/market/${encodeURIComponent(input.value.trim())}`;
  });
  const card = h("section", { class: "card" }, h("div", { class: "card-head" }, h("h2", {}, "Market data"), form));
  view.append(card);
  if (!symbol) {
    card.append(h("p", { class: "muted" }, "Pick a symbol to follow its ticks as they arrive."));
    return () => {};
  }
  const last = h("p", { class: "last-tick", id: "last-tick" }, "No ticks yet: waiting for the next one…");
  const notice = h("p", { class: "muted small", hidden: true });
  const box = h("div", { id: "ticks", class: "chart-box" });
  card.append(last, notice, box);
  const chart = new SeriesChart(box, { label: symbol, color: "#0e9f6e", cap: 20_000 });
  const stream = live.subscribe(
    new Stream({
      query: TICKS_SUB,
      field: "ticks",
      variables: { symbol },
      since: 0, // the recent ticks the hub still holds, then each new one
      onEvent: (t) => {
        if (t.price === null || t.price === undefined) return;
        const at = t.ts ? seconds(t.ts) : Date.now() / 1000;
        chart.push(at, t.price, t.sequence);
        last.textContent = `${symbol} ${num(t.price, 4)} · ${time(t.ts)} · #${t.sequence}`;
      },
      onLost: () => {
        notice.textContent = "The hub no longer holds the ticks missed while disconnected: the chart starts again from now.";
        notice.hidden = false;
        chart.reset([]);
        live.reopen(stream);
      },
    }),
  );
  return () => {
    live.unsubscribe(stream);
    chart.destroy();
  };
}
