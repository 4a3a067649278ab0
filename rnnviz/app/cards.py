"""HTML cards of the step views, sent on every scrub, and the Markdown lines several tabs share.

Nothing here holds state, touches Gradio or runs a model. The cards are small: native-resolution
PNGs inlined as data URIs (``rnnviz.render``) and scaled up by the browser with
``image-rendering: pixelated`` (crisp, a few KB per step, no temporary files).

- ``canvas_html``: the canvas at a step, the current row outlined, the finished image, a legend;
- ``unit_card``: one vector of units as a grid with its colour bar (every gate card, and the
  change cards of Intervene);
- ``gates_html``: every gate and state of a layer at a step;
- columns of linked views (Compare cells, Intervene): ``column_title_html``, ``step_column_html``.
"""

from __future__ import annotations

import html

import numpy as np

from ..cells import DESCRIPTIONS
from ..render import (INK, KEPT_INK, PROB_SCALE, SIGMOID, Scale, canvas_rgb, colorize, data_uri, image_rgb,
                      state_scale, unit_grid_shape, units_to_grid)
from ..trace import Trace

CELL_COLORS = {"lstm": "#f97316", "gru": "#38bdf8", "rnn": "#a3e635"}
COLUMN_STATES = {"lstm": ("f", "c", "h"), "gru": ("z", "h"), "rnn": ("h",)}  # compact columns: memory + h
EMPTY_GATES = '<div class="rv-gates-head">The gates and states of the recurrent layer appear here.</div>'


def fmt(x: float, digits: int = 2) -> str:
    """A number with a real minus sign."""
    return f"{x:.{digits}f}".replace("-", "\u2212")


def empty_canvas(button: str = "Generate") -> str:
    """The canvas before anything was drawn: a dark square and which button to press."""
    return ('<div class="rv-canvas-wrap"><div class="rv-canvas-col"><div class="rv-canvas"></div></div>'
            f'<div class="rv-side">Press <b>{html.escape(button)}</b>.</div></div>')


def canvas_html(trace: Trace, step: int) -> str:
    """The canvas at ``step`` (large, crisp, the current row outlined), the finished image, a
    legend and a caption with the row's NLL."""
    H = trace.steps
    step = int(np.clip(step, 0, H - 1))
    top, height = 100 * step / H, 100 / H
    kept = " (kept)" if step < trace.keep_rows else ""
    legend = [f'<span class="rv-sw" style="background:rgb{INK}"></span>drawn']
    if trace.keep_rows:
        legend.append(f'<span class="rv-sw" style="background:rgb{KEPT_INK}"></span>kept')
    legend.append(f'<span class="rv-sw" style="background:{PROB_SCALE.css_gradient()}"></span>p(on), row {step}')
    return (
        f'<div class="rv-canvas-wrap" data-step="{step}"><div class="rv-canvas-col">'
        f'<div class="rv-canvas"><img class="rv-px" alt="canvas at step {step}" '
        f'src="{data_uri(canvas_rgb(trace, step))}">'
        f'<div class="rv-rowmark" style="top:{top:.4f}%;height:{height:.4f}%"></div></div>'
        f'<div class="rv-stepinfo"><b>step {step}</b>/{H - 1}: row {step}{kept} cost '
        f'<b>{fmt(float(trace.row_nll[step]))}</b> nats; {fmt(float(trace.row_nll[:step + 1].sum()), 1)} '
        f'of {fmt(trace.nll, 1)} so far</div></div>'
        f'<div class="rv-side"><div class="rv-final"><img class="rv-px" alt="finished image" '
        f'src="{data_uri(image_rgb(trace))}"><span>finished</span></div>'
        f'<div class="rv-legend">{"<br>".join(legend)}</div></div></div>')


def _scale_labels(scale: Scale) -> tuple[str, str, str]:
    lo, hi = scale.vmin, scale.vmax
    return fmt(lo, 1 if lo % 1 else 0), fmt((lo + hi) / 2, 1 if (lo + hi) % 2 else 0), fmt(hi, 1 if hi % 1 else 0)


