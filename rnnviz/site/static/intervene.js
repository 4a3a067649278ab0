// Intervene's difference column, the extra column of a StepGroup of two runs (without | with): the
// image difference (+1 red: ink only with the intervention, -1 blue: only without, both grey) with
// the intervened steps marked and the current line outlined, the change of c and h per unit at the
// step, and a chart of the mean |change| per step. Everything is computed here from the two traces
// the server sent (the states that drew each image); nothing is asked of the server on a step.

import { absPercentile, cssGradient, drawLines, fmt, gridFrames, lineOf, lineRect, maxOf, scaleOf, unitGridShape } from './draw.js';
import { rules } from './rules.js';
import { bold, el } from './view.js';

const rgb = (c) => `rgb(${c.join(',')})`;

export class DifferenceColumn {
  /** ``steps``: the intervened steps (set per load, from the payload). */
  constructor(prefix, { tooltip = null } = {}) {
    this.prefix = prefix; this.tooltip = tooltip; this.steps = []; this.layer = -1;
    this.title = el('div', { class: 'rv-col-title' });
    this.canvas = el('canvas', { class: 'rv-px', width: 28, height: 28, 'aria-label': 'image difference' });
    this.rowmark = el('div', { class: 'rv-rowmark' });
    this.marks = el('div', { class: 'rv-ivmarks' });
    this.caption = el('div', { class: 'rv-stepinfo' });
    this.gatesHead = el('div', { class: 'rv-gates-head' });
    this.gates = el('div', { class: 'rv-gates' });
    this.chart = el('canvas', { class: 'rv-lines', width: 360, height: 120 });
    this.band = el('div', { class: 'rv-band' });
    this.chartTop = el('span', { class: 'rv-axis-top' });
    this.legend = el('div', { class: 'rv-lines-legend' });
    this.root = el('section', { class: 'rv-cmp-col rv-diff', id: `${prefix}_diff` }, this.title,
      el('div', { class: 'rv-canvas-wrap' }, el('div', { class: 'rv-canvas-col' },
        el('div', { class: 'rv-canvas' }, this.canvas, this.marks, this.rowmark), this.caption)),
      el('div', { class: 'rv-gates-wrap' }, this.gatesHead, this.gates),
      el('figure', { class: 'rv-fig' }, el('figcaption', { text: 'where the runs part: mean |\u0394| over the units per step' }),
        this.legend, el('div', { class: 'rv-bars-wrap' }, el('span', { class: 'rv-axis-label', text: 'mean |\u0394|' }), this.chartTop,
          el('div', { class: 'rv-bars-box' }, this.chart, this.band))));
  }

