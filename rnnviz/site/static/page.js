// The page: controls, the URL and the step views (Generate, Complete, Compare cells), wired to
// model.js. Model math lives in model.js, colours in draw.js, settings in state.js, the shared views
// in view.js and group.js (the Gradio app draws with the same files), every colour, name and limit
// in rules.json (written by Python); this file only connects them.

import { choosePart, classPosterior, loadModel, sampleSeeded, whichOrder } from './model.js';
import { OrderChart } from './orders.js';
import { StepGroup } from './group.js';
import { paintCanvas, paintPrefix } from './draw.js';
import { InputError, binarize, mnistLike } from './inputs.js';
import { loadRules, rules } from './rules.js';
import { TABS, digitChoices, maxSeed, readQuery, writeQuery } from './state.js';
import { decodeTrace } from './trace.js';
import { StepView } from './view.js';

const $ = (id) => document.getElementById(id);
const page = { manifest: null, models: new Map(), entries: new Map(), gen: null, comp: null, cmp: null, settings: null,
               trace: null, drew: null, orders: null, completions: [], timings: {}, notes: [] };

// ---- notes and text (metadata is only ever written as text) -----------------------------------
function showNotes(notes) {
  const box = $('note');
  page.notes = notes.slice();
  box.replaceChildren(...notes.map((n) => Object.assign(document.createElement('div'), { textContent: n })));
  box.hidden = notes.length === 0;
}

function richText(node, parts) {  // parts: strings, or [text] for bold
  node.replaceChildren(...parts.map((p) => (Array.isArray(p) ? Object.assign(document.createElement('b'), { textContent: p[0] }) : p)));
}

const fmtTemp = (t) => String(Math.round(t * 1000) / 1000);

function modelSummary(entry) {  // views.model_summary
  if (entry.mixture) return mixtureSummary(entry);
  const c = entry.config, m = entry.metrics || {}, parts = [[entry.name], `: ${c.cell.toUpperCase()}, ${c.layers} \u00d7 ${c.hidden} units`];
  if (c.order && c.order !== 'rows') parts.push(` \u00b7 writes ${rules().orderNames[c.order]}`);
  if (m.parameters) parts.push(` \u00b7 ${(m.parameters / 1e6).toFixed(2)} M parameters`);
  if (m.test_nll !== undefined) parts.push(` \u00b7 test NLL ${m.test_nll.toFixed(2)} nats` + (m.test_nll_protocol ? ` (${m.test_nll_protocol})` : ''));
  if (m.dataset) parts.push(` \u00b7 trained on ${m.dataset}`);
  if (m.train_seconds) parts.push(` \u00b7 ${Math.round(m.train_seconds / 60)} min, ${Math.round(m.step || 0)} steps`);
  return parts;
}

function mixtureSummary(entry) {
  const m = entry.metrics || {}, orders = [...new Set(entry.parts.map((p) => p.config.order || 'rows'))];
  return [[entry.name], `: the exact equal mixture of ${entry.parts.length} models in ${orders.length} scan orders ` +
    `(${orders.join(', ')}); each digit is written by one part, drawn from the seed`,
    ...(typeof m.test_nll === 'number' ? [` \u00b7 test NLL ${m.test_nll.toFixed(2)} nats`] : [])];
}

function traceSummary(tr, name, seed) {  // views.trace_summary
  const what = tr.keepRows ? 'completion' : 'sample';
  const label = tr.label === null ? ['unconditional'] : ['digit ', [String(tr.label)]];
  const extra = tr.keepRows ? `, first ${tr.keepRows} rows kept` : '';
  const nll = tr.rowNll.reduce((a, b) => a + b, 0);
  return [[name], `: ${what} of `, ...label, `${extra}, temperature ${fmtTemp(tr.temperature)}, seed ${seed}. ` +
          `NLL ${nll.toFixed(1)} nats (\u2212log p(image | digit) under the model, temperature 1).`];
}

