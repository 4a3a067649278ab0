// A trace sent by the server (rnnviz/wire.py) read back into the object the page's own sampler
// (model.js) makes: {cell, height, width, hidden, names, label, keepRows, temperature, seed, order,
// image, probs, rowNll, layers: [{name: Float32Array (steps x units)}]}. Every number is the
// server's float32, bit for bit. Data in, data out: nothing here touches the page.

/** Decode a payload (the parsed JSON of ``rnnviz.wire.encode_trace``). Throws on a malformed one. */
export function decodeTrace(p) {
  if (!p || p.format !== 'rnnviz-trace' || p.version !== 1) throw new Error('not an rnnviz trace (format/version)');
  const bin = atob(p.data), bytes = new Uint8Array(bin.length);
  for (let k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
  if (bytes.length % 4) throw new Error('trace data is not whole float32 values');
  const all = new Float32Array(bytes.buffer), arrays = {};
  for (const [name, off, n] of p.arrays) {
    if (!(Number.isInteger(off) && Number.isInteger(n) && off >= 0 && off + n <= all.length)) throw new Error(`array ${name} lies outside the data`);
    arrays[name] = all.subarray(off, off + n);
  }
  const H = p.height, W = p.width, n = p.hidden, need = (name, size) => {
    const a = arrays[name];
    if (!a || a.length !== size) throw new Error(`array ${name} must hold ${size} values`);
    return a;
  };
  const layers = [];
  for (let k = 0; k < p.nlayers; k++) layers.push(Object.fromEntries(p.names.map((s) => [s, need(`l${k}.${s}`, H * n)])));
  return {
    cell: p.cell, height: H, width: W, hidden: n, names: p.names, label: p.label, keepRows: p.keepRows,
    temperature: p.temperature, seed: p.seed, order: p.order || 'rows',
    image: need('image', H * W), probs: need('probs', H * W), rowNll: need('rowNll', H), layers,
  };
}
