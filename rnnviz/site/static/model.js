// The row model's math in JavaScript: the same computation as rnnviz/cells.py and rnnviz/model.py,
// written for the browser. It knows nothing about the page: weights in, traces out.
//
// One timestep per image row. At step t the recurrent layers read x_t = [row t-1 ; onehot(t) ;
// onehot(y)] (RowModel.step_inputs), and a masked row head (MaskedRowHead, MADE) gives pixel j of
// row t a Bernoulli logit from the top layer's h_t, the row above and pixels 0..j-1 of its own row.
// Cells use PyTorch's gate order and equations (see cells.py):
//   LSTM (i | f | g | o): i, f, o = sigmoid(W_i* x + b_i* + W_h* h + b_h*), g = tanh(...),
//                         c' = f c + i g, h' = o tanh(c')
//   GRU  (r | z | n):     r, z = sigmoid(...), n = tanh(W_in x + b_in + r (W_hn h + b_hn)),
//                         h' = (1 - z) n + z h
//   RNN:                  h' = tanh(W_ih x + b_ih + W_hh h + b_hh)
// Layer k+1 reads layer k's h. Sums run in float64 over the exact float32 weights; every gate and
// state is stored as float32. tests/site/test_math.py checks all of it against rnnviz.sample_traces.
//
// Scan orders (ModelConfig.order, rules.json "orders"): a model of another order writes line t of
// its order at step t ("row" above means that line), pixel j of a line being its j-th pixel in that
// order. Internally every step works on lines; a trace's image, probs and modelProbs come back as the
// image is seen (as RowModel.sample returns them), its rowNll and states per step (= per line), and
// trace.pixelOf[t * W + j] names the image pixel (row * W + col) of pixel j of line t. A prefix is
// given as an image and its first keepRows lines of the order are kept.

import { MT19937, rand, randint } from './random.js';
import { rules } from './rules.js';

const GATES = { lstm: 4, gru: 3, rnn: 1 };

const sigmoid = (x) => 1 / (1 + Math.exp(-x));

/** A model from its manifest entry (config, tensor offsets and shapes) and its weights (ArrayBuffer
 *  of little-endian float32). Checks every tensor the math needs against the config. */
export function loadModel(entry, buffer) {
  const c = entry.config;
  const tensors = {};
  for (const [name, t] of Object.entries(entry.tensors)) {
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (t.offset % 4 || t.offset + 4 * size > buffer.byteLength) throw new Error(`tensor ${name} lies outside the weights`);
    tensors[name] = new Float32Array(buffer, t.offset, size);
  }
  const need = (name, shape) => {
    const t = entry.tensors[name];
    if (!t || t.shape.join('x') !== shape.join('x')) throw new Error(`tensor ${name} must be ${shape.join('x')}`);
    return tensors[name];
  };
  const G = GATES[c.cell];
  if (!G) throw new Error(`unknown cell ${c.cell}`);
  const H = c.height, W = c.width, K = c.head_hidden, hid = c.hidden;
  const layers = [];
  for (let k = 0; k < c.layers; k++) {
    const inSize = k === 0 ? W + H + c.num_classes : hid;
    layers.push({
      inSize,
      wih: need(`rnn.weight_ih_l${k}`, [G * hid, inSize]), whh: need(`rnn.weight_hh_l${k}`, [G * hid, hid]),
      bih: need(`rnn.bias_ih_l${k}`, [G * hid]), bhh: need(`rnn.bias_hh_l${k}`, [G * hid]),
    });
  }
  const ctx = hid + W;
  const head = {
    ctxHidW: need('head.ctx_to_hid.weight', [K, ctx]), ctxHidB: need('head.ctx_to_hid.bias', [K]),
    ctxOutW: need('head.ctx_to_out.weight', [W, ctx]), ctxOutB: need('head.ctx_to_out.bias', [W]),
    pixHid: need('head.pix_to_hid', [K, W]), hidOut: need('head.hid_to_out', [W, K]),
    pixOut: need('head.pix_to_out', [W, W]),
  };
  // the MADE masks: hidden unit k has degree k mod W and sees pixels d < degree; output j sees the
  // units of degree <= j and pixels d < j. Units are grouped by degree for the sequential sampler.
  head.degree = new Int32Array(K).map((_, k) => k % W);
  head.byDegree = Array.from({ length: W }, () => []);
  for (let k = 0; k < K; k++) head.byDegree[head.degree[k]].push(k);
  const order = c.order ?? 'rows';
  const pixelOf = orderPixels(order, H, W);
  return { name: entry.name, config: c, cell: c.cell, layers, head, names: rules().stateNames[c.cell], order, pixelOf };
}

