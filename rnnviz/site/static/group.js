// A linked group: several traces side by side and ONE player (slider, step box, Play/Pause, keys)
// that moves every column, over one chart of every column's NLL per line on one scale. Compare
// cells (one trace per model, the same digit, seed and temperature) and Intervene (without | with,
// plus the difference column of intervene.js) are this module with their traces. Each column is a
// compact StepView (canvas, the states it is given, its line NLL bars on the group's one scale).
// Data in, DOM out: the columns come from the app's server or the page's sampler.

import { cellColor, drawLines, fmt, maxOf } from './draw.js';
import { rules } from './rules.js';
import { Player, StepView, bold, el } from './view.js';

const DASHES = [[], [2, 3], [6, 4], [6, 3, 2, 3]];

/** A column's title (text only, never markup from metadata): the model, its cell and size, its test
 *  NLL (the protocol on hover) and this trace's NLL. ``entry``: {name, config, metrics}. */
export function columnTitle(entry, trace, what = 'this sample') {
  const c = entry.config, m = entry.metrics || {};
  const how = String(m.test_nll_protocol || 'how it was measured is not recorded').slice(0, 200);
  const given = trace && trace.label !== null && trace.label !== undefined ? ' | digit' : '';
  const arch = `${c.cell.toUpperCase()} ${c.layers}\u00d7${c.hidden}${c.latent ? `, VAE z of ${c.latent}` : ''}`
    + (c.order && c.order !== 'rows' ? `, ${c.order}` : '');
  return el('div', { class: 'rv-col-title' },
    el('div', { class: 'rv-line' }, el('span', { class: 'rv-dot', style: `background:${cellColor(c.cell)}` }),
      bold(entry.name), ` \u00b7 ${arch}`),
    el('div', { title: how }, ...(typeof m.test_nll !== 'number' ? ['test NLL not recorded'] : ['test NLL ', bold(fmt(m.test_nll)), ' nats'])),
    el('div', { class: 'rv-cmp-nll' }, ...(trace
      ? [`${what}: `, bold(fmt(trace.rowNll.reduce((a, b) => a + b, 0), 1)), ` nats (\u2212log p(image${given}))`]
      : [])));
}

export class StepGroup {
  /** Builds the player (``#<prefix>_step``), the columns box and the chart inside ``root``.
   *  Options: ``prefix``, ``tooltip``, ``onStep(t)``, ``onUnit(unit, layer, column)``, ``names(cell)``
   *  (the states a column shows; default: the rules' compact column states), ``extra`` (an object
   *  with ``root``, ``load(columns)`` and ``setStep(t)``: one more column, e.g. Intervene's
   *  difference), ``chartTitle``. */
  constructor(root, { prefix = 'cmp', tooltip = null, onStep = () => {}, onUnit = null, names = null, extra = null,
    chartTitle = 'NLL of each line, per column (one scale)' } = {}) {
    this.prefix = prefix; this.tooltip = tooltip; this.onStep = onStep; this.onUnit = onUnit; this.extra = extra;
    this.names = names || ((cell) => rules().columnStates[cell] || null);
    this.columns = []; this.step = 0; this.key = '';
    this.player = new Player(prefix, 'timestep t = the line being drawn, in every column:', (t) => this.setStep(t));
    this.box = el('div', { class: 'rv-cmp-cols', id: `${prefix}_columns` });
    this.chart = el('canvas', { class: 'rv-lines', width: 720, height: 160 });
    this.chartBand = el('div', { class: 'rv-band' });
    this.chartTop = el('span', { class: 'rv-axis-top' });
    this.legend = el('div', { class: 'rv-lines-legend' });
    this.chartFig = el('figure', { class: 'rv-fig rv-group-chart', id: `${prefix}_chart`, hidden: '' },
      el('figcaption', { text: chartTitle }), this.legend,
      el('div', { class: 'rv-bars-wrap' }, el('span', { class: 'rv-axis-label', text: 'nats' }), this.chartTop,
        el('div', { class: 'rv-bars-box' }, this.chart, this.chartBand)));
    this.row = el('div', { class: 'rv-cmp-row' }, this.box, ...(extra ? [extra.root] : []));
    root.append(el('div', { class: 'rv-cmp-slider', tabindex: '0', id: `${prefix}_player` }, this.player.root), this.row, this.chartFig);
    this.player.keys(this.player.slider);
    this.player.keys(root);
    this.chart.addEventListener('mousemove', (ev) => this._chartTip(ev));
    this.chart.addEventListener('mouseleave', () => { if (this.tooltip) this.tooltip.hidden = true; });
  }

