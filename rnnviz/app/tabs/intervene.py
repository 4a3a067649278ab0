"""Intervene: overwrite a gate or state (or an image row) at some steps and see what changes.

The model of the page's menu samples a digit twice with the same random numbers: without and with
the intervention (``rnnviz.interventions``). Both runs are shown side by side on one slider, with
the difference image (+1 red: only with it, -1 blue: only without), the change of h (and c) at the
current step, and per step the mean |Δh| (|Δc| for an LSTM) and both runs' NLL per row.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass

import gradio as gr
import numpy as np

from ... import interventions
from ...render import BLUE_WHITE_RED, Scale, data_uri
from ...trace import Trace
from .. import components as checked
from ..cards import empty_column_html, fmt, unit_card
from ..components import message, sample_controls, warn
from ..figures import base_layout, cursor_band, cursor_line
from ..inputs import InputError
from ..state import ROW_EDITS, Explorer
from ..stepview import LinkedViews

NAME = "intervene"
DIFF_ADDED, DIFF_REMOVED, DIFF_BOTH = (230, 80, 60), (60, 140, 235), (105, 105, 105)  # +1 red, -1 blue


class InterventionView(LinkedViews):
    """Without | with | difference, on one slider."""

    def __init__(self, ex: Explorer):
        super().__init__(ex, NAME, 2, "Run")

    def render_extra_columns(self):
        with gr.Column(scale=4, min_width=250):
            self.diff = gr.HTML(empty_column_html(), elem_id=f"{NAME}_diff", padding=False)
        self.extra_outputs = [self.diff]

    def extra_frame(self, v, step: int) -> list:
        cmp = v.comparison
        return [gr.skip() if cmp is None else diff_html(cmp, step, v.layer)]


# ---- what the tab draws (pure) ------------------------------------------------------------------
def intervened_steps(changes, height: int) -> list[int]:
    """The steps any of ``changes`` (``rnnviz.interventions`` Intervention/RowEdit) applies to."""
    steps = set()
    for ch in changes:
        if hasattr(ch, "steps"):
            steps.update(ch.steps(height))
        else:
            steps.add(int(ch.step))
    return sorted(steps)


def _runs(steps: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted steps as (first, last)."""
    out: list[tuple[int, int]] = []
    for t in steps:
        if out and t == out[-1][1] + 1:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def diff_rgb(original: np.ndarray, intervened: np.ndarray) -> np.ndarray:
    """(H, W, 3): red where only the intervened image has ink (+1), blue where only the original
    has (-1), grey where both have, black where neither."""
    a, b = np.asarray(original).astype(bool), np.asarray(intervened).astype(bool)
    rgb = np.zeros(a.shape + (3,), np.uint8)
    rgb[a & b] = DIFF_BOTH
    rgb[b & ~a] = DIFF_ADDED
    rgb[a & ~b] = DIFF_REMOVED
    return rgb


def _delta_scale(diff: np.ndarray) -> Scale:
    m = float(np.percentile(np.abs(diff), 99.5)) if diff.size else 0.0
    m = max(0.05, math.ceil(m * 20) / 20)  # fixed per comparison, rounded up to 0.05
    return Scale(-m, m, BLUE_WHITE_RED)


