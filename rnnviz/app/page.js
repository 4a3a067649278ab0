// The explorer's own JavaScript, put in the page's <head> (stepview.CURSOR_JS): it moves the
// figures' step cursor in the browser (no round trip on a scrub) and opens a clicked unit in
// the Units tab. Plain browser code; Gradio and plotly are already on the page.
window.rnnvizCursor = function (id, t) {
  const gd = document.querySelector('#' + id + ' .js-plotly-plot');
  if (!gd || !window.Plotly || !gd.layout || !gd.layout.shapes) return;
  const u = {};
  gd.layout.shapes.forEach(function (s, k) {
    if (s.name === 'cursor') { u['shapes[' + k + '].x0'] = t; u['shapes[' + k + '].x1'] = t; }
    else if (s.name === 'band') { u['shapes[' + k + '].x0'] = t - 0.5; u['shapes[' + k + '].x1'] = t + 0.5; }
  });
  window.Plotly.relayout(gd, u);
};
// Clicking a unit (a cell of a step view's grids or a row of its units x time figure) opens it in
// the Units tab: the unit, layer and step view go into that tab's hidden #units_pick box, whose
// change runs the inspector (the tab is opened first: its content is drawn only once it is shown).
window.rnnvizInspect = function (unit, layer, view) {
  const tab = [...document.querySelectorAll('button[role=tab]')].find(b => b.textContent.trim() === 'Units');
  if (tab) tab.click();
  let tries = 0;
  const put = function () {
    const box = document.querySelector('#units_pick textarea, #units_pick input');
    if (!box) { if (tries++ < 50) setTimeout(put, 100); return; }
    const setter = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(box), 'value').set;
    setter.call(box, unit + ':' + layer + ':' + view + ':' + Date.now());  // always new: change fires
    box.dispatchEvent(new Event('input', {bubbles: true}));
  };
  put();
};
document.addEventListener('click', function (e) {
  const img = e.target.closest && e.target.closest('.rv-inspectable .rv-gate img');
  if (!img) return;
  const wrap = img.closest('.rv-gates-wrap'), r = img.getBoundingClientRect();
  const cols = Number(wrap.dataset.cols), rows = Math.round(cols * r.height / r.width);
  const k = Math.floor((e.clientY - r.top) / r.height * rows) * cols + Math.floor((e.clientX - r.left) / r.width * cols);
  const order = wrap.dataset.order ? wrap.dataset.order.split(' ').map(Number) : null;
  const unit = order ? order[k] : k;
  const view = img.closest('.rv-inspectable').id.replace(/_gates$/, '');
  if (unit !== undefined && unit >= 0) window.rnnvizInspect(unit, Number(wrap.dataset.layer || 0), view);
});
new MutationObserver(function () {  // plotly figures are re-mounted on every update: hook each new one
  document.querySelectorAll('.rv-inspectable .js-plotly-plot').forEach(function (gd) {
    if (gd.rvHooked || !gd.on) return;
    gd.rvHooked = true;
    gd.on('plotly_click', function (ev) {
      const p = ev.points && ev.points[0];
      if (!p || p.data.type !== 'heatmap') return;
      const view = gd.closest('.rv-inspectable').id.replace(/_fig$/, '');
      const wrap = document.querySelector('#' + view + '_gates .rv-gates-wrap');
      window.rnnvizInspect(Number(p.y), Number(wrap && wrap.dataset.layer || 0), view);
    });
  });
}).observe(document.documentElement, {childList: true, subtree: true});
