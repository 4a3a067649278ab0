"""Units: what one hidden unit does, over many test digits (the unit inspector), and which units
follow a pattern of the current trace (LSTMVis's select and match, Strobelt et al. 2017).

Pick a unit by its number, or click it in a step view (a cell of a grid or a row of the units x
time panels in any step view: the page's ``rnnvizInspect``, ``page.js``, opens this tab with it). The inspector
shows the unit's value over the 28 steps of each test digit coloured by its class, with its gates
beside it; the digits where it is most and least active (and at which row); and for a few steps a
28 x 28 map of which pixels of the rows read so far go with its value. Everything comes from
``rnnviz.units`` via ``measurements.UnitStudies`` (cached per model); the figures here are pure
functions of its results.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr
import numpy as np

from ...cells import DESCRIPTIONS
from ...render import FUTURE, INK, PAPER, ROW_MARK, SIGMOID, data_uri, hex_rgb
from .. import components as checked
from .. import links
from ..components import layer_choices, message, plot, session_id
from ..deeplinks import LinkBar, link_name
from ..figures import base_layout
from ..inputs import InputError
from ..measurements import Digits
from ..operations import Explorer

NAME = "units"
MAP_STEPS = (6, 10, 14, 18, 22, 27)  # the steps whose activity maps are drawn
MAX_LINES = 200  # digits drawn in the line plot
# one colour per digit class (Tableau 10), the same in every figure and card
CLASS_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
                "#9c755f", "#bab0ac")

EXPLAIN = """**Units: what one hidden unit does.** Type a unit's number and press *Inspect*, or click a unit
in *Generate & step* (a cell of a grid, or a row of the units × time figure): it opens here. Every view
is read on test digits with teacher forcing (the model sees the true rows), as in the test NLL."""

HOW = {
    "lines": "**How to read it:** one line per test digit, its colour the digit's class; the first panel is "
             "the unit's value at each step, the others its gates at the same steps. Lines of one colour "
             "that bundle apart from the rest mean the unit tells that class apart; a bump at a row means "
             "it fires when the digit's strokes reach that height.",
    "examples": "**How to read it:** the digits where the unit reaches its highest (and lowest) value; the rows "
                "above the blue line are what it had read at that step, the blue row is the one it predicts.",
    "maps": "**How to read it:** at each step, red pixels are ink that goes with a high value of the unit, "
            "blue ink that goes with a low one (correlation over the test digits); at step t the unit has read rows "
            "0 to t \u2212 1, the grey rows below are not read yet.",
    "search": "**How to read it:** the units above the threshold at every selected step of the trace in "
              "*Generate & step*, and the test digits on which the same units hold the same pattern (best "
              "overlap first): what those digits share at those rows is what the units track.",
}


@dataclass
class Handle:
    ex: Explorer
    ckpt: gr.Dropdown
    unit: gr.Number
    layer: gr.Radio
    button: gr.Button
    pick: gr.Textbox
    note: gr.Markdown
    lines: gr.Plot
    examples: gr.HTML
    maps: gr.Plot
    first: gr.Slider
    last: gr.Slider
    threshold: gr.Slider
    search: gr.Button
    search_note: gr.Markdown
    search_digits: gr.HTML
    link: LinkBar

    @property
    def outputs(self) -> list:
        """What the inspector fills."""
        return [self.note, self.layer, self.lines, self.examples, self.maps]


def build(ex: Explorer, ckpt) -> Handle:
    """The tab's layout (call inside its ``gr.Tab``); it inspects the page's model (``ckpt``)."""
    gr.Markdown(EXPLAIN, elem_id="units_explain")
    with gr.Row(equal_height=True):
        unit = checked.Number(value=0, precision=0, minimum=0, label="unit", elem_id="units_unit", scale=1,
                              min_width=100)
        layer = gr.Radio([("layer 1 (top)", 0)], value=0, label="layer", visible=False, elem_id="units_layer",
                         scale=2)
        button = gr.Button("Inspect", variant="primary", elem_id="units_btn", scale=0, min_width=120)
        with gr.Column(scale=2, min_width=200):
            link = LinkBar.render("units")
    pick = gr.Textbox(visible="hidden", elem_id="units_pick")  # "unit:layer:view:time", written by a click
    note = gr.Markdown(elem_id="units_note")
    gr.Markdown(HOW["lines"])
    lines = gr.Plot(label="the unit and its gates over the steps of each test digit", show_label=False,
                    elem_id="units_lines")
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=320):
            gr.Markdown(HOW["examples"])
            examples = gr.HTML(elem_id="units_examples", padding=False)
        with gr.Column(scale=7, min_width=420):
            gr.Markdown(HOW["maps"])
            maps = gr.Plot(label="which pixels go with the unit's value, per step", show_label=False,
                           elem_id="units_maps")
    gr.Markdown("### Pattern search\n" + HOW["search"])
    with gr.Row(equal_height=True):
        first = checked.slider("first_step", elem_id="units_from", value=10)
        last = checked.slider("last_step", elem_id="units_through", value=12)
        threshold = checked.Slider(minimum=-1.0, maximum=1.0, step=0.05, value=0.2, label="threshold on h",
                                   elem_id="units_threshold")
        search = gr.Button("Search", elem_id="units_search_btn", scale=0, min_width=120)
    search_note = gr.Markdown(elem_id="units_search_note")
    search_digits = gr.HTML(elem_id="units_search_digits", padding=False)
    return Handle(ex, ckpt, unit, layer, button, pick, note, lines, examples, maps, first, last, threshold,
                  search, search_note, search_digits, link)


# ---- figures and cards (pure) ---------------------------------------------------------------------
def _class_lines(values: np.ndarray, labels: np.ndarray, cls: int) -> tuple[list, list]:
    """x, y of every digit of class ``cls`` as one line trace (digits separated by None)."""
    xs, ys = [], []
    T = values.shape[1]
    for row in values[labels == cls]:
        xs += list(range(T)) + [None]
        ys += np.round(row, 3).tolist() + [None]
    return xs, ys


def unit_lines_figure(prof, labels: np.ndarray, max_lines: int = MAX_LINES) -> dict:
    """The unit's ``prof.name`` (h) and its gates over the steps, one line per test digit (the first
    ``max_lines``) coloured by ``labels`` (its true class). ``prof`` is a ``units.UnitProfile``."""
    names = [prof.name] + [g for g in prof.gates if g != prof.name]
    labels = np.asarray(labels)[:max_lines]
    n = len(names)
    gap = 0.05
    width = (1 - gap * (n - 1)) / n
    layout = base_layout(340, (55, 20, 78, 45), hovermode="closest",
                         title=f"<b>unit {prof.unit}</b> of {prof.cell.upper()} layer {prof.layer + 1}: "
                               f"{len(labels)} test digits, coloured by class",
                         legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.1, "yanchor": "bottom",
                                 "title": {"text": "digit class"}})
    data, annotations = [], []
    for k, name in enumerate(names):
        ax = "" if k == 0 else str(k + 1)
        x0 = k * (width + gap)
        values = prof.states[name][:max_lines]
        for cls in range(10):
            if not (labels == cls).any():
                continue
            xs, ys = _class_lines(values, labels, cls)
            data.append({"type": "scattergl", "mode": "lines", "x": xs, "y": ys, "xaxis": f"x{ax}",
                         "yaxis": f"y{ax}", "name": str(cls), "legendgroup": str(cls), "showlegend": k == 0,
                         "line": {"color": CLASS_COLORS[cls], "width": 1}, "opacity": 0.45,
                         "hovertemplate": f"digit class {cls}<br>step %{{x}}: {name} = %{{y:.3f}}<extra></extra>"})
        gate = name in SIGMOID
        layout[f"xaxis{ax}"] = {"domain": [round(x0, 4), round(x0 + width, 4)], "anchor": f"y{ax}",
                                "range": [-0.5, values.shape[1] - 0.5], "dtick": 7, "title": {"text": "step"}}
        layout[f"yaxis{ax}"] = {"domain": [0, 1], "anchor": f"x{ax}", "zeroline": False,
                                **({"range": [-0.02, 1.02]} if gate else {})}
        annotations.append({"text": f"<b>{name}</b> {html.escape(DESCRIPTIONS.get(name, '').split(':')[0])}",
                            "xref": "paper", "yref": "paper", "x": x0, "y": 1.0, "xanchor": "left",
                            "yanchor": "bottom", "showarrow": False})
    layout["annotations"] = annotations
    return {"data": data, "layout": layout}


def activity_maps_figure(prof, steps=MAP_STEPS) -> dict:
    """``prof.activity_map`` at a few ``steps``: for each, the correlation over the test digits of
    the unit's value with each pixel of the rows read so far (NaN rows, not read yet, are blank)."""
    T, H, W = prof.activity_map.shape
    steps = [s for s in steps if 0 <= s < T]
    n = len(steps)
    gap = 0.02
    width = (1 - gap * (n - 1)) / n
    layout = base_layout(250, (10, 60, 30, 10), showlegend=False, plot_bgcolor="#d1d5db",
                         coloraxis={"colorscale": "RdBu", "reversescale": False, "cmin": -1, "cmax": 1,
                                    "colorbar": {"title": {"text": "corr"}, "thickness": 10, "len": 0.9}})
    data, annotations = [], []
    for k, s in enumerate(steps):
        ax = "" if k == 0 else str(k + 1)
        x0 = k * (width + gap)
        z = np.round(prof.activity_map[s].astype(np.float64), 3)
        data.append({"type": "heatmap", "z": [[None if np.isnan(v) else float(v) for v in row] for row in z],
                     "xaxis": f"x{ax}", "yaxis": f"y{ax}", "coloraxis": "coloraxis",
                     "hovertemplate": f"step {s}<br>row %{{y}}, column %{{x}}<br>corr %{{z:.2f}}<extra></extra>"})
        layout[f"xaxis{ax}"] = {"domain": [round(x0, 4), round(x0 + width, 4)], "anchor": f"y{ax}",
                                "visible": False, "range": [-0.5, W - 0.5]}
        layout[f"yaxis{ax}"] = {"domain": [0, 1], "anchor": f"x{ax}", "visible": False, "range": [H - 0.5, -0.5],
                                "scaleanchor": f"x{ax}"}
        annotations.append({"text": f"step {s}", "xref": "paper", "yref": "paper",
                            "x": x0 + width / 2, "y": 1.0, "xanchor": "center", "yanchor": "bottom",
                            "showarrow": False})
    layout["annotations"] = annotations
    return {"data": data, "layout": layout}


