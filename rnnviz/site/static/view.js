// A step view: one trace and a timestep slider through its lines. The canvas, the gate and state
// grids, the units x timesteps panels (cursor, hover) and the per-line NLL bars stay in sync. Data in,
// DOM out: the view knows nothing about where the trace came from (the app's server, rnnviz/wire.py,
// or the page's own sampler, model.js). Everything colour-mapped is computed once per trace (and
// layer and unit order); a step copies small precomputed grids into canvases and moves the cursors,
// so scrubbing, Play and hover cost no request and about one frame.
//
// Both hosts use this file: the static page (page.js) and the Gradio app (gradio.js).

import { cssGradient, description, drawBars, fmt, gateStats, gridFrames, heatmap, isGate, lineRect, paintCanvas,
  scaleLabels, scaleOf, stateScale, unitGridShape } from './draw.js';
import { rules } from './rules.js';

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
const KIND = (name) => (isGate(name) ? 'gates' : name === 'c' ? 'c' : 'tanh');
const ORDER_CHOICES = [['behaviour', 'by behaviour'], ['index', 'index order']];

/** Slider, step box, Play/Pause and keys for anything that shows one step of ``steps``: calls
 *  ``show(t)``. Shared by a single view and a linked group (one player for every column). */
export class Player {
  constructor(prefix, label, show, { onNote = () => {} } = {}) {
    this.show = show; this.onNote = onNote; this.steps = 1; this.step = 0; this.timer = null;
    this.slider = el('input', { type: 'range', id: `${prefix}_step`, min: 0, max: 0, step: 1, value: 0, 'aria-label': label });
    this.box = el('input', { type: 'number', id: `${prefix}_step_box`, min: 0, max: 0, step: 1, value: 0, class: 'rv-stepbox',
      'aria-label': 'timestep' });
    this.play = el('button', { id: `${prefix}_play`, type: 'button', text: 'Play' });
    this.pause = el('button', { id: `${prefix}_pause`, type: 'button', text: 'Pause' });
    this.note = el('span', { class: 'rv-stepnote', id: `${prefix}_step_note`, role: 'status' });
    this.root = el('div', { class: 'rv-player' },
      el('label', { class: 'rv-field' }, el('span', {}, label, ' ', this.box), this.slider),
      el('div', { class: 'rv-buttons' }, this.play, this.pause, this.note));
    this.slider.addEventListener('input', () => { this.stop(); this.go(Number(this.slider.value)); });
    this.box.addEventListener('change', () => { this.stop(); this.typed(this.box.value); });
    this.play.addEventListener('click', () => this.start());
    this.pause.addEventListener('click', () => this.stop());
  }

  setSteps(n) {
    this.steps = Math.max(1, n);
    this.slider.max = this.box.max = String(this.steps - 1);
  }

  /** A step typed into the box: out of range (or not a number) goes to the nearest valid step, with a note. */
  typed(text) {
    const x = Number(text), last = this.steps - 1;
    const t = Number.isFinite(x) ? Math.max(0, Math.min(last, Math.round(x))) : this.step;
    this.note.textContent = String(t) === String(text).trim() ? '' : `step ${String(text).slice(0, 12)} is not in 0..${last}: showing ${t}`;
    this.go(t);
  }

  /** Show step ``t`` (clamped) everywhere. */
  go(t) {
    const step = Math.max(0, Math.min(this.steps - 1, Math.round(Number(t) || 0)));
    this.step = step;
    this.slider.value = this.box.value = String(step);
    this.show(step);
  }

  start() {
    this.stop();
    if (this.step >= this.steps - 1) this.go(0);
    this.timer = setInterval(() => {
      if (this.step >= this.steps - 1) { this.stop(); return; }
      this.go(this.step + 1);
    }, rules().playMs);
  }

  stop() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  get playing() { return this.timer !== null; }

