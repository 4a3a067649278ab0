// Drawing: colour scales and canvases, as rnnviz/render.py draws them for the exports. Pure functions
// of traces and numbers into ImageData; the views put them on the page.

import { rules } from './rules.js';

// every colour, name and limit comes from the shared rules table (rules.js, written by Python)
const canvasRgb = (name) => rules().canvas[name];
export const isGate = (name) => rules().sigmoid.includes(name);
export const description = (name) => rules().descriptions[name] || name;
export const cellColor = (cell) => rules().cellColors[cell] || rules().otherColor;

const hexRgb = (c) => [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16));
// numpy's rint rounds half to even
const rint = (x) => { const r = Math.round(x); return (Math.abs(x % 1) === 0.5 && r % 2) ? r - 1 : r; };

const LUTS = new Map();
/** (n x 3) lookup table interpolating the anchors evenly (render.lut). */
export function lut(anchors) {
  const key = anchors.join();
  if (LUTS.has(key)) return LUTS.get(key);
  const rgb = anchors.map(hexRgb), n = rules().lutSize, out = new Uint8Array(n * 3);
  for (let q = 0; q < n; q++) {
    const x = (q / (n - 1)) * (anchors.length - 1), k = Math.min(anchors.length - 2, Math.floor(x)), w = x - k;
    for (let ch = 0; ch < 3; ch++) out[q * 3 + ch] = rint(rgb[k][ch] * (1 - w) + rgb[k + 1][ch] * w);
  }
  LUTS.set(key, out);
  return out;
}

/** The scale of one kind of value ('gate', 'tanh', 'prob'): {vmin, vmax, anchors}. */
export function scaleOf(kind) {
  const s = rules().scales[kind];
  return { vmin: s.vmin, vmax: s.vmax, anchors: rules().palettes[s.palette] };
}

/** np.percentile (linear interpolation) of |values|. */
export function absPercentile(values, q) {
  const a = Float64Array.from(values, Math.abs).sort();
  if (!a.length) return 0;
  const pos = (q / 100) * (a.length - 1), lo = Math.floor(pos), hi = Math.min(a.length - 1, lo + 1);
  return a[lo] + (a[hi] - a[lo]) * (pos - lo);
}

/** The colour scale of one gate/state (render.state_scale): gates on [0, 1], tanh values on [-1, 1],
 *  the LSTM's c symmetric, fixed per trace and layer from a high percentile of |c| over every step
 *  (at least the tanh range, rounded up): the numbers are the rules' cScale. */
export function stateScale(name, values) {
  if (isGate(name)) return scaleOf('gate');
  if (name === 'c') {
    const cs = rules().cScale, tanh = scaleOf('tanh');
    const m = values && values.length ? absPercentile(values, cs.percentile) : cs.min;
    const v = Math.max(cs.min, Math.ceil(m / cs.round) * cs.round);
    return { vmin: -v, vmax: v, anchors: tanh.anchors };
  }
  return scaleOf('tanh');
}

const put = (rgba, o, c) => { rgba[o] = c[0]; rgba[o + 1] = c[1]; rgba[o + 2] = c[2]; rgba[o + 3] = 255; };

export const cssGradient = (scale) => `linear-gradient(to right, ${scale.anchors.join(', ')})`;

/** Write the colour of ``v`` on ``scale`` into rgba at byte offset ``o`` (NaN: grey). */
export function colorAt(rgba, o, v, scale, table = lut(scale.anchors)) {
  if (Number.isNaN(v)) { put(rgba, o, canvasRgb('nan')); return; }
  const x = (Math.fround(v) - scale.vmin) / Math.max(scale.vmax - scale.vmin, 1e-12);
  const last = table.length / 3 - 1, q = 3 * Math.min(last, Math.max(0, rint(x * last)));
  rgba[o] = table[q]; rgba[o + 1] = table[q + 1]; rgba[o + 2] = table[q + 2]; rgba[o + 3] = 255;
}

