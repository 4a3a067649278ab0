// Drawing: colour scales and canvases, as rnnviz/render.py draws them for the app. Pure functions
// of traces and numbers into ImageData; page.js puts them on the page.

export const VIRIDIS = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58',
  '#b5de2b', '#fde725'];
export const BLUE_WHITE_RED = ['#053061', '#2166ac', '#4393c3', '#92c5de', '#d1e5f0', '#f7f7f7', '#fddbc7',
  '#f4a582', '#d6604d', '#b2182b', '#67001f'];
export const INFERNO = ['#000004', '#1b0c41', '#4a0c6b', '#781c6d', '#a52c60', '#cf4446', '#ed6925', '#fb9b06',
  '#f7d13d', '#fcffa4'];
export const NAN_RGB = [128, 128, 128];
export const INK = [245, 245, 245], PAPER = [0, 0, 0];
export const KEPT_INK = [125, 200, 255], KEPT_PAPER = [8, 22, 40];
export const FUTURE = [34, 38, 52];
export const DIM_INK = [70, 74, 90];
export const ROW_MARK = '#22d3ee';
export const SIGMOID = new Set(['i', 'f', 'o', 'z', 'r']);
export const DESCRIPTIONS = {
  i: 'input gate: how much of the candidate g enters the cell',
  f: 'forget gate: how much of the old cell state c is kept',
  g: 'candidate: the new content offered to the cell',
  o: 'output gate: how much of tanh(c) is shown as h',
  c: "cell state: the LSTM's long-term memory",
  h: 'hidden state: what the layer passes up and to the next step',
  r: 'reset gate: how much of the old h the candidate n may look at',
  z: 'update gate: how much of the old h is kept (1 = keep)',
  n: 'candidate: the proposed new hidden state',
};

const hexRgb = (c) => [1, 3, 5].map((k) => parseInt(c.slice(k, k + 2), 16));
// numpy's rint rounds half to even
const rint = (x) => { const r = Math.round(x); return (Math.abs(x % 1) === 0.5 && r % 2) ? r - 1 : r; };

const LUTS = new Map();
/** (256 x 3) lookup table interpolating the anchors evenly (render.lut). */
export function lut(anchors) {
  const key = anchors.join();
  if (LUTS.has(key)) return LUTS.get(key);
  const rgb = anchors.map(hexRgb), n = 256, out = new Uint8Array(n * 3);
  for (let q = 0; q < n; q++) {
    const x = (q / (n - 1)) * (anchors.length - 1), k = Math.min(anchors.length - 2, Math.floor(x)), w = x - k;
    for (let ch = 0; ch < 3; ch++) out[q * 3 + ch] = rint(rgb[k][ch] * (1 - w) + rgb[k + 1][ch] * w);
  }
  LUTS.set(key, out);
  return out;
}

export const GATE_SCALE = { vmin: 0, vmax: 1, anchors: VIRIDIS };
export const TANH_SCALE = { vmin: -1, vmax: 1, anchors: BLUE_WHITE_RED };
export const PROB_SCALE = { vmin: 0, vmax: 1, anchors: INFERNO };

/** np.percentile (linear interpolation) of |values|. */
function absPercentile(values, q) {
  const a = Float64Array.from(values, Math.abs).sort();
  if (!a.length) return 0;
  const pos = (q / 100) * (a.length - 1), lo = Math.floor(pos), hi = Math.min(a.length - 1, lo + 1);
  return a[lo] + (a[hi] - a[lo]) * (pos - lo);
}

/** The colour scale of one gate/state (render.state_scale): gates viridis on [0, 1], tanh values
 *  blue-white-red on [-1, 1], the LSTM's c symmetric, fixed per trace and layer from the 99.5th
 *  percentile of |c| over every step (at least 1, rounded up to 0.5). */
export function stateScale(name, values) {
  if (SIGMOID.has(name)) return GATE_SCALE;
  if (name === 'c') {
    const m = values && values.length ? absPercentile(values, 99.5) : 1;
    const v = Math.max(1, Math.ceil(m * 2) / 2);
    return { vmin: -v, vmax: v, anchors: BLUE_WHITE_RED };
  }
  return TANH_SCALE;
}

export const cssGradient = (scale) => `linear-gradient(to right, ${scale.anchors.join(', ')})`;