// ---- scan orders -----------------------------------------------------------------------------
/** For the scan ``order`` of H x W images: pixelOf[t * W + j] = the image pixel (row * W + col) that
 *  is pixel j of line t (rnnviz.model.to_order: transpose, then flip the lines, then the pixels,
 *  as rules.json's orders[order] = [transpose, flipLines, flipPixels] says). "rows" is the identity
 *  and needs no rules table. */
export function orderPixels(order, H, W) {
  const axes = order === 'rows' ? [false, false, false] : rules().orders?.[order];
  if (!axes) throw new Error(`unknown scan order ${order}`);
  const [transpose, flipLines, flipPixels] = axes;
  if (transpose && H !== W) throw new Error('a column order needs square images');
  const out = new Int32Array(H * W);
  for (let t = 0; t < H; t++) {
    for (let j = 0; j < W; j++) {
      const a = flipLines ? H - 1 - t : t, b = flipPixels ? W - 1 - j : j;
      out[t * W + j] = transpose ? b * W + a : a * W + b;
    }
  }
  return out;
}

/** An image (H*W, as seen) as lines of the order: lines[t * W + j] = image[pixelOf[t * W + j]]. */
function toLines(pixelOf, image) {
  const out = new image.constructor(image.length);
  for (let q = 0; q < pixelOf.length; q++) out[q] = image[pixelOf[q]];
  return out;
}

/** Lines of the order back to an image as seen (undoes toLines). */
function fromLines(pixelOf, lines) {
  const out = new lines.constructor(lines.length);
  for (let q = 0; q < pixelOf.length; q++) out[pixelOf[q]] = lines[q];
  return out;
}

// ---- the recurrent stack ---------------------------------------------------------------------
/** Zero state: per layer {h, c} as Float64Array. */
function initialState(model) {
  const n = model.config.hidden;
  return model.layers.map(() => ({ h: new Float64Array(n), c: new Float64Array(n) }));
}

/** acc[r] = b1[r] + b2[r] + sum over active inputs of W[r, col] (the input is 0/1, given by the
 *  indices of its ones) -- exact for layer 0, whose input is a binary row and two one-hots. */
function sparseAffine(out, W, b, inSize, ones, rows) {
  for (let r = 0; r < rows; r++) {
    let s = b[r];
    const base = r * inSize;
    for (let q = 0; q < ones.length; q++) s += W[base + ones[q]];
    out[r] = s;
  }
}

function denseAffine(out, W, b, inSize, x, rows) {
  for (let r = 0; r < rows; r++) {
    let s = b[r];
    const base = r * inSize;
    for (let q = 0; q < inSize; q++) s += W[base + q] * x[q];
    out[r] = s;
  }
}

/** One timestep of the whole stack. ``ones``: indices of the ones of layer 0's input. Writes every
 *  gate/state of layer k at step t into rec[k][name] (Float32Array steps x units) and updates state. */
