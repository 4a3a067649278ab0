// Compare cells: one trace per model (the same digit, seed and temperature), side by side, and ONE
// step slider that moves every column, as the app's Compare cells tab. Each column is a compact
// StepView (canvas, the cell's memory and hidden state grids, its row NLL bars); this file only
// lays them out and keeps them on one step. page.js samples the traces (model.js does the math).

import { fmt } from './draw.js';
import { StepView, bold, el } from './view.js';

// as the app's cards.py: a colour per cell, and the states a compact column shows (memory + h)
export const CELL_COLORS = { lstm: '#f97316', gru: '#38bdf8', rnn: '#a3e635' };
export const COLUMN_STATES = { lstm: ['f', 'c', 'h'], gru: ['z', 'h'], rnn: ['h'] };

/** A column's title (text only, never markup from the manifest): the model, its cell and size, its
 *  test NLL (the protocol on hover) and this sample's NLL. */
function title(entry, trace) {
  const c = entry.config, m = entry.metrics || {};
  const how = m.test_nll_protocol || 'how it was measured is not recorded';
  const given = trace && trace.label !== null ? ' | digit' : '';
  return el('div', { class: 'rv-col-title' },
    el('div', { class: 'rv-line' }, el('span', { class: 'rv-dot', style: `background:${CELL_COLORS[c.cell] || '#9aa5b1'}` }),
      bold(entry.name), ` \u00b7 ${c.cell.toUpperCase()} ${c.layers}\u00d7${c.hidden}`),
    el('div', { title: how }, ...(m.test_nll === undefined ? ['test NLL not recorded'] : ['test NLL ', bold(fmt(m.test_nll)), ' nats'])),
    el('div', { class: 'rv-cmp-nll' }, ...(trace
      ? ['this sample: ', bold(fmt(trace.rowNll.reduce((a, b) => a + b, 0), 1)), ` nats (\u2212log p(image${given}))`]
      : [])));
}

export class CompareView {
  /** Builds the shared slider (``#cmp_step``), Play/Pause and the columns box inside ``root``.
   *  ``onStep(t)``: called after every step change. */
  constructor(root, { tooltip, onStep = () => {} } = {}) {
    this.tooltip = tooltip; this.onStep = onStep;
    this.columns = []; this.step = 0; this.timer = null; this.names = '';
    this.slider = el('input', { type: 'range', id: 'cmp_step', min: 0, max: 27, step: 1, value: 0 });
    this.stepOut = el('output', { id: 'cmp_step_value', text: '0' });
    this.play = el('button', { id: 'cmp_play', text: 'Play' });
    this.pause = el('button', { id: 'cmp_pause', text: 'Pause' });
    this.box = el('div', { class: 'rv-cmp-cols', id: 'cmp_columns' });
    root.append(
      el('div', { class: 'rv-cmp-slider' },
        el('label', { class: 'rv-field' }, el('span', {}, 'timestep t = the row being drawn, in every column: ', this.stepOut), this.slider),
        el('div', { class: 'rv-buttons' }, this.play, this.pause)),
      this.box);
    this.slider.addEventListener('input', () => { this.stop(); this.setStep(Number(this.slider.value)); });
    this.play.addEventListener('click', () => this.start());
    this.pause.addEventListener('click', () => this.stop());
  }

  /** Show ``columns`` ([{entry, trace} or {entry, skipped: why}], in the manifest's order) at
   *  ``step``. Columns are rebuilt only when the models change; a new sample reuses them. */
  load(columns, step = 0) {
    this.stop();
    const names = columns.map((c) => `${c.entry.name}:${c.trace ? 1 : 0}`).join();
    if (names !== this.names) this._build(columns);
    this.names = names;
    columns.forEach((c, k) => {
      const col = this.columns[k];
      col.trace = c.trace || null;
      col.head.replaceChildren(title(c.entry, c.trace));
      if (c.trace) col.view.load(c.trace, c.entry.name, 0);
      else col.why.textContent = c.skipped;
    });
    const H = Math.max(1, ...columns.filter((c) => c.trace).map((c) => c.trace.height));
    this.slider.max = String(H - 1);
    this.setStep(step);
  }

  _build(columns) {
    this.columns = columns.map((c, k) => {
      const head = el('div'), canvas = el('div'), gates = el('div'), figure = el('div'), why = el('p', { class: 'rv-hint' });
      const col = el('section', { class: 'rv-cmp-col', 'data-model': c.entry.name }, head);
      let view = null;
      if (c.trace) {
        view = new StepView(`cmp${k}`, { canvas, gates, figure }, { button: 'Compare', tooltip: this.tooltip,
          names: (cell) => COLUMN_STATES[cell] || null, controls: false, panels: false });
        col.append(canvas, gates, figure);
      } else col.append(why);
      return { entry: c.entry, head, view, why, trace: null };
    });
    this.box.replaceChildren(...this.columns.map((c) => c.head.parentNode));
  }

  /** Every column to step ``t`` (clamped to its trace). */
  setStep(t) {
    const max = Number(this.slider.max);
    this.step = Math.max(0, Math.min(max, Math.round(Number(t) || 0)));
    this.slider.value = String(this.step);
    this.stepOut.textContent = String(this.step);
    for (const c of this.columns) if (c.view && c.trace) c.view.setStep(this.step);
    this.onStep(this.step);
  }

  start() {
    this.stop();
    const last = Number(this.slider.max);
    if (this.step >= last) this.setStep(0);
    this.timer = setInterval(() => {
      if (this.step >= last) { this.stop(); return; }
      this.setStep(this.step + 1);
    }, 250);
  }

  stop() {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  /** What the view shows, for tests (window.rnnviz.state('compare')): the shared step and per
   *  column the model, its cell and its StepView's snapshot (or why it was skipped). */
  snapshot() {
    if (!this.columns.length) return null;
    return {
      step: this.step,
      columns: this.columns.map((c) => ({ model: c.entry.name, cell: c.entry.config.cell,
        ...(c.trace ? c.view.snapshot() : { skipped: c.why.textContent }) })),
    };
  }
}