/** Write the colour of ``v`` on ``scale`` into rgba at byte offset ``o`` (NaN: grey). */
export function colorAt(rgba, o, v, scale, table = lut(scale.anchors)) {
  if (Number.isNaN(v)) { rgba[o] = NAN_RGB[0]; rgba[o + 1] = NAN_RGB[1]; rgba[o + 2] = NAN_RGB[2]; rgba[o + 3] = 255; return; }
  const x = (Math.fround(v) - scale.vmin) / Math.max(scale.vmax - scale.vmin, 1e-12);
  const q = 3 * Math.min(255, Math.max(0, rint(x * 255)));
  rgba[o] = table[q]; rgba[o + 1] = table[q + 1]; rgba[o + 2] = table[q + 2]; rgba[o + 3] = 255;
}

/** (rows, cols) of a near-square grid for n units (render.unit_grid_shape): 256 -> 16 x 16. */
export function unitGridShape(n) {
  const root = Math.floor(Math.sqrt(n));
  for (let rows = root; rows > 0; rows--) if (n % rows === 0 && n / rows <= 2 * rows) return [rows, n / rows];
  const cols = Math.ceil(Math.sqrt(n));
  return [Math.ceil(n / cols), cols];
}

const put = (rgba, o, c) => { rgba[o] = c[0]; rgba[o + 1] = c[1]; rgba[o + 2] = c[2]; rgba[o + 3] = 255; };

/** The canvas while row ``step`` is drawn (render.canvas_rgb): rows before it as drawn (kept rows
 *  in blue), row ``step`` as the probabilities it was drawn with (inferno), later rows not drawn
 *  yet. ``step == H`` is the finished image. Fills ``img`` (ImageData W x H). */
export function paintCanvas(img, trace, step) {
  const H = trace.height, W = trace.width, rgba = img.data, table = lut(INFERNO);
  const s = Math.max(0, Math.min(H, step)), kept = Math.min(trace.keepRows, s);
  for (let t = 0; t < H; t++) {
    for (let j = 0; j < W; j++) {
      const o = 4 * (t * W + j), ink = trace.image[t * W + j];
      if (t < kept) put(rgba, o, ink ? KEPT_INK : KEPT_PAPER);
      else if (t < s) put(rgba, o, ink ? INK : PAPER);
      else if (t === s) colorAt(rgba, o, trace.probs[t * W + j], PROB_SCALE, table);
      else put(rgba, o, FUTURE);
    }
  }
  return img;
}

/** What the model is given for completion (render.prefix_preview): kept rows blue, the rest dim. */
export function paintPrefix(img, binary, H, W, keepRows) {
  const rgba = img.data;
  for (let t = 0; t < H; t++) for (let j = 0; j < W; j++) {
    const ink = binary[t * W + j];
    put(rgba, 4 * (t * W + j), t < keepRows ? (ink ? KEPT_INK : KEPT_PAPER) : (ink ? DIM_INK : FUTURE));
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
    ctx.fillStyle = t < keepRows ? '#9aa5b1' : '#f97316';
    ctx.fillRect(t * bw + bw * 0.1, h - bh, bw * 0.8, bh);
  }
}

/** A number the way the app prints it: fixed digits, a real minus sign. */
export const fmt = (x, digits = 2) => x.toFixed(digits).replace('-', '\u2212');

/** One line of statistics (views.gate_stats): saturation for gates, mean |value| for the rest. */
export function gateStats(name, series, step, units) {
  let lo = 0, hi = 0, sum = 0, max = 0;
  for (let u = 0; u < units; u++) {
    const v = series[step * units + u], a = Math.abs(v);
    if (v < 0.1) lo++;
    if (v > 0.9) hi++;
    sum += a;
    if (a > max) max = a;
  }
  if (SIGMOID.has(name)) return `${Math.round((100 * lo) / units)}% <0.1 \u00b7 ${Math.round((100 * hi) / units)}% >0.9`;
  return `mean |${name}| ${fmt(sum / units)} \u00b7 max ${fmt(max)}`;
}

/** The three labels under a colour bar (views._scale_labels). */
export function scaleLabels(scale) {
  const lab = (v) => fmt(v, v % 1 ? 1 : 0);
  return [lab(scale.vmin), lab((scale.vmin + scale.vmax) / 2), lab(scale.vmax)];
}
