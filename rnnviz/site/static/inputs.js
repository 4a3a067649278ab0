// A drawing as an MNIST digit, as rnnviz/app/inputs.py makes it (mnist_like) and the app binarizes
// it (data.binarize_fixed, seed 0): crop the ink's bounding box, scale it to fit 20 x 20 (PIL's BOX
// filter, reproduced), place its centre of mass at the image centre, then draw each pixel on with
// probability gray / 255 from torch.rand of seed 0. Pure functions; no page.

import { MT19937, rand } from './random.js';

export const MIN_INK_FRACTION = 0.002, MAX_INK_FRACTION = 0.5;

export class InputError extends Error {}

// Python's round() and numpy's rint: half to even
const rint = (x) => { const r = Math.round(x); return (Math.abs(x % 1) === 0.5 && r % 2) ? r - 1 : r; };

/** PIL's resampling coefficients for the BOX filter (libImaging/Resample.c, precompute_coeffs). */
function boxCoeffs(inSize, outSize) {
  const scale = inSize / outSize, filterscale = Math.max(scale, 1), support = 0.5 * filterscale;
  const out = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale, ss = 1 / filterscale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5)), xmax = Math.min(inSize, Math.trunc(center + support + 0.5));
    const w = [];
    let ww = 0;
    for (let x = 0; x < xmax - xmin; x++) {
      const u = (x + xmin - center + 0.5) * ss;
      const v = u > -0.5 && u <= 0.5 ? 1 : 0;
      w.push(v);
      ww += v;
    }
    out.push({ xmin, w: w.map((v) => (ww !== 0 ? v / ww : v)) });
  }
  return out;
}

/** Image.fromarray(a, "F").resize((nw, nh), Image.BOX) of an (h, w) float32 array: horizontal
 *  pass, then vertical, float32 in between. */
function resizeBox(a, h, w, nh, nw) {
  let src = a, sw = w;
  if (nw !== w) {
    const cx = boxCoeffs(w, nw), tmp = new Float32Array(h * nw);
    for (let y = 0; y < h; y++) for (let x = 0; x < nw; x++) {
      let s = 0;
      const { xmin, w: k } = cx[x];
      for (let q = 0; q < k.length; q++) s += src[y * sw + xmin + q] * k[q];
      tmp[y * nw + x] = s;
    }
    src = tmp; sw = nw;
  }
  if (nh !== h) {
    const cy = boxCoeffs(h, nh), tmp = new Float32Array(nh * sw);
    for (let y = 0; y < nh; y++) for (let x = 0; x < sw; x++) {
      let s = 0;
      const { xmin, w: k } = cy[y];
      for (let q = 0; q < k.length; q++) s += src[(xmin + q) * sw + x] * k[q];
      tmp[y * sw + x] = s;
    }
    src = tmp;
  }
  return src;
}

/** numpy's sum of a float64 array: the first element, plus the rest summed pairwise (numpy's
 *  pairwise_sum: 8 accumulators up to 128 elements, halves above), so ties round as in Python. */
function pairwise(a, lo, n, f) {  // f: the array's precision (Math.fround for float32)
  if (n < 8) {
    let s = 0;
    for (let k = 0; k < n; k++) s = f(s + a[lo + k]);
    return s;
  }
  if (n <= 128) {
    const r = [0, 1, 2, 3, 4, 5, 6, 7].map((j) => a[lo + j]);
    let k = 8;
    for (; k < n - (n % 8); k += 8) for (let j = 0; j < 8; j++) r[j] = f(r[j] + a[lo + k + j]);
    let s = f(f(f(r[0] + r[1]) + f(r[2] + r[3])) + f(f(r[4] + r[5]) + f(r[6] + r[7])));
    for (; k < n; k++) s = f(s + a[lo + k]);
    return s;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return f(pairwise(a, lo, n2, f) + pairwise(a, lo + n2, n - n2, f));
}
const same = (x) => x;
const npSum = (a, f = same) => (a.length ? f(a[0] + pairwise(a, 1, a.length - 1, f)) : 0);

/** inputs.mnist_like: ink in [0, 1] (h x w, row-major) -> (size x size) gray values 0..255. */
export function mnistLike(ink, h, w, size = 28, box = 20) {
  let on = 0, r0 = h, r1 = -1, c0 = w, c1 = -1;
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    if (Math.fround(ink[y * w + x]) > 0.1) {
      on++;
      if (y < r0) r0 = y; if (y > r1) r1 = y; if (x < c0) c0 = x; if (x > c1) c1 = x;
    }
  }
  const frac = on / (h * w);
  if (!(h * w) || frac < MIN_INK_FRACTION) throw new InputError('The drawing is empty: draw a digit first.');
  if (frac > MAX_INK_FRACTION) {
    throw new InputError(`The drawing covers ${Math.round(100 * frac)}% of the canvas: that is not a digit. ` +
                         'Clear it and draw one digit with the brush.');
  }
  const ch = r1 - r0 + 1, cw = c1 - c0 + 1, crop = new Float32Array(ch * cw);
  for (let y = 0; y < ch; y++) for (let x = 0; x < cw; x++) crop[y * cw + x] = Math.min(1, Math.max(0, ink[(r0 + y) * w + c0 + x]));
  const s = box / Math.max(ch, cw), nh = Math.max(1, rint(ch * s)), nw = Math.max(1, rint(cw * s));
  const small = resizeBox(crop, ch, cw, nh, nw);
  let peak = 0;
  for (const v of small) if (v > peak) peak = v;
  if (peak <= 0) throw new InputError('The drawing is too faint to read: draw with the brush.');
  const wy = new Float64Array(nh * nw), wx = new Float64Array(nh * nw);
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) {
    const v = Math.min(1, Math.max(0, Math.fround(small[y * nw + x] / peak)));
    small[y * nw + x] = v;
    wy[y * nw + x] = v * y; wx[y * nw + x] = v * x;
  }
  const sum = npSum(small, Math.fround);  // a float32 array: numpy sums it in float32
  const top = Math.min(size - nh, Math.max(0, rint((size - 1) / 2 - npSum(wy) / sum)));
  const left = Math.min(size - nw, Math.max(0, rint((size - 1) / 2 - npSum(wx) / sum)));
  const out = new Uint8Array(size * size);
  for (let y = 0; y < nh; y++) for (let x = 0; x < nw; x++) out[(top + y) * size + left + x] = rint(Math.fround(small[y * nw + x] * 255));
  return out;
}

/** data.binarize_fixed(gray, seed): pixel on where torch.rand < gray / 255 (float32). */
export function binarize(gray, seed = 0) {
  const u = rand(new MT19937(seed), gray.length), out = new Uint8Array(gray.length);
  for (let k = 0; k < gray.length; k++) out[k] = u[k] < Math.fround(gray[k] / 255) ? 1 : 0;
  return out;
}
