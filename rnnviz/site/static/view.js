// A step view: one trace and a timestep slider through its rows. The canvas, the gate and state
// grids, the units x timesteps panels (cursor, hover) and the per-row NLL bars stay in sync, as on
// the app's Generate tab. Everything colour-mapped is computed once per trace (and layer); a scrub
// step copies small precomputed grids into canvases and moves the cursors.

import { DESCRIPTIONS, INK, KEPT_INK, PROB_SCALE, cssGradient, drawBars, fmt, gateStats, gridFrames,
  heatmap, paintCanvas, scaleLabels, stateScale, unitGridShape } from './draw.js';

/** A DOM element with ``props`` (class, text, style or attributes; text is never parsed as markup)
 *  and ``kids``. */
export const el = (tag, props = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k === 'style') e.style.cssText = v;
    else e.setAttribute(k, v);
  }
  for (const kid of kids) e.append(kid);
  return e;
};
export const bold = (text) => el('b', { text });
const rgb = (c) => `rgb(${c.join(',')})`;

export class StepView {
  /** ``prefix``: element ids start with it (gen, comp); ``slots``: containers for the canvas
   *  column, the gates column and the figure; ``onStep(t)``: called after every step change.
   *  A compact column of Compare cells passes ``names(cell)`` (the states to show, null: all),
   *  ``controls: false`` (a shared slider drives it) and ``panels: false`` (the row NLL bars only). */
  constructor(prefix, slots, { button = 'Generate', onStep = () => {}, tooltip, names = () => null, controls = true,
    panels = true } = {}) {
    this.p = prefix; this.onStep = onStep; this.tooltip = tooltip; this.names = names; this.showPanels = panels;
    this.trace = null; this.step = 0; this.layer = 0; this.timer = null;
    // canvas column
    this.canvas = el('canvas', { class: 'rv-px', id: `${prefix}_canvas_px`, width: 28, height: 28, 'aria-label': 'canvas' });
    this.rowmark = el('div', { class: 'rv-rowmark' });
    this.info = el('div', { class: 'rv-stepinfo', id: `${prefix}_stepinfo`, text: `Press ${button}.` });
    this.final = el('canvas', { class: 'rv-px', width: 28, height: 28, 'aria-label': 'finished image' });
    this.legend = el('div', { class: 'rv-legend' });
    this.slider = el('input', { type: 'range', id: `${prefix}_step`, min: 0, max: 27, step: 1, value: 0 });
    this.play = el('button', { id: `${prefix}_play`, text: 'Play' });
    this.pause = el('button', { id: `${prefix}_pause`, text: 'Pause' });
    slots.canvas.append(
      el('div', { class: 'rv-canvas-wrap', id: `${prefix}_canvas` },
        el('div', { class: 'rv-canvas-col' }, el('div', { class: 'rv-canvas' }, this.canvas, this.rowmark), this.info),
        el('div', { class: 'rv-side' }, el('div', { class: 'rv-final' }, this.final, el('span', { text: 'finished' })), this.legend)),
      ...(controls ? [el('label', { class: 'rv-field' }, 'timestep t = the row being drawn', this.slider),
        el('div', { class: 'rv-buttons' }, this.play, this.pause)] : []));
    // gates column
    this.layerSel = el('select', { id: `${prefix}_layer` });
    this.layerBox = el('label', { class: 'rv-field', hidden: '' }, 'layer', this.layerSel);
    this.gatesHead = el('div', { class: 'rv-gates-head', text: 'The gates and states of the recurrent layer appear here.' });
    this.gates = el('div', { class: 'rv-gates' });
    slots.gates.append(this.layerBox, el('div', { class: 'rv-gates-wrap', id: `${prefix}_gates` }, this.gatesHead, this.gates));
    // figure: the row NLL bars over one panel per gate/state
    this.bars = el('canvas', { class: 'rv-bars', width: 560, height: 100 });
    this.band = el('div', { class: 'rv-band' });
    this.barsMax = el('span', { class: 'rv-axis-top' });
    this.panels = el('div', { class: 'rv-panels' });
    this.scales = el('div', { class: 'rv-scales' });
    const barsWrap = el('div', { class: 'rv-bars-wrap' }, el('span', { class: 'rv-axis-label', text: 'row NLL' }), this.barsMax,
      el('div', { class: 'rv-bars-box' }, this.bars, this.band));
    slots.figure.append(panels
      ? el('figure', { class: 'rv-fig', id: `${prefix}_fig` },
        el('figcaption', { text: 'every unit at every step (hover for unit, step and value)' }), barsWrap, this.scales, this.panels)
      : el('figure', { class: 'rv-fig', id: `${prefix}_fig` }, barsWrap));
    this.ctx = this.canvas.getContext('2d');
    this.img = this.ctx.createImageData(28, 28);
    this.slider.addEventListener('input', () => { this.stop(); this.setStep(Number(this.slider.value)); });
    this.play.addEventListener('click', () => this.start());
    this.pause.addEventListener('click', () => this.stop());
    this.layerSel.addEventListener('change', () => this.setLayer(Number(this.layerSel.value)));
    this._hover(this.bars, (fx) => {
      if (!this.trace) return null;
      const t = Math.min(this.trace.height - 1, Math.floor(fx * this.trace.height));
      return `row ${t}\nNLL ${this.trace.rowNll[t].toFixed(2)} nats`;
    });
  }