def read_so_far_rgb(image: np.ndarray, step: int) -> np.ndarray:
    """A digit as the unit saw it at ``step``: rows < step in ink, the row it predicts (``step``)
    marked, later rows faded."""
    img = np.asarray(image, bool)[..., None]
    H = img.shape[0]
    ink, paper, future = (np.array(c, np.float64) for c in (INK, PAPER, FUTURE))
    rgb = np.where(img, ink, paper)
    later = (np.arange(H) >= step)[:, None, None]
    rgb = np.where(later, np.where(img, 0.35 * ink + 0.65 * future, future), rgb)
    if step < H:
        mark = np.array(hex_rgb(ROW_MARK), np.float64)
        rgb[step] = rgb[step] * 0.4 + mark * 0.6
    return rgb.astype(np.uint8)


def digit_cards(rows: np.ndarray, digits: Digits, values: np.ndarray, name: str, caption: str) -> str:
    """HTML: a card per (digit, step) of ``rows`` with the unit's value there."""
    cards = []
    for b, t in np.asarray(rows, np.int64).reshape(-1, 2):
        v = float(values[b, t])
        cards.append(f'<figure class="rv-unit-digit"><img class="rv-px" alt="test digit {b} at step {t}" '
                     f'src="{data_uri(read_so_far_rgb(digits.images[b], int(t)))}">'
                     f'<figcaption>#{b} (a {int(digits.labels[b])})<br>{name} = {v:.2f} at step {t}</figcaption>'
                     f'</figure>')
    return f'<div class="rv-unit-digits-head">{caption}</div><div class="rv-unit-digits">{"".join(cards)}</div>'


