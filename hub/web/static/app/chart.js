// A time-series chart (uPlot) fed from history and then live points. Draws at most once a
// frame, however fast points arrive; keeps at most `cap` points (halved evenly when full), so
// memory and the cost of a frame are bounded by the points kept, not those received.

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
    this.lastDraw = -Infinity;
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

  /** Halve the points kept, evenly over the whole curve: of each pair, the one that moves
   * further from the point kept before it (so spikes survive); the newest point always stays. */
  thin() {
    const n = this.xs.length;
    const xs = [], ys = [], seqs = [];
    for (let i = 0; i + 1 < n; i += 2) {
      const prev = ys.length ? ys[ys.length - 1] : this.ys[i];
      const j = Math.abs(this.ys[i + 1] - prev) > Math.abs(this.ys[i] - prev) ? i + 1 : i;
      xs.push(this.xs[j]);
      ys.push(this.ys[j]);
      seqs.push(this.seqs[j]);
    }
    if (seqs[seqs.length - 1] !== this.seqs[n - 1]) {
      xs.push(this.xs[n - 1]);
      ys.push(this.ys[n - 1]);
      seqs.push(this.seqs[n - 1]);
    }
    this.xs = xs;
    this.ys = ys;
    this.seqs = seqs;
    this.el.dataset.thinned = "true";
  }

  /** Draw on the next frame, but no more than 30 times a second: a stream of points keeps
   * the page at its full frame rate, and the curve moves 30 times a second. */
  schedule() {
    if (this.pending) return;
    this.pending = true;
    const wait = this.lastDraw + 33 - performance.now();
    if (wait > 0) setTimeout(() => requestAnimationFrame(() => this.draw()), wait);
    else requestAnimationFrame(() => this.draw());
  }

  draw() {
    this.pending = false;
    this.lastDraw = performance.now();
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
