// The rules both front ends share, from Python's rnnviz/rules.py (palettes, colour scales, names and
// descriptions, limits, URL settings): the static page loads rules.json (written beside this file by
// `python -m rnnviz.site`), the Gradio app puts the same JSON in the page (window.rnnvizRules).
// Nothing here is a copy: every module reads the table through rules().

let current = null;

/** Use ``table`` (the parsed rules JSON) from now on. */
export function useRules(table) {
  if (!table || typeof table !== 'object' || !table.palettes || !table.stateNames) throw new Error('not an rnnviz rules table');
  current = table;
  if (typeof document !== 'undefined') {  // the colours view.css takes from the rules
    document.documentElement.style.setProperty('--rv-row-mark', table.canvas.rowMark);
    document.documentElement.style.setProperty('--rv-muted', table.canvas.barKept);
  }
  return table;
}

/** The rules in use (the app's window.rnnvizRules when nothing was set). */
export function rules() {
  if (current) return current;
  if (typeof window !== 'undefined' && window.rnnvizRules) return useRules(window.rnnvizRules);
  throw new Error('the rules are not loaded (useRules)');
}

/** Fetch ``url`` (rules.json) and use it. */
export async function loadRules(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`could not load ${url} (HTTP ${r.status})`);
  return useRules(await r.json());
}