  /** Left/right, Home/End and Space (Play/Pause) on ``target``. */
  keys(target) {
    target.addEventListener('keydown', (ev) => {
      if (ev.defaultPrevented) return;  // a listener nearer the key's target moved already
      if (ev.target !== target && ev.target !== this.slider) return;  // the box and buttons keep their keys
      const moves = { ArrowLeft: this.step - 1, ArrowDown: this.step - 1, ArrowRight: this.step + 1, ArrowUp: this.step + 1,
        Home: 0, End: this.steps - 1 };
      if (ev.key in moves) { this.stop(); this.go(moves[ev.key]); ev.preventDefault(); }
      else if (ev.key === ' ') { if (this.playing) this.stop(); else this.start(); ev.preventDefault(); }
    });
  }
}

export class StepView {
  /** ``prefix``: element ids start with it (gen, comp); ``slots``: containers for the canvas column,
   *  the gates column and the figure. Options: ``button`` (what to press before there is a trace),
   *  ``onStep(t)`` after every step change, ``onUnit(unit, layer)`` when a unit is clicked, a
   *  ``tooltip`` element, ``names(cell)`` (the states to show, null: all), ``controls: false`` (a
   *  group's player drives it), ``panels: false`` (the line NLL bars only, no units x steps panels). */
  constructor(prefix, slots, { button = 'Generate', onStep = () => {}, onUnit = null, tooltip = null, names = () => null,
    controls = true, panels = true } = {}) {
    this.p = prefix; this.onStep = onStep; this.onUnit = onUnit; this.tooltip = tooltip; this.names = names;
    this.showPanels = panels;
    this.trace = null; this.step = 0; this.layer = 0; this.unitMode = 'behaviour'; this.barsTop = null;
    // canvas column
    this.canvas = el('canvas', { class: 'rv-px', id: `${prefix}_canvas_px`, width: 28, height: 28, 'aria-label': 'canvas' });
    this.rowmark = el('div', { class: 'rv-rowmark' });
    this.info = el('div', { class: 'rv-stepinfo', id: `${prefix}_stepinfo`, text: `Press ${button}.` });
    this.final = el('canvas', { class: 'rv-px', width: 28, height: 28, 'aria-label': 'finished image' });
    this.legend = el('div', { class: 'rv-legend' });
    this.extraSide = el('div', { class: 'rv-side-extra' });
    this.player = controls ? new Player(prefix, 'timestep t = the line being drawn', (t) => this.setStep(t)) : null;
    this.root = el('div', { class: 'rv-canvas-wrap', id: `${prefix}_canvas`, tabindex: '0' },
      el('div', { class: 'rv-canvas-col' }, el('div', { class: 'rv-canvas' }, this.canvas, this.rowmark), this.info),
      el('div', { class: 'rv-side' }, el('div', { class: 'rv-final' }, this.final, el('span', { text: 'finished' })), this.legend,
        this.extraSide));
    slots.canvas.append(this.root, ...(this.player ? [this.player.root] : []));
    if (this.player) { this.player.keys(this.root); this.player.keys(this.player.slider); }
    // gates column
    this.layerSel = el('select', { id: `${prefix}_layer` });
    this.layerBox = el('label', { class: 'rv-field', hidden: '' }, 'layer', this.layerSel);
    this.orderSel = el('select', { id: `${prefix}_order` }, ...ORDER_CHOICES.map(([v, t]) => el('option', { value: v, text: t })));
    this.orderBox = el('label', { class: 'rv-field', hidden: '' }, 'units in', this.orderSel);
    this.gatesHead = el('div', { class: 'rv-gates-head', text: 'The gates and states of the recurrent layer appear here.' });
    this.gates = el('div', { class: 'rv-gates' });
    this.gatesWrap = el('div', { class: 'rv-gates-wrap', id: `${prefix}_gates` }, this.gatesHead, this.gates);
    slots.gates.append(el('div', { class: 'rv-gates-controls' }, this.layerBox, this.orderBox), this.gatesWrap);
    // figure: the line NLL bars over one panel per gate/state
    this.bars = el('canvas', { class: 'rv-bars', width: 560, height: 100 });
    this.band = el('div', { class: 'rv-band' });
    this.barsMax = el('span', { class: 'rv-axis-top' });
    this.panels = el('div', { class: 'rv-panels' });
    this.scales = el('div', { class: 'rv-scales' });
    const barsWrap = el('div', { class: 'rv-bars-wrap' }, el('span', { class: 'rv-axis-label', text: 'line NLL' }), this.barsMax,
      el('div', { class: 'rv-bars-box' }, this.bars, this.band));
    slots.figure.append(panels
      ? el('figure', { class: 'rv-fig', id: `${prefix}_fig` },
        el('figcaption', { text: 'every unit at every step (hover for unit, step and value; click a unit to inspect it)' }),
        barsWrap, this.scales, this.panels)
      : el('figure', { class: 'rv-fig', id: `${prefix}_fig` }, barsWrap));
    this.ctx = this.canvas.getContext('2d');
    this.img = this.ctx.createImageData(28, 28);
    this.layerSel.addEventListener('change', () => this.setLayer(Number(this.layerSel.value)));
    this.orderSel.addEventListener('change', () => { this.unitMode = this.orderSel.value; this.setLayer(this.layer); });
    this._hover(this.bars, (fx) => {
      if (!this.trace) return null;
      const n = this.trace.rowNll.length, t = Math.min(n - 1, Math.floor(fx * n));
      return `line ${t}\nNLL ${this.trace.rowNll[t].toFixed(2)} nats`;
    });
  }

