// A time-series chart (uPlot) fed from history and then live points. Draws at most once a
// frame, however fast points arrive; keeps at most `cap` points (the oldest half is thinned to
// every other point when full), so memory is bounded by the points kept, not those received.

import uPlot from "/static/vendor/uplot-1.6.32/uPlot.esm.js";

export class SeriesChart {
  constructor(el, { label = "value", cap = 20_000, color = "#2f6fdf", onDraw = null } = {}) {
    this.el = el;
    this.cap = cap;
    this.xs = [];
    this.ys = [];
    this.seqs = [];
    this.pending = false;
    this.onDraw = onDraw;
    this.drawn = 0;
    el.classList.add("chart");
    // Tests and the bench read what is drawn from the element.
    el.chart = this;
    this.plot = new uPlot(
      {
        width: Math.max(200, el.clientWidth),
        height: Math.max(160, Math.min(360, Math.round(el.clientWidth * 0.45))),
        scales: { x: { time: true } },
        legend: { show: false },
        cursor: { drag: { x: true, y: false } },
        axes: [{ stroke: "#6b7280" }, { stroke: "#6b7280", size: 70 }],
        series: [{}, { label, stroke: color, width: 1.5, fill: color + "14", points: { show: false } }],
      },
      [[], []],
      el,
    );
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(el);
  }

  resize() {
    const width = Math.max(200, this.el.clientWidth);
    if (width !== this.plot.width) this.plot.setSize({ width, height: Math.max(160, Math.min(360, Math.round(width * 0.45))) });
  }

  /** Replace everything: points are [seconds, value, sequence]. */
  reset(points) {
    this.xs = points.map((p) => p[0]);
    this.ys = points.map((p) => p[1]);
    this.seqs = points.map((p) => p[2]);
    this.schedule();
  }

  push(x, y, seq) {
    this.xs.push(x);
    this.ys.push(y);
    this.seqs.push(seq);
    if (this.xs.length > this.cap) this.thin();
    this.schedule();
  }

  thin() {
    const half = Math.floor(this.xs.length / 2);
    const keep = (arr) => arr.slice(0, half).filter((_, i) => i % 2 === 0).concat(arr.slice(half));
    this.xs = keep(this.xs);
    this.ys = keep(this.ys);
    this.seqs = keep(this.seqs);
    this.el.dataset.thinned = "true";
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => this.draw());
  }

  draw() {
    this.pending = false;
    this.plot.setData([this.xs, this.ys]);
    this.drawn += 1;
    this.el.dataset.points = String(this.xs.length);
    this.el.dataset.lastSequence = String(this.seqs.length ? this.seqs[this.seqs.length - 1] : "");
    if (this.onDraw) this.onDraw(this);
  }

  destroy() {
    this.resizer.disconnect();
    this.plot.destroy();
  }
}