def examples_html(prof, digits: Digits) -> str:
    """The digits where the unit is most and least active (``prof.most`` / ``prof.least``)."""
    v = prof.values
    return (digit_cards(prof.most, digits, v, prof.name, f"<b>most active</b>: highest {prof.name}")
            + digit_cards(prof.least, digits, v, prof.name, f"<b>least active</b>: lowest {prof.name}"))


def inspector_caption(entry, prof, digits: Digits) -> str:
    v = prof.values
    peak = int(np.abs(v).mean(0).argmax())
    read = "their true labels" if digits.y is not None else (
        "z = the mean of q(z | x)" if entry.config.latent else "nothing (unconditional)")
    return (f"**{html.escape(entry.name)}**, unit **{prof.unit}** of layer {prof.layer + 1} "
            f"({prof.cell.upper()}, {entry.config.hidden} units): on {len(v)} test digits, {digits.source}, read "
            f"with teacher forcing given {read}. Its mean |{prof.name}| peaks at step **{peak}**; "
            f"{prof.name} ranges from {float(v.min()):.2f} to {float(v.max()):.2f}.")


def search_results(entry, match, digits: Digits, trace_label) -> tuple[str, str]:
    """(Markdown, HTML): the units that follow the pattern and the test digits where they do."""
    a, b = match.steps
    what = f"h above {match.threshold:g} at every step from {a} to {b}"
    if not len(match.units):
        return (f"No unit of layer {match.layer + 1} has {what} in the current trace "
                f"(a {trace_label}). Lower the threshold or pick fewer steps.", "")
    listed = ", ".join(str(u) for u in match.units[:40]) + (" \u2026" if len(match.units) > 40 else "")
    n = len(match.units)
    text = (f"**{n} unit{'s' if n != 1 else ''}** of layer {match.layer + 1} {'have' if n != 1 else 'has'} {what} "
            f"in the current trace (a {trace_label}): {listed}. Type one of these numbers into *unit* above to "
            "inspect it.")
    if match.ranking is None or not len(match.ranking):
        return text + f"\n\nNone of them does so on any of the {len(digits.images)} test digits.", ""
    top = match.ranking[:12]
    text += (f"\n\nOn {len(match.ranking)} of {len(digits.images)} test digits ({digits.source}) at least one of "
             "them does; the best matches (score: overlap of the units, 1 = exactly these):")
    cards = []
    for d in top:
        cards.append(f'<figure class="rv-unit-digit"><img class="rv-px" alt="test digit {d}" '
                     f'src="{data_uri(read_so_far_rgb(digits.images[d], b + 1))}">'
                     f'<figcaption>#{d} (a {int(digits.labels[d])})<br>{int(match.matched[d])} '
                     f'unit{"s" if int(match.matched[d]) != 1 else ""}, '
                     f'score {float(match.score[d]):.2f}</figcaption></figure>')
    return text, f'<div class="rv-unit-digits">{"".join(cards)}</div>'