  get steps() { return this.trace ? this.trace.rowNll.length : 1; }

  /** Show ``trace`` (made by ``modelName``) at ``step`` (null: the last, the whole image drawn), top
   *  layer unless ``layer``. ``unitOrder``:
   *  per layer a permutation of the units (by behaviour) or null; ``barsTop``: the NLL axis's top
   *  (a group passes one for every column); ``note``: why the units are in index order. */
  load(trace, modelName, step = null, { layer = null, unitOrder = null, barsTop = null, note = '' } = {}) {
    this.stop();
    this.trace = trace; this.modelName = modelName; this.unitOrder = unitOrder; this.orderNote = note;
    const H = trace.height, W = trace.width, L = trace.layers.length;
    if (this.canvas.width !== W || this.canvas.height !== H) {
      this.canvas.width = this.final.width = W; this.canvas.height = this.final.height = H;
      this.img = this.ctx.createImageData(W, H);
    }
    const fimg = this.final.getContext('2d').createImageData(W, H);
    this.final.getContext('2d').putImageData(paintCanvas(fimg, trace, this.steps), 0, 0);
    const c = rules().canvas;
    this.legend.replaceChildren(el('span', { class: 'rv-sw', style: `background:${rgb(c.ink)}` }), 'drawn');
    if (trace.keepRows) this.legend.append(el('br'), el('span', { class: 'rv-sw', style: `background:${rgb(c.keptInk)}` }), 'kept');
    this.legendRow = el('span');
    this.legend.append(el('br'), el('span', { class: 'rv-sw', style: `background:${cssGradient(scaleOf('prob'))}` }), this.legendRow);
    if (this.player) this.player.setSteps(this.steps);
    this.layerSel.replaceChildren(...trace.layers.map((_, k) => el('option', { value: k, text: `layer ${k + 1}${k === L - 1 ? ' (top)' : ''}` })));
    this.layerBox.hidden = L < 2;
    this.orderBox.hidden = !unitOrder;
    this.orderSel.value = this.unitMode;
    this.nll = trace.rowNll.reduce((a, b) => a + b, 0);
    this.setBarsTop(barsTop);
    this.setLayer(layer === null ? L - 1 : Math.max(0, Math.min(L - 1, layer)), false);
    this.setStep(step === null || step === undefined ? this.steps - 1 : step);
  }

  /** The NLL bars' axis top: ``top`` (shared by a group), or this trace's largest line NLL. */
  setBarsTop(top = null) {
    const tr = this.trace;
    if (!tr) return;
    let m = 0;
    for (const v of tr.rowNll) m = Math.max(m, v);
    this.barsTop = top === null ? m : top;
    this.barsMax.textContent = fmt(this.barsTop, 0);
    drawBars(this.bars.getContext('2d'), tr.rowNll, tr.keepRows, this.bars.width, this.bars.height, this.barsTop);
  }