  /** Show ``columns`` ([{entry, trace, what?, unitOrder?, note?} or {entry, skipped: why}]) at ``step``.
   *  Columns are rebuilt only when the models change; a new sample reuses them. */
  load(columns, step = null) {  // null: the last step
    this.stop();
    const key = columns.map((c) => `${c.entry.name}:${c.trace ? c.trace.cell : '-'}`).join();
    if (key !== this.key) this._build(columns);
    this.key = key;
    const drawn = columns.filter((c) => c.trace);
    const top = maxOf(drawn.map((c) => c.trace.rowNll));
    columns.forEach((c, k) => {
      const col = this.columns[k];
      col.trace = c.trace || null;
      col.head.replaceChildren(columnTitle(c.entry, c.trace, c.what));
      if (c.trace) col.view.load(c.trace, c.entry.name, null, { unitOrder: c.unitOrder || null, barsTop: top, note: c.note || '' });
      else col.why.textContent = c.skipped;
    });
    this.series = drawn.map((c, k) => ({ name: c.entry.name, what: c.what, values: Array.from(c.trace.rowNll),
      color: c.color || cellColor(c.trace.cell), dash: DASHES[drawn.slice(0, k).filter((d) => d.trace.cell === c.trace.cell).length % DASHES.length] }));
    this.chartTop.textContent = fmt(top, 0);
    drawLines(this.chart.getContext('2d'), this.series, this.chart.width, this.chart.height, top);
    this.legend.replaceChildren(...this.series.map((s) => el('span', { class: 'rv-lines-key' },
      el('span', { class: 'rv-sw', style: `background:${s.color}` }),
      `${s.name}${s.what ? ` (${s.what})` : ''}: ${fmt(s.values.reduce((a, b) => a + b, 0), 1)}`)));
    this.chartFig.hidden = drawn.length === 0;
    if (this.extra) this.extra.load(columns);
    const H = Math.max(1, ...drawn.map((c) => c.trace.rowNll.length));
    this.player.setSteps(H);
    this.player.go(step === null || step === undefined ? H - 1 : step);
  }

  _build(columns) {
    this.columns = columns.map((c, k) => {
      const head = el('div'), canvas = el('div'), gates = el('div'), figure = el('div'), why = el('p', { class: 'rv-hint' });
      const col = el('section', { class: 'rv-cmp-col', 'data-model': c.entry.name }, head);
      let view = null;
      if (c.trace) {
        view = new StepView(`${this.prefix}${k}`, { canvas, gates, figure }, { tooltip: this.tooltip, names: this.names,
          controls: false, panels: false, onUnit: this.onUnit ? (u, layer) => this.onUnit(u, layer, k) : null });
        col.append(canvas, gates, figure);
      } else col.append(why);
      return { entry: c.entry, head, view, why, trace: null, root: col };
    });
    this.box.replaceChildren(...this.columns.map((c) => c.root));
  }

  /** Every column (and the chart's band) to step ``t``, clamped to each trace. */
  setStep(t) {
    this.step = t;
    for (const c of this.columns) if (c.view && c.trace) c.view.setStep(t);
    const H = Math.max(1, ...this.columns.filter((c) => c.trace).map((c) => c.trace.rowNll.length));
    this.chartBand.style.left = `${(100 * t) / H}%`;
    this.chartBand.style.width = `${100 / H}%`;
    if (this.extra) this.extra.setStep(t);
    this.onStep(t);
  }

  go(t) { this.player.go(t); }

  start() { this.player.start(); }

  stop() { this.player.stop(); }

  _chartTip(ev) {
    const tip = this.tooltip;
    if (!tip || !this.series || !this.series.length) return;
    const r = this.chart.getBoundingClientRect(), H = Math.max(...this.series.map((s) => s.values.length));
    const t = Math.min(H - 1, Math.max(0, Math.floor(((ev.clientX - r.left) / r.width) * H)));
    tip.textContent = [`line ${t}`, ...this.series.map((s) => `${s.name}${s.what ? ` (${s.what})` : ''}: ${fmt(s.values[t] || 0)} nats`)].join('\n');
    tip.hidden = false;
    tip.style.left = `${ev.pageX + 12}px`;
    tip.style.top = `${ev.pageY + 12}px`;
  }

  /** What the view shows, for tests: the shared step and per column the model, its cell and its
   *  StepView's snapshot (or why it was skipped). */
  snapshot() {
    if (!this.columns.length) return null;
    return {
      step: this.player.step, playing: this.player.playing,
      columns: this.columns.map((c) => ({ model: c.entry.name, cell: c.entry.config.cell,
        ...(c.trace ? c.view.snapshot() : { skipped: c.why.textContent }) })),
      ...(this.extra && this.extra.snapshot ? { extra: this.extra.snapshot() } : {}),
    };
  }
}