def gate_stats(name: str, vec: np.ndarray) -> str:
    """One line of statistics: saturation for gates, mean |value| for the rest."""
    if name in SIGMOID:
        return (f"{100 * float(np.mean(vec < 0.1)):.0f}% &lt;0.1 \u00b7 "
                f"{100 * float(np.mean(vec > 0.9)):.0f}% &gt;0.9")
    return f"mean |{name}| {fmt(float(np.mean(np.abs(vec))))} \u00b7 max {fmt(float(np.max(np.abs(vec))))}"


def unit_card(vec: np.ndarray, scale: Scale, caption: str, alt: str, stats: str, title: str) -> str:
    """One vector of units as a crisp grid with its colour bar, a caption and a line of statistics
    (``caption``, ``stats`` and ``title`` are HTML; ``alt`` is plain text)."""
    lo, mid, hi = _scale_labels(scale)
    return (f'<figure class="rv-gate" title="{title}"><figcaption>{caption}</figcaption>'
            f'<img class="rv-px" alt="{html.escape(alt)}" src="{data_uri(colorize(units_to_grid(vec), scale))}">'
            f'<div class="rv-cbar" style="background:{scale.css_gradient()}"></div>'
            f'<div class="rv-cbar-labels"><span>{lo}</span><span>{mid}</span><span>{hi}</span></div>'
            f'<div class="rv-stats">{stats}</div></figure>')


def gates_html(trace: Trace, step: int, layer: int = -1, names: tuple[str, ...] | None = None,
               order: np.ndarray | None = None) -> str:
    """Every gate and state (or only ``names``) of one layer at ``step``, units laid out as a grid,
    with scales. ``order`` (a permutation, ``rnnviz.units.unit_order``) fills the grid row by row
    with units ``order[0], order[1], ...`` (None: unit 0 top left); the wrap's ``data-order``,
    ``data-cols`` and ``data-layer`` let a click on a cell name its unit in the browser."""
    H = trace.steps
    step = int(np.clip(step, 0, H - 1))
    states = trace.layers[layer]
    cards = []
    for name in (names or trace.names):
        series = states[name]
        vec = series[step] if order is None else series[step][order]
        short = html.escape(DESCRIPTIONS.get(name, "").split(":")[0])
        cards.append(unit_card(vec, state_scale(name, series), f"<b>{name}</b> <span>{short}</span>",
                               f"{name} at step {step}", gate_stats(name, vec),
                               html.escape(DESCRIPTIONS.get(name, name))))
    n = series.shape[1]
    rows, cols = unit_grid_shape(n)
    nlayers = len(trace.layers)
    which = f"layer {(layer % nlayers) + 1} of {nlayers}, " if nlayers > 1 else ""
    how = ("unit 0 top left, row by row" if order is None else
           "in behaviour order: units that peak at early rows top left, alike units side by side")
    data = "" if order is None else f' data-order="{" ".join(str(int(u)) for u in order)}"'
    return (f'<div class="rv-gates-wrap" data-step="{step}" data-layer="{layer % nlayers}" data-cols="{cols}"{data}>'
            f'<div class="rv-gates-head">{trace.cell.upper()} {which}step {step}: {n} units as a {rows}\u00d7{cols} '
            f'grid ({how})</div><div class="rv-gates">{"".join(cards)}</div></div>')


# ---- linked step views: several traces on one slider (Compare cells, Intervene) -----------------
def empty_column_html(button: str = "") -> str:
    """A column before anything was run: an empty canvas and which button to press."""
    hint = f"Press <b>{html.escape(button)}</b>." if button else ""
    return (f'<div class="rv-col rv-col-empty"><div class="rv-canvas"></div>'
            f'<div class="rv-col-hint">{hint}</div></div>')