  /** The permutation the grids and panels show the units in (null: index order). */
  get perm() {
    if (this.unitMode !== 'behaviour' || !this.unitOrder) return null;
    return this.unitOrder[this.layer] || null;
  }

  /** Colour-map every gate/state of layer ``k`` once: grids for every step, the panels. */
  setLayer(k, redraw = true) {
    const tr = this.trace;
    if (!tr) return;
    this.layer = k; this.layerSel.value = String(k);
    const states = tr.layers[k], H = this.steps, n = tr.hidden, perm = this.perm;
    const [rows, cols] = unitGridShape(n);
    const L = tr.layers.length, which = L > 1 ? `layer ${k + 1} of ${L}, ` : '';
    const how = perm ? 'by behaviour: units that peak at early lines top left, alike units side by side'
      : `unit 0 top left, row by row${this.orderNote ? ` (${this.orderNote})` : ''}`;
    this.gatesHeadText = (t) => `${tr.cell.toUpperCase()} ${which}step ${t}: ${n} units as a ${rows}\u00d7${cols} grid (${how})`;
    this.cards = [];
    const panels = [], kinds = new Map();
    const wanted = this.names(tr.cell), shown = wanted ? tr.names.filter((s) => wanted.includes(s)) : tr.names;
    for (const name of shown) {
      const series = perm ? permuted(states[name], H, n, perm) : states[name], scale = stateScale(name, states[name]);
      const grid = gridFrames(series, H, n, scale);
      const c = el('canvas', { class: 'rv-px', width: cols, height: rows, 'data-name': name });
      const stats = el('div', { class: 'rv-stats' });
      const [lo, mid, hi] = scaleLabels(scale);
      const desc = description(name);
      const card = el('figure', { class: 'rv-gate', title: desc },
        el('figcaption', {}, bold(name), ' ', el('span', { text: desc.split(':')[0] })), c,
        el('div', { class: 'rv-cbar', style: `background:${cssGradient(scale)}` }),
        el('div', { class: 'rv-cbar-labels' }, el('span', { text: lo }), el('span', { text: mid }), el('span', { text: hi })),
        stats);
      const unitAt = (fx, fy) => {
        const q = Math.min(rows - 1, Math.floor(fy * rows)) * cols + Math.min(cols - 1, Math.floor(fx * cols));
        return q < n ? (perm ? perm[q] : q) : null;
      };
      this._hover(c, (fx, fy) => {
        const u = unitAt(fx, fy);
        return u === null ? null : `unit ${u}\n${name} = ${states[name][this.step * n + u].toFixed(3)}`;
      });
      this._click(c, (fx, fy) => unitAt(fx, fy));
      const ctx = c.getContext('2d');
      this.cards.push({ name, series, grid, ctx, img: ctx.createImageData(cols, rows), stats, card });
      if (!this.showPanels) continue;
      // panel: units (rows, in the shown order) x steps (columns)
      const pc = el('canvas', { class: 'rv-px', width: H, height: n });
      pc.getContext('2d').putImageData(heatmap(series, H, n, scale), 0, 0);
      const cursor = el('div', { class: 'rv-cursor' });
      const panel = el('div', { class: 'rv-panel-fig', 'data-name': name },
        el('div', { class: 'rv-panel-title' }, bold(name), ' ', el('span', { text: desc.split(':')[0] })),
        el('div', { class: 'rv-panel-box' }, pc, cursor),
        el('div', { class: 'rv-panel-axis' }, el('span', { text: '0' }), el('span', { text: 'step' }), el('span', { text: String(H - 1) })));
      const rowUnit = (fy) => { const r = Math.min(n - 1, Math.floor(fy * n)); return perm ? perm[r] : r; };
      this._hover(pc, (fx, fy) => {
        const t = Math.min(H - 1, Math.floor(fx * H)), u = rowUnit(fy);
        return `unit ${u}\nstep ${t}\n${name} = ${states[name][t * n + u].toFixed(3)}`;
      });
      this._click(pc, (fx, fy) => rowUnit(fy));
      panels.push({ panel, cursor });
      const kind = KIND(name);
      if (!kinds.has(kind)) kinds.set(kind, scale);
    }
    this.gates.replaceChildren(...this.cards.map((q) => q.card));
    this.panelList = panels;
    this.panels.replaceChildren(...panels.map((q) => q.panel));
    this.scales.replaceChildren(...[...kinds].map(([kind, scale]) => {
      const [lo, , hi] = scaleLabels(scale);
      return el('div', { class: 'rv-scale' }, el('span', { class: 'rv-scale-name', text: kind }),
        el('span', { text: lo }), el('span', { class: 'rv-cbar rv-cbar-inline', style: `background:${cssGradient(scale)}` }),
        el('span', { text: hi }));
    }));
    if (redraw) this.setStep(this.step);
  }