def diff_html(cmp, step: int, layer: int = -1) -> str:
    """The difference column of an intervention (``rnnviz.interventions.Comparison``) at ``step``:
    the image difference (+1 red, -1 blue, both grey) with the intervened steps bracketed and the
    current row outlined, and the change of h (and c) at ``step`` as unit grids."""
    orig, new = cmp.original, cmp.intervened
    H = orig.steps
    step = int(np.clip(step, 0, H - 1))
    d = cmp.image_diff
    added, removed = int((d > 0).sum()), int((d < 0).sum())
    first = cmp.first_changed_row
    brackets = "".join(
        f'<div class="rv-ivbar" title="intervened steps {a}-{b}" style="top:{100 * a / H:.4f}%;'
        f'height:{100 * (b - a + 1) / H:.4f}%"></div>' for a, b in _runs(intervened_steps(cmp.changes, H)))
    top, height = 100 * step / H, 100 / H
    steps_note = "; yellow: the intervened steps"
    if first is None:
        caption, short = "the two images are identical" + steps_note, "identical images"
    else:
        caption = (f'<span style="color:rgb{DIFF_ADDED}">+1: {added} pixels</span> only with the intervention, '
                   f'<span style="color:rgb{DIFF_REMOVED}">\u22121: {removed}</span> only without{steps_note}')
        short = f"first changed row {first}"
    cards = []
    for name in [n for n in ("c", "h") if n in orig.names]:
        series = cmp.state_diff(name, layer)
        vec = series[step]
        cards.append(unit_card(vec, _delta_scale(series), f"<b>\u0394{name}</b> <span>change</span>",
                               f"change of {name} at step {step}",
                               f"mean |\u0394{name}| {fmt(float(np.mean(np.abs(vec))), 3)}",
                               f"{name} with the intervention minus without, at step {step}"))
    legend = "<br>".join([f'<span class="rv-sw" style="background:rgb{DIFF_ADDED}"></span>+1',
                          f'<span class="rv-sw" style="background:rgb{DIFF_REMOVED}"></span>\u22121',
                          f'<span class="rv-sw" style="background:rgb{DIFF_BOTH}"></span>both',
                          '<span class="rv-sw rv-sw-iv"></span>steps'])
    return (f'<div class="rv-col rv-diff" data-step="{step}"><div class="rv-col-title"><div><b>difference</b> '
            f'(with \u2212 without)</div><div>NLL {fmt(orig.nll, 1)} \u2192 {fmt(new.nll, 1)} nats '
            f'(<b>{"+" if new.nll >= orig.nll else ""}{fmt(new.nll - orig.nll, 1)}</b>)</div>'
            f'<div class="rv-line rv-proto">{short}</div></div>'
            f'<div class="rv-canvas-wrap"><div class="rv-canvas-col"><div class="rv-canvas">'
            f'<img class="rv-px" alt="image difference" src="{data_uri(diff_rgb(orig.image, new.image))}">'
            f'<div class="rv-rowmark" style="top:{top:.4f}%;height:{height:.4f}%"></div>{brackets}</div>'
            f'<div class="rv-stepinfo">{caption}</div></div>'
            f'<div class="rv-side"><div class="rv-legend">{legend}</div></div></div>'
            f'<div class="rv-gates-wrap"><div class="rv-gates-head">change at step {step} (unit grids as on the '
            f'left)</div><div class="rv-gates">{"".join(cards)}</div></div></div>')


def intervention_figure(cmp, layer: int = -1, step: int = 0) -> dict:
    """Where an intervention's two runs part: mean |Δh| (and |Δc| for an LSTM) over the units per
    step, the intervened steps shaded and the first changed row marked; below, both runs' NLL per
    row. A cursor marks ``step``. A plain plotly figure dict."""
    orig = cmp.original
    H = orig.steps
    x = list(range(H))
    data = []
    for name, color in (("h", "#f97316"), ("c", "#38bdf8")):
        if name in orig.names:
            data.append({"type": "scatter", "mode": "lines+markers", "x": x, "xaxis": "x", "yaxis": "y",
                         "y": np.round(cmp.step_change(name, layer), 5).tolist(), "name": f"mean |\u0394{name}|",
                         "line": {"color": color, "width": 2, "dash": "solid" if name == "h" else "dash"},
                         "marker": {"size": 5},
                         "hovertemplate": f"step %{{x}}: mean |\u0394{name}| %{{y:.4f}}<extra></extra>"})
    for label, tr, color in (("without", orig, "#9aa5b1"), ("with", cmp.intervened, "#e6503c")):
        data.append({"type": "scatter", "mode": "lines+markers", "x": x, "xaxis": "x2", "yaxis": "y2",
                     "y": np.round(tr.row_nll, 3).tolist(), "name": f"row NLL {label} ({fmt(tr.nll, 1)})",
                     "line": {"color": color, "width": 2}, "marker": {"size": 4},
                     "hovertemplate": f"row %{{x}} {label}: %{{y:.2f}} nats<extra></extra>"})
    top, bottom = [0.55, 1.0], [0.0, 0.4]
    shapes, annotations = [], []
    for a, b in _runs(intervened_steps(cmp.changes, H)):
        for yref, dom in (("y domain", top), ("y2 domain", bottom)):
            shapes.append({"type": "rect", "xref": "x", "yref": yref, "x0": a - 0.5, "x1": b + 0.5, "y0": 0,
                           "y1": 1, "fillcolor": "#facc15", "opacity": 0.15, "line": {"width": 0},
                           "layer": "below"})
    first = cmp.first_changed_row
    if first is not None:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": first - 0.5, "x1": first - 0.5,
                       "y0": 0, "y1": 1, "line": {"color": "#e6503c", "width": 1.5, "dash": "dot"}})
        annotations.append({"text": f"first changed row {first}", "xref": "x", "yref": "paper", "x": first - 0.5,
                            "y": 0.47, "xanchor": "left", "yanchor": "middle", "showarrow": False,
                            "font": {"color": "#e6503c"}})
    shapes += [cursor_line(step, "x", "y domain"), cursor_line(step, "x2", "y2 domain"),
               cursor_band(step, "x2", "y2 domain")]
    layout = base_layout(
        470, (60, 20, 80, 45), font=12, hovermode="x unified", showlegend=True,
        title="<b>where the runs part</b>: mean change of the states over the units per step (top); each row's NLL "
              "without and with (bottom)",
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"},
        xaxis={"domain": [0, 1], "range": [-0.5, H - 0.5], "dtick": 1, "anchor": "y", "matches": "x2",
               "showticklabels": False},
        yaxis={"domain": top, "rangemode": "tozero", "title": {"text": "mean |\u0394| over units"}, "anchor": "x"},
        xaxis2={"domain": [0, 1], "range": [-0.5, H - 0.5], "dtick": 1, "anchor": "y2", "tickfont": {"size": 10},
                "title": {"text": "step = row (shaded: intervened steps)"}},
        yaxis2={"domain": bottom, "rangemode": "tozero", "title": {"text": "row NLL (nats)"}, "anchor": "x2"},
        shapes=shapes, annotations=annotations)
    return {"data": data, "layout": layout}