  /** Show ``trace`` (made by ``modelName``) from step ``step``, top layer unless ``layer``. */
  load(trace, modelName, step = 0, layer = null) {
    this.stop();
    this.trace = trace; this.modelName = modelName;
    const H = trace.height, W = trace.width, L = trace.layers.length;
    if (this.canvas.width !== W || this.canvas.height !== H) {
      this.canvas.width = this.final.width = W; this.canvas.height = this.final.height = H;
      this.img = this.ctx.createImageData(W, H);
    }
    const fimg = this.final.getContext('2d').createImageData(W, H);
    this.final.getContext('2d').putImageData(paintCanvas(fimg, trace, H), 0, 0);
    this.legend.replaceChildren(el('span', { class: 'rv-sw', style: `background:${rgb(INK)}` }), 'drawn');
    if (trace.keepRows) this.legend.append(el('br'), el('span', { class: 'rv-sw', style: `background:${rgb(KEPT_INK)}` }), 'kept');
    this.legendRow = el('span');
    this.legend.append(el('br'), el('span', { class: 'rv-sw', style: `background:${cssGradient(PROB_SCALE)}` }), this.legendRow);
    this.slider.max = H - 1;
    this.layerSel.replaceChildren(...trace.layers.map((_, k) => el('option', { value: k, text: `layer ${k + 1}${k === L - 1 ? ' (top)' : ''}` })));
    this.layerBox.hidden = L < 2;
    this.nll = trace.rowNll.reduce((a, b) => a + b, 0);
    let top = 0;
    for (const v of trace.rowNll) top = Math.max(top, v);
    this.barsTop = top;
    this.barsMax.textContent = fmt(top, 0);
    drawBars(this.bars.getContext('2d'), trace.rowNll, trace.keepRows, this.bars.width, this.bars.height, top);
    this.setLayer(layer === null ? L - 1 : Math.max(0, Math.min(L - 1, layer)), false);
    this.setStep(step);
  }

  /** Colour-map every gate/state of layer ``k`` once: grids for every step, the panels. */
  setLayer(k, redraw = true) {
    const tr = this.trace;
    if (!tr) return;
    this.layer = k; this.layerSel.value = String(k);
    const states = tr.layers[k], H = tr.height, n = tr.hidden;
    const [rows, cols] = unitGridShape(n);
    const L = tr.layers.length, which = L > 1 ? `layer ${k + 1} of ${L}, ` : '';
    this.gatesHeadText = (t) => `${tr.cell.toUpperCase()} ${which}step ${t}: ${n} units as a ${rows}\u00d7${cols} grid (unit 0 top left, row by row)`;
    this.cards = [];
    const panels = [], kinds = new Map();
    const wanted = this.names(tr.cell), shown = wanted ? tr.names.filter((s) => wanted.includes(s)) : tr.names;
    for (const name of shown) {
      const series = states[name], scale = stateScale(name, series);
      const grid = gridFrames(series, H, n, scale);
      const c = el('canvas', { class: 'rv-px', width: cols, height: rows, 'data-name': name });
      const stats = el('div', { class: 'rv-stats' });
      const [lo, mid, hi] = scaleLabels(scale);
      const desc = DESCRIPTIONS[name] || name;
      const card = el('figure', { class: 'rv-gate', title: desc },
        el('figcaption', {}, bold(name), ' ', el('span', { text: desc.split(':')[0] })), c,
        el('div', { class: 'rv-cbar', style: `background:${cssGradient(scale)}` }),
        el('div', { class: 'rv-cbar-labels' }, el('span', { text: lo }), el('span', { text: mid }), el('span', { text: hi })),
        stats);
      const ctx = c.getContext('2d');
      this.cards.push({ name, series, grid, ctx, img: ctx.createImageData(cols, rows), stats, card });
      if (!this.showPanels) continue;
      // panel: units (rows) x steps (columns)
      const pc = el('canvas', { class: 'rv-px', width: H, height: n });
      pc.getContext('2d').putImageData(heatmap(series, H, n, scale), 0, 0);
      const cursor = el('div', { class: 'rv-cursor' });
      const panel = el('div', { class: 'rv-panel-fig', 'data-name': name },
        el('div', { class: 'rv-panel-title' }, bold(name), ' ', el('span', { text: desc.split(':')[0] })),
        el('div', { class: 'rv-panel-box' }, pc, cursor),
        el('div', { class: 'rv-panel-axis' }, el('span', { text: '0' }), el('span', { text: 'step' }), el('span', { text: String(H - 1) })));
      this._hover(pc, (fx, fy) => {
        const t = Math.min(H - 1, Math.floor(fx * H)), u = Math.min(n - 1, Math.floor(fy * n));
        return `unit ${u}\nstep ${t}\n${name} = ${series[t * n + u].toFixed(3)}`;
      });
      panels.push({ panel, cursor });
      const kind = SIGMOID_KIND(name);
      if (!kinds.has(kind)) kinds.set(kind, scale);
    }
    this.gates.replaceChildren(...this.cards.map((c) => c.card));
    this.panelList = panels;
    this.panels.replaceChildren(...panels.map((q) => q.panel));
    this.scales.replaceChildren(...[...kinds].map(([kind, scale]) => {
      const [lo, mid, hi] = scaleLabels(scale);
      return el('div', { class: 'rv-scale' }, el('span', { class: 'rv-scale-name', text: kind }),
        el('span', { text: lo }), el('span', { class: 'rv-cbar rv-cbar-inline', style: `background:${cssGradient(scale)}` }),
        el('span', { text: hi }));
    }));
    if (redraw) this.setStep(this.step);
  }