  /** Draw step ``t`` everywhere (clamped to the trace). */
  setStep(t) {
    const tr = this.trace;
    if (!tr) return;
    const H = this.steps, step = Math.max(0, Math.min(H - 1, Math.round(Number(t) || 0)));
    this.step = step;
    if (this.player && this.player.step !== step) { this.player.step = step; this.player.slider.value = this.player.box.value = String(step); }
    this.ctx.putImageData(paintCanvas(this.img, tr, step), 0, 0);
    const r = lineRect(tr.order, step, tr.height, tr.width);
    Object.assign(this.rowmark.style, { left: `${r.left}%`, top: `${r.top}%`, width: `${r.width}%`, height: `${r.height}%` });
    const kept = step < tr.keepRows ? ' (kept)' : '';
    const line = !tr.order || tr.order === 'rows' ? 'row' : 'line';
    let sofar = 0;
    for (let q = 0; q <= step; q++) sofar += tr.rowNll[q];
    this.info.replaceChildren(bold(`step ${step}`), `/${H - 1}: ${line} ${step}${kept} cost `, bold(fmt(tr.rowNll[step])),
      ` nats; ${fmt(sofar, 1)} of ${fmt(this.nll, 1)} so far`);
    this.legendRow.textContent = `p(on), ${line} ${step}`;
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

  start() { if (this.player && this.trace) this.player.start(); }

  stop() { if (this.player) this.player.stop(); }

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

  /** A click on ``target`` names a unit (``unit(fx, fy)``): the host's onUnit opens it. */
  _click(target, unit) {
    if (!this.onUnit) return;
    target.classList.add('rv-clickable');
    target.addEventListener('click', (ev) => {
      const r = target.getBoundingClientRect(), u = unit((ev.clientX - r.left) / r.width, (ev.clientY - r.top) / r.height);
      if (u !== null && u !== undefined) this.onUnit(u, this.layer);
    });
  }

  /** What the view shows, for tests (window.rnnviz.state()). */
  snapshot() {
    const tr = this.trace;
    if (!tr) return null;
    const H = tr.height, W = tr.width, n = tr.hidden, S = this.steps;
    const rows = (a, w, h) => Array.from({ length: h }, (_, t) => Array.from(a.subarray(t * w, (t + 1) * w)));
    return {
      step: this.step, layer: this.layer, label: tr.label, keepRows: tr.keepRows, order: tr.order || 'rows',
      image: rows(tr.image, W, H), rowNll: Array.from(tr.rowNll), nll: this.nll, barsTop: this.barsTop,
      unitMode: this.perm ? 'behaviour' : 'index', playing: !!(this.player && this.player.playing),
      layers: tr.layers.map((l) => Object.fromEntries(Object.entries(l).map(([k, v]) => [k, rows(v, n, S)]))),
    };
  }
}

/** ``series`` (steps x units) with its units in the order ``perm`` (a new array). */
function permuted(series, steps, units, perm) {
  const out = new Float32Array(series.length);
  for (let t = 0; t < steps; t++) for (let q = 0; q < units; q++) out[t * units + q] = series[t * units + perm[q]];
  return out;
}
