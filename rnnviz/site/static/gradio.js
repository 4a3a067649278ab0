// The Gradio app's host of the shared step views (rnnviz/app/stepview.py): each view is a gr.HTML
// whose value is a payload the server sent once per Generate (Complete, Compare, Run, ...): the
// traces as exact float32 values (trace.js reads them) and the step to open at. Everything after
// that (scrubbing, Play, the step box, keys, hover, layer and unit order) happens here, with no
// request. The static page (page.js) mounts the same view modules its own way.

import { DifferenceColumn } from './intervene.js';
import { StepGroup } from './group.js';
import { OrderChart } from './orders.js';
import { rules } from './rules.js';
import { decodeTrace } from './trace.js';
import { StepView, el } from './view.js';

const views = new Map();  // view name -> {kind, view, id}

function tooltip() {
  let tip = document.getElementById('rv_tooltip');
  if (!tip) {
    tip = el('div', { id: 'rv_tooltip', class: 'rv-tooltip', hidden: '' });
    document.body.append(tip);
  }
  return tip;
}

/** A clicked unit opens in the Units tab (the app's page.js: window.rnnvizInspect). A group's column k
 *  is the view ``<name><k>`` (stepview.LinkedViews keeps each column's model under that name). */
const inspect = (name) => (unit, layer, column) => {
  if (window.rnnvizInspect) window.rnnvizInspect(unit, layer, column === undefined ? name : `${name}${column}`);
};

/** Build the view of ``props.kind`` inside ``element`` and draw every payload the server sends. */
export function mount(element, props, watch) {
  rules();  // window.rnnvizRules, put in the page by the app
  const root = element.querySelector('.rv-host') || element, conf = root.dataset || {};
  // props, or the template's data attributes when Gradio has dropped them (stepview.MOUNT_JS)
  const name = props.name || conf.name, kind = props.kind || conf.kind, button = props.button || conf.button;
  let view;
  if (kind === 'orders') {
    view = new OrderChart(root, { prefix: name });
  } else if (kind === 'single') {
    const slot = (c) => root.querySelector(`.rv-slot-${c}`);
    view = new StepView(name, { canvas: slot('canvas'), gates: slot('gates'), figure: slot('figure') },
      { button, tooltip: tooltip(), onUnit: inspect(name) });
  } else {
    const extra = kind === 'intervene' ? new DifferenceColumn(name, { tooltip: tooltip() }) : null;
    view = new StepGroup(root, { prefix: name, tooltip: tooltip(), extra, onUnit: inspect(name),
      names: kind === 'intervene' ? () => null : null,
      chartTitle: kind === 'intervene' ? 'NLL of each line, without and with (one scale)' : 'NLL of each line, per model (one scale)' });
  }
  const entry = { kind, view, id: null };
  views.set(name, entry);
  const draw = () => {
    const t0 = performance.now();
    let p = null;
    try { p = props.value ? JSON.parse(props.value) : null; } catch (e) { p = null; }
    if (!p || !p.columns) return;
    if (kind === 'orders') {
      view.load(p.orders);
      element.scrollIntoView({ behavior: 'smooth', block: 'nearest' });  // only a click sends one: show it
    } else if (kind === 'single') {
      const c = p.columns[0];
      view.load(decodeTrace(c.trace), c.entry.name, p.step, { layer: p.layer, unitOrder: c.unitOrder, note: c.note || '' });
    } else {
      view.load(p.columns.map((c) => ({ ...c, trace: c.trace ? decodeTrace(c.trace) : null })), p.step);
    }
    entry.id = p.id;
    entry.payload = props.value;  // what the server sent (tests draw the same trace on the static page)
    entry.drawMs = performance.now() - t0;  // parse, decode and draw every view of the payload
    entry.drawnAt = performance.now();
    element.dataset.loaded = String(p.id);
  };
  draw();
  watch('value', draw);
}

window.rnnviz = Object.assign(window.rnnviz || {}, {
  /** The step view ``name`` shows (what a test reads): its step and trace(s), or null. */
  state(name = 'gen') {
    const e = views.get(name);
    return e ? { id: e.id, kind: e.kind, drawMs: e.drawMs, drawnAt: e.drawnAt, ...(e.view.snapshot() || {}) } : null;
  },
  /** The payload the server last sent the view ``name`` (JSON text). */
  payload: (name = 'gen') => (views.get(name) || {}).payload || null,
  /** The step view ``name`` is at (Copy link sends it). */
  step(name = 'gen') {
    const e = views.get(name);
    if (!e || e.kind === 'orders') return 0;  // "which order?" has no steps
    return e.kind === 'single' ? e.view.step : e.view.player.step;
  },
  /** The layer the single view ``name`` shows (the GIF export draws it); -1: none. */
  layer(name = 'gen') {
    const e = views.get(name);
    return e && e.kind === 'single' && e.view.trace ? e.view.layer : -1;
  },
  /** Move the view ``name`` to step ``t`` (benchmarks, tests). */
  setStep(name, t) {
    const e = views.get(name);
    if (e && e.view.player) e.view.player.go(t);
  },
  views,
});
