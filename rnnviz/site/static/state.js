// The page's settings and the URL: one table of what a link holds, each with its default and its
// check. A value that is missing takes the default; one that is bad or hostile takes the default
// too, with a note for the page (never an error). Pure: no page, no model.

export const MAX_SEED = 2 ** 31 - 1;
export const DIGIT_CHOICES = ['any', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
export const TABS = ['generate', 'complete', 'compare'];

const shown = (v) => JSON.stringify(String(v).slice(0, 40));

function integer(text, lo, hi) {
  if (!/^\s*\d{1,16}\s*$/.test(text)) return null;
  const v = Number(text);
  return Number.isSafeInteger(v) && v >= lo && v <= hi ? v : null;
}

/** name -> {default(ctx), parse(text, ctx) -> value or null, help}. ctx: {models, defaultModel,
 *  steps(model), conditional(model)}. Order = the order in the URL. */
export const SETTINGS = {
  model: {
    default: (ctx) => ctx.defaultModel,
    parse: (v, ctx) => (ctx.models.includes(v) ? v : null),
    help: (ctx) => `one of ${ctx.models.join(', ')}`,
  },
  digit: {
    default: (ctx, s) => (ctx.conditional(s.model) ? '7' : 'any'),
    parse: (v, ctx, s) => {
      const d = String(v).trim().toLowerCase();
      if (d === 'any') return 'any';
      return ctx.conditional(s.model) && /^[0-9]$/.test(d) ? d : null;
    },
    help: (ctx, s) => (ctx.conditional(s.model) ? "'any' or 0-9" : "'any' (this model is unconditional)"),
  },
  seed: { default: () => 0, parse: (v) => integer(v, 0, MAX_SEED), help: () => `a whole number in [0, ${MAX_SEED}]` },
  temperature: {
    default: () => 1,
    parse: (v) => {
      if (!/^\s*\d*\.?\d+\s*$/.test(v)) return null;
      const x = Number(v);
      return Number.isFinite(x) && x >= 0 && x <= 2 ? x : null;
    },
    help: () => 'a number in [0, 2]',
  },
  t: {
    default: () => 0,
    parse: (v, ctx, s) => integer(v, 0, ctx.steps(s.model) - 1),
    help: (ctx, s) => `a step in [0, ${ctx.steps(s.model) - 1}]`,
  },
  tab: { default: () => 'generate', parse: (v) => (TABS.includes(v) ? v : null), help: () => `one of ${TABS.join(', ')}` },
};

/** Settings from a query string. Returns {values, notes}: every setting has a value; each note
 *  says which value was refused and what is used instead. */
export function readQuery(search, ctx) {
  let params;
  try {
    params = new URLSearchParams(String(search || '').slice(0, 2000));
  } catch {
    params = new URLSearchParams();
  }
  const values = {}, notes = [];
  for (const [name, s] of Object.entries(SETTINGS)) {
    const fallback = s.default(ctx, values);
    if (!params.has(name)) { values[name] = fallback; continue; }
    const raw = params.get(name), v = s.parse(raw, ctx, values);
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
  for (const name of Object.keys(SETTINGS)) if (values[name] !== undefined) p.set(name, String(values[name]));
  return '?' + p.toString();
}
