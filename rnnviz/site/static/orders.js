// "Which order?": for one digit, how surprised each scan order's model is by it, line by line. The
// parts of an exact mixture (rnnviz/mixture.py) each write the digit in their own order; this view
// shows each part's NLL and posterior p(order | digit), its NLL per line (one chart, x = the step in
// the part's own order), and where on the digit each order pays (a map per order: every pixel
// coloured by the NLL of the line it belongs to, one scale for all). Data in, DOM out: the numbers
// come from the app's server (Mixture.which_order) or the page's own math (model.js whichOrder).

import { colorAt, drawLines, fmt, lineOf, lut, maxOf, scaleOf } from './draw.js';
import { rules } from './rules.js';
import { bold, el } from './view.js';

const orderColor = (order) => rules().orderColors[order] || rules().otherColor;
const DASHES = [[], [6, 4], [2, 3], [6, 3, 2, 3]];  // a second part of one order: same colour, dashed

/** Per part: its dash (by how many parts of its order come before it) and a short label. */
function styles(parts) {
  const seen = {};
  return parts.map((p) => {
    const k = (seen[p.order] = (seen[p.order] ?? -1) + 1);
    const dup = parts.filter((q) => q.order === p.order).length > 1;
    return { dash: DASHES[k % DASHES.length], label: dup ? `${p.order} #${k + 1}` : p.order };
  });
}

/** A legend swatch: the line as drawn (colour and dash). */
function swatch(color, dash) {
  const c = el('canvas', { width: 26, height: 10, class: 'rv-orders-swatch' }), g = c.getContext('2d');
  g.strokeStyle = color; g.lineWidth = 2; g.setLineDash(dash);
  g.beginPath(); g.moveTo(1, 5); g.lineTo(25, 5); g.stroke();
  return c;
}

export class OrderChart {
  /** Builds the view inside ``root`` (id prefix ``prefix``). */
  constructor(root, { prefix = 'orders' } = {}) {
    this.summary = el('div', { class: 'rv-orders-summary', id: `${prefix}_summary` });
    this.legend = el('div', { class: 'rv-lines-legend rv-orders-legend', id: `${prefix}_legend` });
    this.chart = el('canvas', { class: 'rv-lines', width: 720, height: 180 });
    this.top = el('span', { class: 'rv-axis-top' });
    this.maps = el('div', { class: 'rv-orders-maps', id: `${prefix}_maps` });
    this.root = el('figure', { class: 'rv-fig rv-orders', id: prefix, hidden: '' },
      el('figcaption', { text: 'Which order? Each scan order\u2019s NLL of this digit, line by line in its own order' }),
      this.summary, this.legend,
      el('div', { class: 'rv-bars-wrap' }, el('span', { class: 'rv-axis-label', text: 'nats' }), this.top,
        el('div', { class: 'rv-bars-box' }, this.chart)),
      el('div', { class: 'rv-orders-caption', text: 'Where each order pays: every pixel coloured by the NLL of its line (one scale; brighter = more surprised)' }),
      this.maps);
    root.append(this.root);
    this.data = null;
  }

  /** Show ``data``: {nll, parts: [{name, order, nll, lineNll, posterior}], height, width, drew?,
   *  subject?} (``drew``: the index of the part the digit was sampled from, if it was; ``subject``:
   *  which digit this is, as text). */
  load(data) {
    this.data = data;
    const parts = data.parts, H = data.height, W = data.width;
    const best = parts.reduce((b, p, k) => (p.posterior > parts[b].posterior ? k : b), 0);
    const names = rules().orderNames;
    this.summary.replaceChildren(...(data.subject ? [`${data.subject}: `] : []), 'the mixture: ', bold(fmt(data.nll)), ' nats \u00b7 most likely order: ',
      bold(names[parts[best].order] || parts[best].order), ` (${Math.round(100 * parts[best].posterior)}%)`,
      ...(Number.isInteger(data.drew) ? [' \u00b7 the digit was drawn by ', bold(parts[data.drew].name)] : []));
    const rank = parts.map((_, k) => k).sort((a, b) => parts[a].nll - parts[b].nll), look = styles(parts);
    this.legend.replaceChildren(...rank.map((k) => {
      const p = parts[k];
      return el('span', { class: 'rv-legend-item', 'data-order': p.order, title: `${p.name}: ${names[p.order] || p.order}` },
        swatch(orderColor(p.order), look[k].dash), `${look[k].label}: `, bold(fmt(p.nll, 1)),
        ` nats \u00b7 ${(100 * p.posterior).toFixed(1)}%`);
    }));
    const series = parts.map((p, k) => ({ values: Array.from(p.lineNll), color: orderColor(p.order), dash: look[k].dash }));
    const yMax = maxOf(series.map((s) => s.values));
    this.top.textContent = fmt(yMax, 1);
    drawLines(this.chart.getContext('2d'), series, this.chart.width, this.chart.height, yMax);
    this.maps.replaceChildren(...parts.map((p, k) => this._map(p, look[k].label, H, W, yMax)));
    this.root.hidden = false;
  }

  _map(part, label, H, W, yMax) {
    const canvas = el('canvas', { width: W, height: H, class: 'rv-orders-map' });
    const ctx = canvas.getContext('2d'), img = ctx.createImageData(W, H), line = lineOf(part.order, H, W);
    const scale = { ...scaleOf('prob'), vmin: 0, vmax: yMax > 0 ? yMax : 1 }, table = lut(scale.anchors);
    for (let q = 0; q < H * W; q++) colorAt(img.data, 4 * q, part.lineNll[line[q]], scale, table);
    ctx.putImageData(img, 0, 0);
    return el('div', { class: 'rv-orders-cell', 'data-order': part.order, title: part.name },
      canvas, el('div', { class: 'rv-orders-name', style: `color:${orderColor(part.order)}`, text: label }));
  }

  /** What a test reads: the numbers shown. */
  snapshot() {
    if (!this.data) return null;
    return { nll: this.data.nll, drew: this.data.drew ?? null,
      parts: this.data.parts.map((p) => ({ name: p.name, order: p.order, nll: p.nll, posterior: p.posterior,
        lineNll: Array.from(p.lineNll) })) };
  }
}