/** (rows, cols) of a near-square grid for n units (render.unit_grid_shape): 256 -> 16 x 16. */
export function unitGridShape(n) {
  const root = Math.floor(Math.sqrt(n));
  for (let rows = root; rows > 0; rows--) if (n % rows === 0 && n / rows <= 2 * rows) return [rows, n / rows];
  const cols = Math.ceil(Math.sqrt(n));
  return [Math.ceil(n / cols), cols];
}

/** The step at which each pixel of an H x W image is written in scan ``order`` (rules().orders:
 *  [columns?, lines backwards?, pixels backwards?]), as an Int32Array (H*W), cached. */
const LINES = new Map();
export function lineOf(order, H, W) {
  const key = `${order}:${H}x${W}`;
  if (LINES.has(key)) return LINES.get(key);
  const [cols, flipLines] = rules().orders[order || 'rows'] || rules().orders.rows;
  const n = cols ? W : H, out = new Int32Array(H * W);
  for (let r = 0; r < H; r++) for (let c = 0; c < W; c++) {
    const line = cols ? c : r;
    out[r * W + c] = flipLines ? n - 1 - line : line;
  }
  LINES.set(key, out);
  return out;
}

/** Where line ``step`` of ``order`` lies on the canvas, in % of its box: {left, top, width, height}. */
export function lineRect(order, step, H, W) {
  const [cols, flipLines] = rules().orders[order || 'rows'] || rules().orders.rows;
  const n = cols ? W : H, k = flipLines ? n - 1 - step : step;
  return cols ? { left: (100 * k) / W, top: 0, width: 100 / W, height: 100 }
    : { left: 0, top: (100 * k) / H, width: 100, height: 100 / H };
}

/** The canvas while line ``step`` is drawn (render.canvas_rgb): lines before it as drawn (kept
 *  lines in blue), line ``step`` as the probabilities it was drawn with, later lines not drawn
 *  yet. ``step == steps`` is the finished image. Lines follow the trace's scan order. Fills ``img``
 *  (ImageData W x H). */
export function paintCanvas(img, trace, step) {
  const H = trace.height, W = trace.width, rgba = img.data, prob = scaleOf('prob'), table = lut(prob.anchors);
  const line = lineOf(trace.order, H, W), steps = trace.rowNll.length;
  const s = Math.max(0, Math.min(steps, step)), kept = Math.min(trace.keepRows, s);
  const ink = canvasRgb('ink'), paper = canvasRgb('paper'), keptInk = canvasRgb('keptInk'), keptPaper = canvasRgb('keptPaper');
  const future = canvasRgb('future');
  for (let q = 0; q < H * W; q++) {
    const t = line[q], o = 4 * q, on = trace.image[q];
    if (t < kept) put(rgba, o, on ? keptInk : keptPaper);
    else if (t < s) put(rgba, o, on ? ink : paper);
    else if (t === s) colorAt(rgba, o, trace.probs[q], prob, table);
    else put(rgba, o, future);
  }
  return img;
}

/** What the model is given for completion (render.prefix_preview): kept rows blue, the rest dim. */
export function paintPrefix(img, binary, H, W, keepRows) {
  const rgba = img.data, keptInk = canvasRgb('keptInk'), keptPaper = canvasRgb('keptPaper');
  const dim = canvasRgb('dimInk'), future = canvasRgb('future');
  for (let t = 0; t < H; t++) for (let j = 0; j < W; j++) {
    const on = binary[t * W + j];
    put(rgba, 4 * (t * W + j), t < keepRows ? (on ? keptInk : keptPaper) : (on ? dim : future));
  }
  return img;
}

/** Every step of one gate/state as unit grids, colour-mapped once per trace: a Uint8ClampedArray
 *  (steps x rows x cols x 4), so a scrub step only copies one grid into its ImageData. */
