// Small DOM helpers: elements from a tag, attributes and children (text is always text, never HTML).

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** A labelled input with its error slot (data-error-for names the server's field). */
export function field(label, input, name = input.name) {
  return h("label", { class: "field" }, h("span", {}, label), input, h("small", { class: "error", "data-error-for": name, hidden: true }));
}

export function formError() {
  return h("p", { class: "error", "data-error-for": "form", hidden: true });
}

export const num = (value, digits = 2) =>
  value === null || value === undefined ? "–" : Number(value).toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

export const time = (iso) => (iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 19) : "–");

export const seconds = (iso) => Date.parse(iso) / 1000;

export function statusBadge(status) {
  return h("span", { class: `badge ${String(status).toLowerCase()}` }, String(status).toLowerCase());
}

export function progressBar(fraction) {
  const pct = Math.max(0, Math.min(100, Math.round((fraction || 0) * 100)));
  return h("span", { class: "progress", title: `${pct}%` }, h("span", { style: `width:${pct}%` }), h("em", {}, `${pct}%`));
}

/** A table whose rows are keyed: `upsert` replaces a row in place, `limit` bounds the rows kept. */
export class Table {
  constructor(columns, { empty = "nothing yet", limit = 500, newestFirst = true, className = "" } = {}) {
    this.columns = columns;
    this.limit = limit;
    this.newestFirst = newestFirst;
    this.rows = new Map();
    this.body = h("tbody");
    this.emptyRow = h("tr", { class: "empty" }, h("td", { colspan: columns.length }, empty));
    this.body.append(this.emptyRow);
    this.el = h("div", { class: `table-wrap ${className}` }, h("table", {}, h("thead", {}, h("tr", {}, columns.map((c) => h("th", { class: c.num ? "num" : "" }, c.label)))), this.body));
  }

  render(item) {
    return h("tr", { dataset: { key: String(item.__key) } }, this.columns.map((c) => h("td", { class: c.num ? "num" : "", "data-label": c.label }, c.cell(item))));
  }

  upsert(key, item) {
    item.__key = key;
    const row = this.render(item);
    const old = this.rows.get(key);
    if (old) old.replaceWith(row);
    else if (this.newestFirst) this.body.prepend(row);
    else this.body.append(row);
    this.rows.set(key, row);
    this.emptyRow.remove();
    while (this.rows.size > this.limit) {
      const [oldest] = this.rows.keys();
      this.rows.get(oldest).remove();
      this.rows.delete(oldest);
    }
  }

  remove(key) {
    const row = this.rows.get(key);
    if (row) row.remove();
    this.rows.delete(key);
    if (!this.rows.size) this.body.append(this.emptyRow);
  }

  clear() {
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
    this.body.append(this.emptyRow);
  }
}