def comparison_summary(cmp, model_name: str, descriptions: list[str]) -> str:
    """Markdown: what was changed and what it did (the two NLLs, where the runs part)."""
    orig, new = cmp.original, cmp.intervened
    label = "unconditional" if orig.label is None else f"digit **{orig.label}**"
    what = "; ".join(descriptions) or "nothing"
    diff = new.nll - orig.nll
    parts = [f"**{model_name}**, {label}, seed {orig.seed}, temperature {orig.temperature:g}: *{html.escape(what)}*.",
             f"NLL without **{orig.nll:.1f}** nats, with **{new.nll:.1f}** nats ({'+' if diff >= 0 else ''}{diff:.1f};"
             " each under the run that drew it)."]
    first = cmp.first_changed_row
    start = cmp.first_step
    if first is None:
        moved = max(float(np.abs(cmp.state_diff("h")).max()), 0.0)
        parts.append(f"The images are **identical** (h moved by at most {moved:.3f}).")
    else:
        d = cmp.image_diff
        parts.append(f"The runs agree up to step {start}; the images first differ at **row {first}** "
                     f"(+{int((d > 0).sum())} / \u2212{int((d < 0).sum())} pixels).")
    return " ".join(parts)



def run_title_html(label: str, trace: Trace, detail: str = "") -> str:
    """A column title for one of two runs of one model (e.g. without / with an intervention)."""
    return (f'<div class="rv-col-title"><div><b>{html.escape(label)}</b></div>'
            f'<div>NLL <b>{fmt(trace.nll, 1)}</b> nats</div>'
            f'<div class="rv-line rv-proto" title="{html.escape(detail)}">{html.escape(detail) or "&nbsp;"}</div></div>')


@dataclass
class Handle:
    ex: Explorer
    ckpt: gr.Dropdown
    view: InterventionView
    kind: gr.Dropdown
    help: gr.Markdown
    first: gr.Slider
    last: gr.Slider
    units: gr.Textbox
    value: gr.Number
    layer: gr.Dropdown
    digit: gr.Radio
    temperature: gr.Slider
    seed: gr.Number
    button: gr.Button
    summary: gr.Markdown


def _help(kind: str) -> str:
    preset = interventions.PRESETS.get(kind)
    if preset is not None:
        return preset.help
    if kind in ROW_EDITS:
        return "the chosen rows are replaced (not sampled); the rows after them read the edited rows"
    return ""


def _needs_value(kind: str) -> bool:
    preset = interventions.PRESETS.get(kind)
    return preset is not None and any(v is None for _, v in preset.clamps)


def _choices(ex: Explorer, key) -> tuple[list[str], object]:
    try:
        entry, choices = ex.intervention_choices(key)
    except InputError:
        return list(ROW_EDITS), None
    return choices, entry.config