  /** ``columns``: the group's two columns; the second carries ``intervened`` (steps) and ``layer``. */
  load(columns) {
    const [a, b] = columns.map((c) => c.trace);
    this.a = a; this.b = b;
    if (!a || !b) return;
    this.steps = columns[1].intervened || [];
    const L = a.layers.length, layer = (((columns[1].layer ?? -1) % L) + L) % L;
    this.layer = layer;
    const H = a.height, W = a.width, n = a.hidden, S = a.rowNll.length, c = rules().canvas;
    // the image difference
    const g = this.canvas.getContext('2d'), img = g.createImageData(W, H);
    const line = lineOf(a.order, H, W);
    let added = 0, removed = 0, first = null;
    for (let q = 0; q < H * W; q++) {
      const x = a.image[q] > 0.5, y = b.image[q] > 0.5, col = x && y ? c.diffBoth : y ? c.diffAdded : x ? c.diffRemoved : c.paper;
      if (x !== y) {
        if (y) added++; else removed++;
        if (first === null || line[q] < first) first = line[q];  // the first line (step) where they differ
      }
      img.data.set([...col, 255], 4 * q);
    }
    g.putImageData(img, 0, 0);
    this.marks.replaceChildren(...this.steps.map((t) => {  // a thin mark beside each intervened line
      const r = lineRect(a.order, t, H, W), across = r.width === 100;
      const box = across ? `left:-8px;width:5px;top:${r.top}%;height:${r.height}%` : `top:-8px;height:5px;left:${r.left}%;width:${r.width}%`;
      return el('div', { class: 'rv-ivbar', title: `intervened step ${t}`, style: `${box};background:${c.intervened}` });
    }));
    const diff = b.rowNll.reduce((s, v) => s + v, 0) - a.rowNll.reduce((s, v) => s + v, 0);
    const nllA = a.rowNll.reduce((s, v) => s + v, 0), nllB = nllA + diff;
    this.title.replaceChildren(el('div', {}, bold('difference'), ' (with \u2212 without)'),
      el('div', {}, `NLL ${fmt(nllA, 1)} \u2192 ${fmt(nllB, 1)} nats (`, bold(`${diff >= 0 ? '+' : ''}${fmt(diff, 1)}`), ')'),
      el('div', { class: 'rv-line rv-proto', text: first === null ? 'identical images' : `first changed line ${first}` }));
    this.caption.replaceChildren(
      ...(first === null ? ['the two images are identical'] : [
        el('span', { style: `color:${rgb(c.diffAdded)}`, text: `+1: ${added} pixels` }), ' only with the intervention, ',
        el('span', { style: `color:${rgb(c.diffRemoved)}`, text: `\u22121: ${removed}` }), ' only without']),
      '; yellow: the intervened steps');
    // the change of c and h per unit, one symmetric scale per comparison
    const [rows, cols] = unitGridShape(n), ds = rules().deltaScale, tanh = scaleOf('tanh');
    this.cards = a.names.filter((s) => s === 'c' || s === 'h').map((name) => {
      const x = a.layers[layer][name], y = b.layers[layer][name], d = new Float32Array(x.length);
      for (let q = 0; q < d.length; q++) d[q] = y[q] - x[q];
      const m = Math.max(ds.round, Math.ceil(absPercentile(d, ds.percentile) / ds.round) * ds.round);
      const scale = { vmin: -m, vmax: m, anchors: tanh.anchors };
      const cv = el('canvas', { class: 'rv-px', width: cols, height: rows, 'data-name': `d${name}` });
      const stats = el('div', { class: 'rv-stats' });
      const card = el('figure', { class: 'rv-gate', title: `${name} with the intervention minus without` },
        el('figcaption', {}, bold(`\u0394${name}`), ' ', el('span', { text: 'change' })), cv,
        el('div', { class: 'rv-cbar', style: `background:${cssGradient(scale)}` }),
        el('div', { class: 'rv-cbar-labels' }, el('span', { text: fmt(-m) }), el('span', { text: '0' }), el('span', { text: fmt(m) })),
        stats);
      const mean = Array.from({ length: S }, (_, t) => { let s = 0; for (let u = 0; u < n; u++) s += Math.abs(d[t * n + u]); return s / n; });
      const ctx = cv.getContext('2d');
      return { name, d, grid: gridFrames(d, S, n, scale), ctx, img: ctx.createImageData(cols, rows), stats, card, mean };
    });
    this.gates.replaceChildren(...this.cards.map((q) => q.card));
    const dc = rules().deltaColors;
    this.series = this.cards.map((q) => ({ name: `mean |\u0394${q.name}|`, values: q.mean, color: dc[q.name], dash: q.name === 'c' ? [6, 4] : [] }));
    const top = maxOf(this.series.map((s) => s.values));
    this.chartTop.textContent = fmt(top, 2);
    drawLines(this.chart.getContext('2d'), this.series, this.chart.width, this.chart.height, top);
    this.legend.replaceChildren(...this.series.map((s) => el('span', { class: 'rv-lines-key' },
      el('span', { class: 'rv-sw', style: `background:${s.color}` }), s.name)));
    this.first = first; this.added = added; this.removed = removed;
  }

  setStep(t) {
    const a = this.a;
    if (!a || !this.b) return;
    const S = a.rowNll.length, step = Math.max(0, Math.min(S - 1, t)), r = lineRect(a.order, step, a.height, a.width);
    Object.assign(this.rowmark.style, { left: `${r.left}%`, top: `${r.top}%`, width: `${r.width}%`, height: `${r.height}%` });
    this.gatesHead.textContent = `change at step ${step} (unit grids in index order)`;
    for (const q of this.cards) {
      const size = q.grid.rows * q.grid.cols * 4;
      q.img.data.set(q.grid.frames.subarray(step * size, (step + 1) * size));
      q.ctx.putImageData(q.img, 0, 0);
      q.stats.textContent = `mean |\u0394${q.name}| ${fmt(q.mean[step], 3)}`;
    }
    this.band.style.left = `${(100 * step) / S}%`;
    this.band.style.width = `${100 / S}%`;
  }

  snapshot() {
    return { firstChanged: this.first, added: this.added, removed: this.removed, steps: this.steps,
      meanChange: Object.fromEntries((this.cards || []).map((q) => [q.name, q.mean])) };
  }
}
