// The explorer's own JavaScript, put in the page's <head> (ui.PAGE_HEAD) after the shared rules
// (window.rnnvizRules). The step views themselves are the shared ES modules (rnnviz/site/static,
// mounted by gradio.js); this file only opens a clicked unit in the Units tab.
//
// Clicking a unit (a cell of a step view's grids or a row of its units x time panels) calls this:
// the unit, layer and step view go into that tab's hidden #units_pick box, whose change runs the
// inspector (the tab is opened first: its content is drawn only once it is shown).
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