function step(model, ones, state, rec, t, scratch) {
  const hid = model.config.hidden, G = GATES[model.cell];
  let x = null;
  for (let k = 0; k < model.layers.length; k++) {
    const L = model.layers[k], st = state[k], out = rec[k], o = t * hid;
    const gi = scratch.gi, gh = scratch.gh;
    if (k === 0) sparseAffine(gi, L.wih, L.bih, L.inSize, ones, G * hid);
    else denseAffine(gi, L.wih, L.bih, L.inSize, x, G * hid);
    denseAffine(gh, L.whh, L.bhh, hid, st.h, G * hid);
    const h = st.h, c = st.c;
    if (model.cell === 'lstm') {
      for (let u = 0; u < hid; u++) {
        const i = sigmoid(gi[u] + gh[u]), f = sigmoid(gi[hid + u] + gh[hid + u]);
        const g = Math.tanh(gi[2 * hid + u] + gh[2 * hid + u]), og = sigmoid(gi[3 * hid + u] + gh[3 * hid + u]);
        c[u] = f * c[u] + i * g;
        h[u] = og * Math.tanh(c[u]);
        out.i[o + u] = i; out.f[o + u] = f; out.g[o + u] = g; out.o[o + u] = og; out.c[o + u] = c[u]; out.h[o + u] = h[u];
      }
    } else if (model.cell === 'gru') {
      for (let u = 0; u < hid; u++) {
        const r = sigmoid(gi[u] + gh[u]), z = sigmoid(gi[hid + u] + gh[hid + u]);
        const n = Math.tanh(gi[2 * hid + u] + r * gh[2 * hid + u]);  // reset after the hidden matmul
        h[u] = (1 - z) * n + z * h[u];
        out.r[o + u] = r; out.z[o + u] = z; out.n[o + u] = n; out.h[o + u] = h[u];
      }
    } else {
      for (let u = 0; u < hid; u++) {
        h[u] = Math.tanh(gi[u] + gh[u]);
        out.h[o + u] = h[u];
      }
    }
    x = h;
  }
}

// ---- the row head ----------------------------------------------------------------------------
/** Sample (or, with ``given``, read) one row pixel by pixel. ctx = [h_top ; row above].
 *  Pixel j is 1 where u_j < p_j, p_j = sigmoid(logit_j / T) (T = 0: logit_j > 0), exactly as
 *  MaskedRowHead.sample, whose fixed-point iteration gives the same row for the same uniforms.
 *  Fills row (0/1), probs (p drawn with; given rows: sigmoid(logit)), and returns the row's NLL at
 *  temperature 1, -sum_j log Bernoulli(x_j | sigmoid(logit_j)), writing sigmoid(logit_j) to mprobs. */
function headRow(model, hTop, above, uniforms, uOff, temperature, given, row, probs, mprobs, pOff, scratch) {
  const hd = model.head, W = model.config.width, K = model.config.head_hidden, hid = model.config.hidden;
  const ctxN = hid + W, pre = scratch.pre, toOut = scratch.toOut;
  for (let k = 0; k < K; k++) {  // the context's share of the hidden pre-activations
    let s = hd.ctxHidB[k];
    const base = k * ctxN;
    for (let q = 0; q < hid; q++) s += hd.ctxHidW[base + q] * hTop[q];
    for (let q = 0; q < W; q++) if (above[q]) s += hd.ctxHidW[base + hid + q];
    pre[k] = s;
  }
  for (let j = 0; j < W; j++) {
    let s = hd.ctxOutB[j];
    const base = j * ctxN;
    for (let q = 0; q < hid; q++) s += hd.ctxOutW[base + q] * hTop[q];
    for (let q = 0; q < W; q++) if (above[q]) s += hd.ctxOutW[base + hid + q];
    toOut[j] = s;
  }
  let nll = 0;
  for (let j = 0; j < W; j++) {
    // units of degree <= j are final now: they see only pixels < their degree <= j
    let logit = toOut[j];
    const ob = j * K;
    for (let m = 0; m <= j; m++) {
      const units = hd.byDegree[m];
      for (let q = 0; q < units.length; q++) {
        const k = units[q], a = pre[k];
        if (a > 0) logit += a * hd.hidOut[ob + k];
      }
    }
    for (let d = 0; d < j; d++) if (row[d]) logit += hd.pixOut[j * W + d];
    let x;
    if (given) {
      x = row[j];
      probs[pOff + j] = sigmoid(logit);
    } else {
      const p = temperature > 0 ? Math.fround(sigmoid(logit / temperature)) : (logit > 0 ? 1 : 0);
      x = uniforms[uOff + j] < p ? 1 : 0;
      row[j] = x;
      probs[pOff + j] = p;
    }
    mprobs[pOff + j] = sigmoid(logit);
    nll += Math.max(logit, 0) - logit * x + Math.log1p(Math.exp(-Math.abs(logit)));
    if (x) {  // pixel j reaches the units of degree > j
      for (let m = j + 1; m < W; m++) {
        const units = hd.byDegree[m];
        for (let q = 0; q < units.length; q++) pre[units[q]] += hd.pixHid[units[q] * W + j];
      }
    }
  }
  return nll;
}