// ---- models ---------------------------------------------------------------------------------
async function weights(entry) {
  const r = await fetch(entry.file);
  if (!r.ok) throw new Error(`could not load ${entry.file} (HTTP ${r.status})`);
  return loadModel(entry, await r.arrayBuffer());
}

/** The model ``name``, loaded once; a mixture is {name, mixture: true, config, parts: [models]}. */
async function model(name) {
  if (!page.models.has(name)) {
    const entry = page.entries.get(name);
    page.models.set(name, entry.mixture
      ? { name, mixture: true, config: entry.config, parts: await Promise.all(entry.parts.map(weights)) }
      : await weights(entry));
  }
  return page.models.get(name);
}

const ctx = () => ({
  models: [...page.entries.keys()], defaultModel: page.manifest.default,
  steps: (m) => page.entries.get(m).config.height, conditional: (m) => page.entries.get(m).config.num_classes > 0,
});

// ---- Generate --------------------------------------------------------------------------------
// Generate and Compare cells share one digit, seed and temperature (one link holds them): each has
// its own controls, ids prefixed by ``p`` ('' for Generate, 'cmp_' for Compare cells).
function readControls(p = '') {
  const s = page.settings;
  const digit = document.querySelector(`#${p}digit input:checked`);
  s.digit = digit ? digit.value : s.digit;
  const seed = Number($(`${p}seed`).value), MAX_SEED = maxSeed();
  if (!(Number.isSafeInteger(seed) && seed >= 0 && seed <= MAX_SEED)) {
    const fixed = Math.min(MAX_SEED, Math.max(0, Math.round(Number.isFinite(seed) ? seed : 0)));
    showNotes([`seed ${JSON.stringify($(`${p}seed`).value.slice(0, 20))} is not a whole number in [0, ${MAX_SEED}]; using ${fixed}`]);
    s.seed = fixed;
  } else s.seed = seed;
  s.temperature = Number($(`${p}temperature`).value);
  writeControls();
}

function writeControls() {
  const s = page.settings, cond = ctx().conditional(s.model);
  for (const p of ['', 'cmp_']) {
    for (const input of document.querySelectorAll(`#${p}digit input`)) {
      input.checked = input.value === s.digit;
      input.disabled = p === '' && !cond && input.value !== 'any';  // Compare skips such models instead
    }
    $(`${p}temperature`).value = String(s.temperature);
    $(`${p}temperature_value`).textContent = fmtTemp(s.temperature);
    $(`${p}seed`).value = String(s.seed);
  }
  $('checkpoint').value = s.model;
  richText($('model_info'), modelSummary(page.entries.get(s.model)));
}

/** What a view was drawn with: a view whose key is not the current one is redrawn when shown. */
const drawnWith = (withModel) => { const s = page.settings; return JSON.stringify([withModel ? s.model : '', s.digit, s.seed, s.temperature]); };

async function generate(step = null) {  // null: the last step, the whole image drawn
  const s = page.settings, m = await model(s.model);
  const t0 = performance.now();
  const digit = s.digit === 'any' || !m.config.num_classes ? null : Number(s.digit);
  // a mixture's digit is written by one part, drawn from the seed (Mixture.sample)
  const drew = m.mixture ? choosePart(m.parts.length, s.seed) : null, writer = m.mixture ? m.parts[drew] : m;
  const [trace] = sampleSeeded(writer, { n: 1, digit, seed: s.seed, temperature: s.temperature });
  const t1 = performance.now();
  page.trace = trace;
  page.drew = m.mixture ? { mixture: m.name, part: drew } : null;
  page.genKey = drawnWith(true);
  page.gen.load(trace, writer.name, step);
  const summary = traceSummary(trace, writer.name, s.seed);
  if (m.mixture) {
    summary.unshift([m.name], ` drew part ${drew + 1} of ${m.parts.length} from the seed: `, [writer.name],
      `, which writes ${rules().orderNames[writer.order]}. `);
  }
  richText($('gen_summary'), summary);
  page.timings.sample = t1 - t0;
  page.timings.generate = performance.now() - t0;
  updateURL();
  if (page.orders && !page.orders.root.hidden) setTimeout(() => showOrders().catch((e) => showNotes([String(e.message || e)])), 0);
}