export function gridFrames(series, steps, units, scale) {
  const [rows, cols] = unitGridShape(units), cell = rows * cols, table = lut(scale.anchors);
  const out = new Uint8ClampedArray(steps * cell * 4);
  for (let t = 0; t < steps; t++) {
    for (let q = 0; q < cell; q++) colorAt(out, 4 * (t * cell + q), q < units ? series[t * units + q] : NaN, scale, table);
  }
  return { rows, cols, frames: out };
}

/** Units x timesteps of one gate/state as an ImageData (width = steps, height = units). */
export function heatmap(series, steps, units, scale) {
  const img = new ImageData(steps, units), table = lut(scale.anchors);
  for (let u = 0; u < units; u++) for (let t = 0; t < steps; t++) colorAt(img.data, 4 * (u * steps + t), series[t * units + u], scale, table);
  return img;
}

/** Per-row NLL bars onto a 2D context of size w x h (orange: generated rows, grey: kept rows). */
export function drawBars(ctx, rowNll, keepRows, w, h, yMax) {
  ctx.clearRect(0, 0, w, h);
  const n = rowNll.length, bw = w / n, top = yMax > 0 ? yMax : 1;
  for (let t = 0; t < n; t++) {
    const bh = Math.max(0, (rowNll[t] / top) * (h - 2));
    ctx.fillStyle = t < keepRows ? rules().canvas.barKept : rules().canvas.barGenerated;
    ctx.fillRect(t * bw + bw * 0.1, h - bh, bw * 0.8, bh);
  }
}

/** A number the way the app prints it: fixed digits, a real minus sign. */
export const fmt = (x, digits = 2) => x.toFixed(digits).replace('-', '\u2212');

/** One line of statistics (cards.gate_stats): saturation for gates, mean |value| for the rest. */
export function gateStats(name, series, step, units) {
  const [low, high] = rules().saturation;
  let lo = 0, hi = 0, sum = 0, max = 0;
  for (let u = 0; u < units; u++) {
    const v = series[step * units + u], a = Math.abs(v);
    if (v < low) lo++;
    if (v > high) hi++;
    sum += a;
    if (a > max) max = a;
  }
  if (isGate(name)) return `${Math.round((100 * lo) / units)}% <${low} \u00b7 ${Math.round((100 * hi) / units)}% >${high}`;
  return `mean |${name}| ${fmt(sum / units)} \u00b7 max ${fmt(max)}`;
}

/** The three labels under a colour bar (views._scale_labels). */
export function scaleLabels(scale) {
  const lab = (v) => fmt(v, v % 1 ? 1 : 0);
  return [lab(scale.vmin), lab((scale.vmin + scale.vmax) / 2), lab(scale.vmax)];
}

/** Line series on one y scale onto a 2D context of size w x h: ``series`` is [{values, color, dash}]
 *  (dash: a canvas line-dash array); x runs over the steps, y from 0 to ``yMax``. */
export function drawLines(ctx, series, w, h, yMax) {
  ctx.clearRect(0, 0, w, h);
  const n = Math.max(1, ...series.map((s) => s.values.length)), top = yMax > 0 ? yMax : 1;
  const x = (t) => ((t + 0.5) / n) * w, y = (v) => h - 2 - (Math.max(0, v) / top) * (h - 4);
  for (const s of series) {
    ctx.strokeStyle = s.color; ctx.fillStyle = s.color; ctx.lineWidth = 2; ctx.setLineDash(s.dash || []);
    ctx.beginPath();
    s.values.forEach((v, t) => (t ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
    ctx.setLineDash([]);
    s.values.forEach((v, t) => ctx.fillRect(x(t) - 1.5, y(v) - 1.5, 3, 3));
  }
}

/** The largest value of several series (0 when empty): one axis for every column of a group. */
export const maxOf = (arrays) => arrays.reduce((m, a) => { for (const v of a) if (v > m) m = v; return m; }, 0);