def column_title_html(name: str, config, metrics: dict, trace: Trace, what: str = "this sample") -> str:
    """A column's title: the model, its test NLL (and how it was measured) and ``trace``'s NLL."""
    nll, protocol = metrics.get("test_nll"), metrics.get("test_nll_protocol")
    arch = f"{config.cell.upper()} {config.layers}\u00d7{config.hidden}"
    if getattr(config, "latent", 0):
        arch += f", VAE z\u2208R<sup>{config.latent}</sup>"
    test = "test NLL not recorded" if nll is None else f"test NLL <b>{float(nll):.2f}</b> nats"
    how = html.escape(str(protocol or "how it was measured is not recorded")[:200], quote=True)
    given = " | z" if trace.latent is not None else (" | digit" if trace.label is not None else "")
    color = CELL_COLORS.get(trace.cell, "#9aa5b1")
    return (f'<div class="rv-col-title"><div class="rv-line"><span class="rv-dot" style="background:{color}"></span>'
            f'<b>{html.escape(name)}</b> \u00b7 {arch}</div><div>{test}</div>'
            f'<div class="rv-line rv-proto" title="{how}">{how}</div>'
            f'<div>{html.escape(what)}: <b>{fmt(trace.nll, 1)}</b> nats '
            f'<span class="rv-proto">(\u2212log p(image{given}))</span></div></div>')


def step_column_html(trace: Trace, step: int, title: str = "", layer: int = -1,
                     names: tuple[str, ...] | None = None) -> str:
    """One column of a linked view at ``step``: title, canvas and the gate/state grids (``names``:
    which ones; None: all of the cell's)."""
    step = int(np.clip(step, 0, trace.steps - 1))
    return (f'<div class="rv-col" data-step="{step}">{title}{canvas_html(trace, step)}'
            f'{gates_html(trace, step, layer, names)}</div>')


# ---- Markdown shared by several tabs -------------------------------------------------------------
MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~&:\"'=")


def md_text(value, max_len: int = 80) -> str:
    """Text from a checkpoint's metadata (a visitor's upload) as inert Markdown: cut to ``max_len``
    characters, HTML escaped and every Markdown sign backslash-escaped (no link, image or tag)."""
    text = " ".join(str(value).split())
    text = text if len(text) <= max_len else text[:max_len] + "\u2026"
    return "".join(f"\\{ch}" if ch in MD_SPECIAL else html.escape(ch) for ch in text)


def model_summary(config, metrics: dict, name: str) -> str:
    """Markdown line describing a checkpoint (``metrics``: its registry entry's; every text from it
    is escaped: an upload's metadata is a visitor's)."""
    nll = metrics.get("test_nll")
    parts = [f"**{md_text(name)}**: {config.cell.upper()}, {config.layers} \u00d7 {config.hidden} units"]
    if metrics.get("parameters"):
        parts.append(f"{int(metrics['parameters']) / 1e6:.2f} M parameters")
    if nll is not None:
        parts.append(f"test NLL {float(nll):.2f} nats")
    if metrics.get("dataset"):
        parts.append(f"trained on {md_text(metrics['dataset'])}")
    if metrics.get("train_seconds"):
        parts.append(f"{float(metrics['train_seconds']) / 60:.0f} min, {int(metrics.get('step', 0))} steps")
    return " \u00b7 ".join(parts)


def trace_summary(trace: Trace, model_name: str) -> str:
    """Markdown: what this trace is."""
    what = "completion" if trace.keep_rows else "sample"
    label = "unconditional" if trace.label is None else f"digit **{trace.label}**"
    extra = f", first {trace.keep_rows} rows kept" if trace.keep_rows else ""
    seed = "" if trace.seed is None else f", seed {trace.seed}"
    return (f"**{model_name}**: {what} of {label}{extra}, temperature {trace.temperature:g}{seed}. "
            f"NLL {trace.nll:.1f} nats (\u2212log p(image | digit) under the model, temperature 1).")