# ---- handlers -------------------------------------------------------------------------------------
def inspect(ex: Explorer, key, unit, layer) -> list:
    """The inspector's outputs for ``unit`` of ``layer`` of ``key``'s model (InputError says what is wrong)."""
    studies = ex.unit_studies
    entry, prof_digits, prof = studies.profile(key, unit, layer)
    layers = entry.config.layers
    return [inspector_caption(entry, prof, prof_digits),
            gr.Radio(choices=layer_choices(layers), value=prof.layer, visible=layers > 1),
            plot(unit_lines_figure(prof, prof_digits.labels)), examples_html(prof, prof_digits),
            plot(activity_maps_figure(prof))]


def link_outputs(h: Handle) -> list:
    """What a deep link sets: the unit and the inspector."""
    return [h.unit] + h.outputs


def open_link(h: Handle, view: links.View, key, request) -> list:
    """The values of ``link_outputs`` for a deep link to this tab (the top layer unless it names one)."""
    return [view.unit] + inspect(h.ex, key, view.unit, view.layer)


def link_view(h: Handle, key, unit, layer) -> links.View:
    """The link to the unit the inspector shows (Copy link)."""
    return links.View(model=link_name(h.ex, key), unit=int(unit or 0), layer=None if layer is None else int(layer),
                      tab="units")


def parse_pick(text) -> tuple[int, int, str]:
    """(unit, layer, step view) from the "unit:layer:view:time" a click writes."""
    parts = str(text).split(":")
    try:
        unit, layer = int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        raise InputError(f"unit pick must be 'unit:layer:view', got {str(text)[:40]!r}") from None
    return unit, layer, parts[2] if len(parts) > 2 else ""



def wire(h: Handle, tab=None):
    ex = h.ex

    def run_inspect(key, unit, layer):
        try:
            return inspect(ex, key, unit, layer)
        except InputError as e:
            raise message(str(e)) from None

    def run_pick(key, text, request: gr.Request):
        """A click in a step view: inspect that view's model (its trace's; else the page's)."""
        if not text:
            return [gr.skip()] * (1 + len(h.outputs))
        try:
            unit, layer, view = parse_pick(text)
            v = ex.sessions.get(session_id(request)).views.get(view)
            key = (v.model_key if v is not None else None) or key  # the checkpoint that drew the view's trace
            return [unit] + inspect(ex, key, unit, layer)
        except InputError as e:
            raise message(str(e)) from None

    def run_search(key, first, last, threshold, layer, request: gr.Request):
        trace = ex.sessions.get(session_id(request)).view("gen").trace
        try:
            if trace is None:
                raise InputError("No trace to search yet: draw a digit in Generate & step first.")
            a, b = int(first if first is not None else 10), int(last if last is not None else 14)
            if a > b:
                raise InputError(f"from step ({a}) must not be after through step ({b})")
            entry, digits, match = ex.unit_studies.pattern(key, trace, (a, b), float(threshold or 0.0), layer)
        except InputError as e:
            raise message(str(e)) from None
        label = "digit" if trace.label is None else f"{trace.label}"
        return search_results(entry, match, digits, label)

    common = {"concurrency_limit": 2, "concurrency_id": "units"}
    h.button.click(run_inspect, [h.ckpt, h.unit, h.layer], h.outputs, api_name="units_inspect", **common)
    h.unit.submit(run_inspect, [h.ckpt, h.unit, h.layer], h.outputs, api_name="units_inspect_submit", **common)
    h.layer.input(run_inspect, [h.ckpt, h.unit, h.layer], h.outputs, api_name="units_layer", **common)
    h.pick.change(run_pick, [h.ckpt, h.pick], [h.unit] + h.outputs, api_name="units_pick", **common)
    h.link.wire(lambda *a: link_view(h, *a), [h.ckpt, h.unit, h.layer], "units_copy_link")
    h.search.click(run_search, [h.ckpt, h.first, h.last, h.threshold, h.layer], [h.search_note, h.search_digits],
                   api_name="units_search", **common)