def build(ex: Explorer, ckpt) -> Handle:
    """The tab's layout (call inside its ``gr.Tab``); it uses the page's model menu ``ckpt``."""
    choices, config = _choices(ex, ex.registry.default_key())
    view = InterventionView(ex)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=250):
            gr.Markdown("Sample the digit twice with the same random numbers: without and with a change to "
                        "what the cell computes (model: the menu at the top).")
            kind = gr.Dropdown(choices, value=choices[0], label="intervention", elem_id="intervene_kind",
                               allow_custom_value=True)  # its choices follow the model; the Explorer checks it
            help_ = gr.Markdown(_help(choices[0]), elem_id="intervene_help", elem_classes="rv-help")
            first = checked.slider("first_step", elem_id="intervene_first")
            last = checked.slider("last_step", elem_id="intervene_last")
            units = gr.Textbox("all", label="units", info="all, or e.g. 3, 17, 200-210", max_lines=1,
                               elem_id="intervene_units", visible=kind.value not in ROW_EDITS)
            value = checked.Number(0.5, label="value", info="h lies in [-1, 1]", elem_id="intervene_value",
                                   visible=_needs_value(choices[0]))
            layers = getattr(config, "layers", 1)
            # a Dropdown that takes any value: the API may name a layer of a model picked after the page
            # was built; the Explorer checks it
            layer = gr.Dropdown(_layer_choices(layers), value=-1, label="layer", elem_id="intervene_layer",
                                visible=layers > 1, allow_custom_value=True)
            digit, temperature, seed = sample_controls("intervene", side_by_side=True)
            button = gr.Button("Run without and with", variant="primary", elem_id="intervene_btn")
            summary = gr.Markdown(elem_id="intervene_summary")
        with gr.Column(scale=11, min_width=600):
            view.render("where the runs part: mean change of the states per step, and each row's NLL")
    return Handle(ex, ckpt, view, kind, help_, first, last, units, value, layer, digit, temperature, seed, button,
                  summary)


def _layer_choices(layers: int) -> list[tuple[str, int]]:
    return [(f"layer {k + 1}" + (" (top)" if k == layers - 1 else ""), k - layers) for k in range(layers)]


def wire(h: Handle, tab=None):
    ex, view = h.ex, h.view

    def run(key, kind, first, last, units, value, layer, d, temp, s, request: gr.Request):
        try:
            entry, cmp, description, notes = ex.intervene(key, d, temp, s, kind, first, last, units, value, layer)
        except InputError as e:
            raise message(str(e)) from None
        warn(notes)
        lay = -1 if kind in ROW_EDITS else cmp.changes[0].layer  # show the layer that was changed
        titles = [run_title_html("without the intervention", cmp.original, entry.name),
                  run_title_html("with the intervention", cmp.intervened, description)]
        fig = intervention_figure(cmp, lay, 0)
        return ([comparison_summary(cmp, entry.name, [description])] +
                view.load(request, [cmp.original, cmp.intervened], titles, fig, layer=lay, comparison=cmp))

    def presets(key, kind):
        """The interventions that fit the chosen model's cell (and its layers)."""
        choices, config = _choices(ex, key)
        kind = kind if kind in choices else choices[0]
        layers = getattr(config, "layers", 1)
        return (gr.Dropdown(choices=choices, value=kind), _help(kind),
                gr.Dropdown(choices=_layer_choices(layers), value=-1, visible=layers > 1)) + kind_fields(kind)[1:]

    def kind_fields(kind):
        return _help(kind), gr.Textbox(visible=kind not in ROW_EDITS), gr.Number(visible=_needs_value(kind))

    view.wire()
    h.button.click(run, [h.ckpt, h.kind, h.first, h.last, h.units, h.value, h.layer, h.digit, h.temperature,
                         h.seed], [h.summary] + view.load_outputs, api_name="intervene", concurrency_limit=2)
    h.kind.input(kind_fields, [h.kind], [h.help, h.units, h.value], api_name="intervene_kind",
                 show_progress="hidden")
    preset_out = [h.kind, h.help, h.layer, h.units, h.value]
    h.ckpt.change(presets, [h.ckpt, h.kind], preset_out, api_name="intervene_presets", show_progress="hidden")
    if tab is not None:
        tab.select(presets, [h.ckpt, h.kind], preset_out, api_name="intervene_presets_on_open",
                   show_progress="hidden")