function scratchFor(model) {
  const c = model.config, G = GATES[model.cell];
  return { gi: new Float64Array(G * c.hidden), gh: new Float64Array(G * c.hidden),
           pre: new Float64Array(c.head_hidden), toOut: new Float64Array(c.width) };
}

/** Run one image: sample its rows (or read the first ``keepRows`` rows and any row of ``prefix``
 *  when ``readAll``), recording everything. Rows here are lines of the model's order: ``prefix``
 *  (an image as seen) is read as lines and the uniforms are used as torch.rand(n, H, W) is in
 *  RowModel.sample (element t * W + j drives pixel j of line t); the image, probs and modelProbs
 *  come back as seen. Returns a trace (see ``sample``). */
function runOne(model, label, uniforms, uOff, temperature, prefix, keepRows, readAll, stopAfter) {
  const c = model.config, H = c.height, W = c.width, hid = c.hidden;
  const steps = stopAfter ?? H;
  const rows = model.order === 'rows';
  if (prefix && !rows) prefix = toLines(model.pixelOf, prefix);
  let image = new Uint8Array(H * W), probs = new Float32Array(H * W), modelProbs = new Float32Array(H * W);
  const rowNll = new Float64Array(H);
  const layers = model.layers.map(() => Object.fromEntries(model.names.map((n) => [n, new Float32Array(H * hid)])));
  const state = initialState(model), scratch = scratchFor(model);
  let above = new Uint8Array(W);
  const ones = [];
  for (let t = 0; t < steps; t++) {
    ones.length = 0;
    for (let q = 0; q < W; q++) if (above[q]) ones.push(q);
    ones.push(W + t);
    if (c.num_classes && label !== null) ones.push(W + H + label);
    step(model, ones, state, layers, t, scratch);
    const row = image.subarray(t * W, (t + 1) * W);
    const given = readAll || t < keepRows;
    if (given) row.set(prefix.subarray(t * W, (t + 1) * W));
    rowNll[t] = headRow(model, state[state.length - 1].h, above, uniforms, uOff + t * W, temperature, given,
                        row, probs, modelProbs, t * W, scratch);
    above = row;
  }
  if (!rows) {
    image = fromLines(model.pixelOf, image);
    probs = fromLines(model.pixelOf, probs);
    modelProbs = fromLines(model.pixelOf, modelProbs);
  }
  return { cell: model.cell, height: H, width: W, hidden: hid, names: model.names, image, label, probs, modelProbs,
           rowNll, layers, temperature, keepRows, order: model.order, pixelOf: model.pixelOf };
}

/** Draw ``n`` images as RowModel.sample does, given its random numbers: ``labels`` (n class
 *  indices, or a single class; null for an unconditional model) and ``uniforms`` (n * H * W
 *  float32, torch.rand(n, H, W)). The first ``keepRows`` rows come from ``prefix`` (H * W, 0/1).
 *  Returns one trace per image: image (H*W 0/1), label, probs (what each pixel was drawn with),
 *  modelProbs and rowNll (temperature 1), layers (per layer: name -> Float32Array steps x units),
 *  order and pixelOf (which image pixels each step wrote; see the scan orders above). */
export function sample(model, { n = 1, labels = null, uniforms, temperature = 1, prefix = null, keepRows = 0 }) {
  const c = model.config, HW = c.height * c.width;
  if (!(Number.isFinite(temperature) && temperature >= 0)) throw new Error('temperature must be a finite number >= 0');
  if (uniforms.length < n * HW) throw new Error(`need ${n * HW} uniforms, got ${uniforms.length}`);
  if (keepRows && !prefix) throw new Error('keepRows > 0 needs a prefix image');
  const out = [];
  for (let b = 0; b < n; b++) {
    let y = null;
    if (c.num_classes) {
      y = typeof labels === 'number' ? labels : labels[b];
      if (!(Number.isInteger(y) && y >= 0 && y < c.num_classes)) throw new Error(`label must be in [0, ${c.num_classes - 1}]`);
    }
    out.push(runOne(model, y, uniforms, b * HW, temperature, prefix, keepRows, false));
  }
  return out;
}