// ---- Which order? ---------------------------------------------------------------------------
/** The first mixture the site holds: its parts score the digit on screen. */
const mixtureName = () => [...page.entries.values()].find((e) => e.mixture)?.name ?? null;

/** Each order's NLL of the digit on screen, line by line (model.js whichOrder, in the browser). */
async function showOrders() {
  const name = mixtureName();
  if (!name || !page.trace) return;
  const button = $('which_order'), label = button.textContent;
  button.disabled = true;  // loading the parts and scoring the digit with each takes a moment
  button.textContent = page.models.has(name) ? 'Scoring each order\u2026' : 'Loading the orders\u2026';
  try {
    await computeOrders(name);
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

async function computeOrders(name) {
  const mix = await model(name);
  await new Promise((done) => requestAnimationFrame(() => setTimeout(done, 0)));  // paint the button first
  const t0 = performance.now();
  const data = whichOrder(mix.parts, page.trace.image);
  data.height = page.trace.height; data.width = page.trace.width;
  data.drew = page.drew && page.drew.mixture === name ? page.drew.part : null;
  const tr = page.trace, writer = data.drew !== null ? mix.parts[data.drew].name : page.settings.model;
  data.subject = `${writer}'s ${tr.label === null ? 'unconditional digit' : `digit ${tr.label}`}, seed ${tr.seed}`;
  page.orders.load(data);
  page.timings.whichOrder = performance.now() - t0;
}

// ---- Compare cells -------------------------------------------------------------------------------
/** Every exported model with the page's digit, seed and temperature (as the app's Compare cells:
 *  a model that is not class-conditional is skipped when a digit is asked for). */
async function compare(step = null) {
  const s = page.settings, t0 = performance.now();
  const loaded = await Promise.all([...page.entries.values()].filter((e) => !e.mixture).map((e) => model(e.name)));
  const t1 = performance.now();
  const columns = loaded.map((m) => {
    const entry = page.entries.get(m.name);
    if (s.digit !== 'any' && !m.config.num_classes) {
      return { entry, skipped: `${m.name} is not class-conditional (it cannot be asked for a digit): choose digit 'any' to include it.` };
    }
    const digit = s.digit === 'any' ? null : Number(s.digit);
    return { entry, trace: sampleSeeded(m, { n: 1, digit, seed: s.seed, temperature: s.temperature })[0] };
  });
  page.cmpKey = drawnWith(false);
  page.cmp.load(columns, step);
  const drawn = columns.filter((c) => c.trace).length;
  const label = s.digit === 'any' ? ['any digit (drawn from the seed)'] : ['digit ', [s.digit]];
  richText($('cmp_summary'), [`${drawn} model${drawn === 1 ? '' : 's'}, `, ...label, `, seed ${s.seed}, temperature ${fmtTemp(s.temperature)}. ` +
    'Scrub or press Play: every column shows the same step.']);
  page.timings.compareWeights = t1 - t0;
  page.timings.compare = performance.now() - t1;
  updateURL();
}

let urlTimer = null;
function viewQuery() {
  const s = page.settings;
  return writeQuery({ ...s, t: page.tab === 'compare' ? page.cmp.player.step : page.gen.step, tab: page.tab });
}
function updateURL() {  // debounced: a drag of the slider makes one history entry, not hundreds
  clearTimeout(urlTimer);
  urlTimer = setTimeout(() => {
    const q = viewQuery();
    if (q !== location.search) history.replaceState(null, '', q);
    $('link').value = $('cmp_link').value = location.href.split('?')[0] + q;
  }, 150);
}

// ---- Complete --------------------------------------------------------------------------------
const sketch = { ctx: null, drawing: false, last: null, dirty: false };
const source = { kind: 'drawing', index: null };  // what Complete completes: the drawing or a test digit

function setupSketch() {
  const c = $('sketch'), g = c.getContext('2d', { willReadFrequently: true });
  sketch.ctx = g;
  const clear = () => { g.fillStyle = '#000'; g.fillRect(0, 0, c.width, c.height); sketch.dirty = false; preview(); };
  clear();
  const at = (ev) => { const r = c.getBoundingClientRect(); return [(ev.clientX - r.left) * c.width / r.width, (ev.clientY - r.top) * c.height / r.height]; };
  const line = (a, b) => {
    g.strokeStyle = '#fff'; g.lineWidth = 18; g.lineCap = 'round'; g.lineJoin = 'round';
    g.beginPath(); g.moveTo(a[0], a[1]); g.lineTo(b[0], b[1]); g.stroke();
  };
  c.addEventListener('pointerdown', (ev) => { c.setPointerCapture(ev.pointerId); sketch.drawing = true; pickTest(null); sketch.last = at(ev); line(sketch.last, sketch.last); sketch.dirty = true; });
  c.addEventListener('pointermove', (ev) => { if (!sketch.drawing) return; const p = at(ev); line(sketch.last, p); sketch.last = p; });
  const end = () => { if (sketch.drawing) { sketch.drawing = false; preview(); } };
  c.addEventListener('pointerup', end);
  c.addEventListener('pointercancel', end);
  $('clear_sketch').addEventListener('click', () => { pickTest(null); clear(); });
}

/** A test digit (or none: the drawing) is what Complete reads. */
function pickTest(k) {
  source.kind = k === null ? 'drawing' : 'test';
  source.index = k;
  for (const b of document.querySelectorAll('#test_gallery button')) b.classList.toggle('rv-selected', Number(b.dataset.index) === k);
  if (k !== null) preview();
}

async function setupGallery() {
  const r = await fetch('digits.json');
  if (!r.ok) return;  // a site without test digits: drawing only
  const g = await r.json(), [n, H, W] = g.shape, raw = Uint8Array.from(atob(g.images), (ch) => ch.charCodeAt(0));
  page.gallery = { labels: g.labels, images: Array.from({ length: n }, (_, k) => raw.subarray(k * H * W, (k + 1) * H * W)) };
  $('test_gallery').replaceChildren(...page.gallery.images.map((img, k) => {
    const c = Object.assign(document.createElement('canvas'), { width: W, height: H, className: 'rv-px' });
    const ctx2 = c.getContext('2d'), id = ctx2.createImageData(W, H);
    for (let q = 0; q < H * W; q++) id.data.set([img[q], img[q], img[q], 255], 4 * q);
    ctx2.putImageData(id, 0, 0);
    const b = Object.assign(document.createElement('button'), { title: `test digit #${k}: a ${g.labels[k]}` });
    b.dataset.index = String(k);
    b.append(c);
    b.addEventListener('click', () => pickTest(k));
    return b;
  }));
}

/** What Complete reads, binarized as the app does (seed 0): a test digit, or the drawing made
 *  MNIST-like. */
function prefixBinary() {
  if (source.kind === 'test') return binarize(page.gallery.images[source.index], 0);
  return drawingBinary();
}

/** The drawing as the model reads it: MNIST-like gray, then binarized as the app does (seed 0). */
function drawingBinary() {
  const c = $('sketch'), px = sketch.ctx.getImageData(0, 0, c.width, c.height).data;
  const ink = new Float32Array(c.width * c.height);
  for (let k = 0; k < ink.length; k++) ink[k] = px[4 * k] / 255;
  return binarize(mnistLike(ink, c.height, c.width), 0);
}

function preview() {
  const p = $('preview'), g = p.getContext('2d'), img = g.createImageData(28, 28);
  let binary;
  try {
    binary = prefixBinary();
  } catch {
    for (let k = 0; k < 28 * 28; k++) img.data.set([...rules().canvas.future, 255], 4 * k);
    g.putImageData(img, 0, 0);
    return null;
  }
  g.putImageData(paintPrefix(img, binary, 28, 28, Number($('keep_rows').value)), 0, 0);
  return binary;
}

async function complete() {
  const name = page.settings.model;
  if (page.entries.get(name).mixture) {
    showNotes([`${name} is a mixture of scan orders: each part would keep a different part of the image. Pick one of its models to complete a digit.`]);
    return;
  }
  const m = await model(name), C = m.config.num_classes;
  let prefix;
  try {
    prefix = prefixBinary();
  } catch (e) {
    if (e instanceof InputError) { showNotes([e.message]); return; }
    throw e;
  }
  const keep = Number($('keep_rows').value), n = Number($('n_completions').value);
  const temperature = Number($('comp_temperature').value);
  let seed = Number($('comp_seed').value);
  if (!(Number.isSafeInteger(seed) && seed >= 0 && seed <= maxSeed())) { seed = 0; $('comp_seed').value = '0'; }
  const choice = $('comp_digit').value;
  let digit = null, how;
  if (choice === 'auto') {
    if (!C || keep === 0) how = C ? 'any digit (nothing kept to guess from)' : 'unconditional';
    else {
      const post = classPosterior(m, prefix, keep);
      digit = post.indexOf(Math.max(...post));
      how = `digit ${digit}: the model's best guess from the kept rows (p = ${post[digit].toFixed(2)})`;
      if (source.kind === 'test') how += `; the test image is a ${page.gallery.labels[source.index]}`;
    }
  } else if (choice === 'any' || !C) how = 'any digit (drawn at random per completion)';
  else { digit = Number(choice); how = `digit ${digit}`; }
  const traces = sampleSeeded(m, { n, digit, seed, temperature, prefix, keepRows: keep });
  page.completions = traces;
  const gallery = $('completions');
  gallery.replaceChildren(...traces.map((tr, k) => {
    const c = document.createElement('canvas');
    c.width = tr.width; c.height = tr.height; c.className = 'rv-px';
    const g = c.getContext('2d');
    g.putImageData(paintCanvas(g.createImageData(tr.width, tr.height), tr, tr.height), 0, 0);
    const b = document.createElement('button');
    b.className = 'rv-thumb'; b.dataset.index = String(k);
    b.append(c, Object.assign(document.createElement('span'), { textContent: `#${k + 1}: ${tr.label}` }));
    b.addEventListener('click', () => openCompletion(k));
    return b;
  }));
  richText($('complete_note'), [`${traces.length} completions of the first ${keep} rows by `, [name], `, as ${how}. Click one to step through it below.`]);
  showPrefix(prefix, keep);
  openCompletion(0);
  page.compSeed = seed;
}

function showPrefix(prefix, keep) {
  const g = $('preview').getContext('2d');
  g.putImageData(paintPrefix(g.createImageData(28, 28), prefix, 28, 28, keep), 0, 0);
}

function openCompletion(k) {
  for (const b of document.querySelectorAll('#completions .rv-thumb')) b.classList.toggle('rv-selected', Number(b.dataset.index) === k);
  page.compIndex = k;
  page.comp.load(page.completions[k], page.settings.model, null);
}

// ---- tabs, controls, start ----------------------------------------------------------------
/** Show ``tab``; its view is redrawn first if the settings changed on another tab. */
async function setTab(tab) {
  page.tab = tab;
  for (const v of [page.gen, page.comp, page.cmp]) v.stop();  // Play runs on the tab it was pressed on only
  for (const b of document.querySelectorAll('.rv-tabs [role=tab]')) b.setAttribute('aria-selected', String(b.dataset.tab === tab));
  for (const t of TABS) $(`panel_${t}`).hidden = tab !== t;
  $('model_row').hidden = tab === 'compare';  // Compare cells shows every model
  if (tab === 'generate' && page.genKey !== drawnWith(true)) await generate();
  if (tab === 'compare' && page.cmpKey !== drawnWith(false)) await compare();
  updateURL();
}

function buildControls() {
  const digits = $('digit');
  for (const [box, name] of [[digits, 'digit'], [$('cmp_digit'), 'cmp_digit']]) {
    for (const d of digitChoices()) {
      const label = document.createElement('label');
      const input = Object.assign(document.createElement('input'), { type: 'radio', name, value: d });
      label.append(input, d);
      box.append(label);
    }
  }
  const sel = $('checkpoint');
  for (const e of page.entries.values()) {
    const nll = e.metrics && e.metrics.test_nll !== undefined ? `, NLL ${e.metrics.test_nll.toFixed(1)}` : '';
    const what = e.mixture ? `mixture of ${e.parts.length} scan orders` : `${e.config.cell.toUpperCase()} ${e.config.layers}\u00d7${e.config.hidden}`;
    sel.append(Object.assign(document.createElement('option'), { value: e.name, textContent: `${e.name}: ${what}${nll}` }));
  }
  $('which_order').hidden = !mixtureName();
  const compDigit = $('comp_digit');
  for (const d of ['auto', ...digitChoices()]) compDigit.append(Object.assign(document.createElement('option'), { value: d, textContent: d }));
  const run = (fn) => (...a) => Promise.resolve(fn(...a)).catch((e) => showNotes([String(e && e.message || e)]));
  $('which_order').addEventListener('click', run(showOrders));
  $('generate').addEventListener('click', run(() => { readControls(); return generate(); }));
  $('dice').addEventListener('click', run(() => {
    readControls();
    page.settings.seed = Math.floor(Math.random() * 100000);  // as the app's New seed: 0-99,999
    writeControls();
    return generate();
  }));
  digits.addEventListener('change', run(() => { readControls(); return generate(); }));
  $('temperature').addEventListener('input', () => {
    page.settings.temperature = Number($('temperature').value);
    $('temperature_value').textContent = fmtTemp(page.settings.temperature);
  });
  $('temperature').addEventListener('change', run(() => { readControls(); return generate(); }));
  sel.addEventListener('change', run(() => {  // another model redraws the same digit and seed
    page.settings.model = sel.value;
    if (!ctx().conditional(sel.value)) page.settings.digit = 'any';
    writeControls();
    return generate();
  }));
  for (const [button, link] of [['copy_link', 'link'], ['cmp_copy_link', 'cmp_link']]) {
    $(button).addEventListener('click', run(async () => {
      const url = location.href.split('?')[0] + viewQuery();
      $(link).value = url;
      $(link).select();
      try { await navigator.clipboard.writeText(url); $(button).textContent = 'Link copied'; } catch { $(button).textContent = 'Copy the link below'; }
      setTimeout(() => { $(button).textContent = 'Copy link'; }, 1500);
    }));
  }
  // Compare cells: its controls change the shared settings and redraw every column
  const recompare = run(() => { readControls('cmp_'); return compare(); });
  $('cmp_compare').addEventListener('click', recompare);
  $('cmp_digit').addEventListener('change', recompare);
  $('cmp_temperature').addEventListener('input', () => { $('cmp_temperature_value').textContent = fmtTemp(Number($('cmp_temperature').value)); });
  $('cmp_temperature').addEventListener('change', recompare);
  $('cmp_dice').addEventListener('click', run(() => {
    readControls('cmp_');
    page.settings.seed = Math.floor(Math.random() * 100000);  // as the app's New seed: 0-99,999
    writeControls();
    return compare();
  }));
  for (const b of document.querySelectorAll('.rv-tabs [role=tab]')) b.addEventListener('click', run(() => setTab(b.dataset.tab)));
  for (const [id, out] of [['keep_rows', 'keep_value'], ['n_completions', 'n_value'], ['comp_temperature', 'comp_temperature_value']]) {
    $(id).addEventListener('input', () => { $(out).textContent = fmtTemp(Number($(id).value)); if (id === 'keep_rows') preview(); });
  }
  $('complete_btn').addEventListener('click', run(complete));
}

/** Every number input takes its range, step and default from the rules (as the app's widgets do). */
function applyLimits() {
  const lim = rules().limits;
  for (const [id, name] of [['temperature', 'temperature'], ['cmp_temperature', 'temperature'], ['comp_temperature', 'temperature'],
    ['seed', 'seed'], ['cmp_seed', 'seed'], ['comp_seed', 'seed'], ['keep_rows', 'keep_rows'], ['n_completions', 'completions']]) {
    const e = $(id), l = lim[name];
    if (!e || !l) continue;
    // the step first: a range input snaps its value to min + k * step as each is set
    e.step = String(l.step); e.min = String(l.lo); e.max = String(l.hi); e.value = String(l.default);
  }
}

async function start() {
  await loadRules('rules.json');
  applyLimits();
  const r = await fetch('models.json');
  if (!r.ok) throw new Error(`could not load models.json (HTTP ${r.status})`);
  page.manifest = await r.json();
  for (const e of page.manifest.models) page.entries.set(e.name, e);
  if (page.manifest.app_url && /^https?:\/\//.test(page.manifest.app_url)) {
    $('app_href').href = page.manifest.app_url;
    $('app_link').hidden = false;
  }
  const tooltip = $('tooltip');
  page.gen = new StepView('gen', { canvas: $('gen_view'), gates: $('gen_gates_col'), figure: $('gen_fig_slot') },
                          { onStep: updateURL, tooltip });
  page.comp = new StepView('comp', { canvas: $('comp_view'), gates: $('comp_gates_col'), figure: $('comp_fig_slot') },
                           { button: 'Complete', tooltip });
  page.cmp = new StepGroup($('cmp_view'), { prefix: 'cmp', onStep: updateURL, tooltip });
  page.orders = new OrderChart($('orders_slot'), { prefix: 'orders' });
  buildControls();
  setupSketch();
  await setupGallery();
  if (page.gallery) pickTest(Math.min(28, page.gallery.images.length - 1));  // the app's default test digit
  const { values, notes } = readQuery(location.search, ctx());
  page.settings = { model: values.model, digit: values.digit, seed: values.seed, temperature: values.temperature };
  writeControls();
  showNotes(notes);
  await generate(values.t);  // Generate is drawn on every start (window.rnnviz.state() reads it)
  if (values.tab === 'compare') await compare(values.t);
  await setTab(values.tab);
  page.timings.firstDigit = performance.now();
  document.body.dataset.ready = '1';
}

window.rnnviz = {
  /** The current Generate view (or ``which = 'comp'``: the completion being stepped through;
   *  ``'compare'``: Compare cells, its shared step and one snapshot per column). */
  state(which = 'gen') {
    if (which === 'compare') {
      const snap = page.cmp.snapshot(), s = page.settings || {};
      return snap && { digit: s.digit, seed: s.seed, temperature: s.temperature, tab: page.tab, notes: page.notes.slice(), ...snap };
    }
    const view = which === 'comp' ? page.comp : page.gen, snap = view.snapshot();
    const s = page.settings || {};
    return snap && { model: which === 'comp' ? page.settings.model : s.model, digit: s.digit, seed: which === 'comp' ? page.compSeed : s.seed,
                     temperature: s.temperature, tab: page.tab, notes: page.notes.slice(),
                     drew: which === 'comp' ? null : page.drew, ...snap };
  },
  /** The "which order?" view's numbers (null until shown). */
  orders: () => page.orders.snapshot(),
  showOrders: async () => { await showOrders(); return page.orders.snapshot(); },
  setStep: (t) => page.gen.player.go(t),
  timings: page.timings,
  generate: async (opts = {}) => { Object.assign(page.settings, opts); writeControls(); await generate(); return page.timings; },
  compare: async (opts = {}) => { Object.assign(page.settings, opts); writeControls(); await compare(); return page.timings; },
  setCompareStep: (t) => page.cmp.go(t),
  /** Show a trace the app's server sent (its payload JSON) in the Generate view: both hosts draw
   *  with the same modules, so the same trace must give the same pixels (tests). */
  showPayload: (json, step) => {
    const p = JSON.parse(json), c = p.columns[0];
    page.gen.load(decodeTrace(c.trace), c.entry.name, step, { layer: p.layer, unitOrder: c.unitOrder });
  },
};

start().catch((e) => { showNotes([`The page could not start: ${e && e.message || e}`]); });