  /** Draw step ``t`` everywhere. */
  setStep(t) {
    const tr = this.trace;
    if (!tr) return;
    const H = tr.height, step = Math.max(0, Math.min(H - 1, Math.round(Number(t) || 0)));
    this.step = step;
    this.slider.value = String(step);
    this.ctx.putImageData(paintCanvas(this.img, tr, step), 0, 0);
    this.rowmark.style.top = `${(100 * step) / H}%`;
    this.rowmark.style.height = `${100 / H}%`;
    const kept = step < tr.keepRows ? ' (kept)' : '';
    let sofar = 0;
    for (let q = 0; q <= step; q++) sofar += tr.rowNll[q];
    this.info.replaceChildren(bold(`step ${step}`), `/${H - 1}: row ${step}${kept} cost `, bold(fmt(tr.rowNll[step])),
      ` nats; ${fmt(sofar, 1)} of ${fmt(this.nll, 1)} so far`);
    this.legendRow.textContent = `p(on), row ${step}`;
    this.gatesHead.textContent = this.gatesHeadText(step);
    const n = tr.hidden;
    for (const c of this.cards) {
      const size = c.grid.rows * c.grid.cols * 4;
      c.img.data.set(c.grid.frames.subarray(step * size, (step + 1) * size));
      c.ctx.putImageData(c.img, 0, 0);
      c.stats.textContent = gateStats(c.name, c.series, step, n);
    }
    const left = `${(100 * (step + 0.5)) / H}%`;
    for (const q of this.panelList) q.cursor.style.left = left;
    this.band.style.left = `${(100 * step) / H}%`;
    this.band.style.width = `${100 / H}%`;
    this.onStep(step);
  }

  start() {
    if (!this.trace) return;
    this.stop();
    if (this.step >= this.trace.height - 1) this.setStep(0);
    this.timer = setInterval(() => {
      if (this.step >= this.trace.height - 1) { this.stop(); return; }
      this.setStep(this.step + 1);
    }, 250);
  }

  stop() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** Show ``text(fx, fy)`` (fractions of the element's box) in the tooltip while hovering. */
  _hover(target, text) {
    const tip = this.tooltip;
    if (!tip) return;
    target.addEventListener('mousemove', (ev) => {
      const r = target.getBoundingClientRect();
      const s = text((ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height);
      if (s === null) return;
      tip.textContent = s;
      tip.hidden = false;
      tip.style.left = `${ev.pageX + 12}px`;
      tip.style.top = `${ev.pageY + 12}px`;
    });
    target.addEventListener('mouseleave', () => { tip.hidden = true; });
  }

  /** What the view shows, for tests (window.rnnviz.state()). */
  snapshot() {
    const tr = this.trace;
    if (!tr) return null;
    const H = tr.height, W = tr.width, n = tr.hidden;
    const rows = (a, w) => Array.from({ length: H }, (_, t) => Array.from(a.subarray(t * w, (t + 1) * w)));
    return {
      step: this.step, layer: this.layer, label: tr.label, keepRows: tr.keepRows, image: rows(tr.image, W),
      rowNll: Array.from(tr.rowNll), nll: this.nll,
      layers: tr.layers.map((l) => Object.fromEntries(Object.entries(l).map(([k, v]) => [k, rows(v, n)]))),
    };
  }
}

const SIGMOID_KIND = (name) => ('ifozr'.includes(name) ? 'gates' : name === 'c' ? 'c' : 'tanh');