/** -log p(rows 0..keepRows-1 | class) for every class (teacher forcing), as the app's
 *  class_posterior uses to guess a digit from kept rows (the first lines of the model's order).
 *  Returns p(class | kept rows), uniform prior. */
export function classPosterior(model, prefix, keepRows) {
  const C = model.config.num_classes, nll = [];
  const none = new Float32Array(0);
  for (let y = 0; y < C; y++) {
    const tr = runOne(model, y, none, 0, 1, prefix, keepRows, true, keepRows);
    let s = 0;
    for (let t = 0; t < keepRows; t++) s += tr.rowNll[t];
    nll.push(-s);
  }
  const top = Math.max(...nll), e = nll.map((v) => Math.exp(v - top)), z = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / z);
}

/** RowModel.sample(n, y=digit, temperature, seed, prefix, keep_rows) with its own random numbers:
 *  one torch.Generator().manual_seed(seed); labels by torch.randint first when ``digit`` is null
 *  (class-conditional models), then torch.rand(n, H, W) for the pixels. Same seed, same images. */
export function sampleSeeded(model, { n = 1, digit = null, seed = 0, temperature = 1, prefix = null, keepRows = 0 }) {
  const c = model.config;
  const gen = new MT19937(seed);
  let labels = null;
  if (c.num_classes) labels = digit === null ? Array.from(randint(gen, c.num_classes, n)) : digit;
  const uniforms = rand(gen, n * c.height * c.width);
  const traces = sample(model, { n, labels, uniforms, temperature, prefix, keepRows });
  for (const tr of traces) tr.seed = seed;
  return traces;
}

// ---- exact mixtures (rnnviz/mixture.py) --------------------------------------------------------
const logSumExp = (xs) => {
  const top = Math.max(...xs);
  return top === -Infinity ? top : top + Math.log(xs.reduce((s, v) => s + Math.exp(v - top), 0));
};

/** Mixture.choose_part: the part a mixture's sample with ``seed`` comes from, torch.randint(parts)
 *  of a generator seeded with (seed + rules.json mixturePartStream) mod 2^32, independent of the
 *  part's own draws (seeded with ``seed``). */
export function choosePart(parts, seed) {
  if (!(Number.isInteger(parts) && parts > 0)) throw new Error('a mixture needs at least one part');
  return randint(new MT19937((seed + rules().mixturePartStream) % 4294967296), parts, 1)[0];
}

/** analysis.marginal_line_nll for one binary image (H*W as seen): -log p(line t | lines < t) of the
 *  model's order, the class summed out under the uniform prior (Float64Array(H), nats). The lines
 *  sum to -log p(x). */
export function lineNll(model, image) {
  const c = model.config, H = c.height, none = new Float32Array(0);
  const classes = c.num_classes ? Array.from({ length: c.num_classes }, (_, y) => y) : [null];
  const cum = classes.map((y) => {  // log p(lines <= t | y)
    const tr = runOne(model, y, none, 0, 1, image, H, true);
    let s = 0;
    return Array.from(tr.rowNll, (v) => (s -= v));
  });
  const out = new Float64Array(H), logC = Math.log(classes.length);
  let before = 0;
  for (let t = 0; t < H; t++) {
    const now = logSumExp(cum.map((row) => row[t])) - logC;
    out[t] = before - now;
    before = now;
  }
  return out;
}

/** Mixture.which_order for one binary image (H*W as seen) and the mixture's parts (loaded models):
 *  the mixture's NLL and, per part, its NLL, its NLL per line of its own order and its posterior
 *  p(part | x) under the uniform prior. */
export function whichOrder(parts, image) {
  const rows = parts.map((m) => ({ name: m.name, order: m.order, lineNll: lineNll(m, image), pixelOf: m.pixelOf }));
  const lp = rows.map((r) => -r.lineNll.reduce((a, b) => a + b, 0));
  const z = logSumExp(lp);
  rows.forEach((r, k) => { r.nll = -lp[k]; r.posterior = Math.exp(lp[k] - z); });
  return { nll: -(z - Math.log(parts.length)), parts: rows };
}
