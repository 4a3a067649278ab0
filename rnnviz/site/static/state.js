// The page's settings and the URL. What a link may hold, in which order, with which default and
// limits, is the rules' URL table (rnnviz/rules.py, read by the app's links.py too); this file only
// says how the static page reads each kind. A value that is missing takes the default; one that is
// bad or hostile takes the default too, with a note for the page (never an error). Pure: no page, no
// model.

import { rules } from './rules.js';

export const TABS = ['generate', 'complete', 'compare'];  // the static page's tabs
const PAGE_SETTINGS = ['model', 'digit', 'seed', 'temperature', 't', 'tab'];  // what the static page's links hold
export const maxSeed = () => rules().seedMax;
export const digitChoices = () => rules().digits;

const shown = (v) => JSON.stringify(String(v).slice(0, 40));

function integer(text, lo, hi) {
  if (!/^\s*\d{1,16}\s*$/.test(text)) return null;
  const v = Number(text);
  return Number.isSafeInteger(v) && v >= lo && v <= hi ? v : null;
}

function decimal(text, lo, hi) {
  if (!/^\s*\d{0,3}\.?\d{1,6}\s*$/.test(text)) return null;
  const x = Number(text);
  return Number.isFinite(x) && x >= lo && x <= hi ? x : null;
}

/** How each kind of URL setting (rules().url.settings[k].kind) is read. ctx: {models, defaultModel,
 *  steps(model), conditional(model)}; s: the settings read so far. Each gives {default, parse, help}. */
const KINDS = {
  model: () => ({
    default: (ctx) => ctx.defaultModel,
    parse: (v, ctx) => (ctx.models.includes(v) ? v : null),
    help: (ctx) => `one of ${ctx.models.join(', ')}`,
  }),
  digit: (d) => ({
    default: (ctx, s) => (ctx.conditional(s.model) ? d : 'any'),
    parse: (v, ctx, s) => {
      const x = String(v).trim().toLowerCase();
      if (x === 'any') return 'any';
      return ctx.conditional(s.model) && digitChoices().includes(x) ? x : null;
    },
    help: (ctx, s) => (ctx.conditional(s.model) ? "'any' or 0-9" : "'any' (this model is unconditional)"),
  }),
  limit: (d, name, limit) => {
    const l = rules().limits[limit];
    return {
      default: () => d,
      parse: (v) => (l.integer ? integer(v, l.lo, l.hi) : decimal(v, l.lo, l.hi)),
      help: () => `${l.integer ? 'a whole number' : 'a number'} in [${l.lo}, ${l.hi}]`,
    };
  },
  step: (d) => ({
    default: (ctx, s) => (d === null ? ctx.steps(s.model) - 1 : d),  // none: the last step
    parse: (v, ctx, s) => integer(v, 0, ctx.steps(s.model) - 1),
    help: (ctx, s) => `a step in [0, ${ctx.steps(s.model) - 1}]`,
  }),
  tab: (d) => ({ default: () => d, parse: (v) => (TABS.includes(v) ? v : null), help: () => `one of ${TABS.join(', ')}` }),
};

/** name -> {default(ctx, s), parse(text, ctx, s) -> value or null, help(ctx, s)}, in the URL's order:
 *  the settings of the static page's tabs (the app's Intervene, Units, ... settings are not read here). */
export function settings() {
  return Object.fromEntries(rules().url.settings.filter(({ name }) => PAGE_SETTINGS.includes(name))
    .map(({ name, kind, default: d, limit }) => [name, KINDS[kind](d, name, limit)]));
}

/** Settings from a query string. Returns {values, notes}: every setting has a value; each note
 *  says which value was refused and what is used instead. */
export function readQuery(search, ctx) {
  let params;
  try {
    params = new URLSearchParams(String(search || '').slice(0, 2000));
  } catch {
    params = new URLSearchParams();
  }
  const values = {}, notes = [], max = rules().url.maxChars;
  for (const [name, s] of Object.entries(settings())) {
    const fallback = s.default(ctx, values);
    if (!params.has(name)) { values[name] = fallback; continue; }
    const raw = params.get(name), v = raw.length > max ? null : s.parse(raw, ctx, values);
    if (v === null) {
      values[name] = fallback;
      notes.push(`${name} ${shown(raw)} is not ${s.help(ctx, values)}; using ${fallback}`);
    } else values[name] = v;
  }
  return { values, notes };
}

/** The query string of a view: every setting, in the table's order. */
export function writeQuery(values) {
  const p = new URLSearchParams();
  for (const { name } of rules().url.settings) if (values[name] !== undefined) p.set(name, String(values[name]));
  return '?' + p.toString();
}
