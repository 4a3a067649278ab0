"""Intervene: overwrite a gate or state (or an image row) at some steps and see what changes.

The model of the page's menu samples a digit twice with the same random numbers: without and with
the intervention (``rnnviz.interventions``). Both runs are shown side by side on one slider, with
the difference image (+1 red: only with it, -1 blue: only without), the change of h (and c) at the
current step, and per step the mean |Δh| (|Δc| for an LSTM) and both runs' NLL per row.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ... import interventions
from .. import components as checked
from .. import views
from ..components import message
from ..inputs import InputError
from ..state import ROW_EDITS, Explorer
from ..stepview import STEPS, LinkedViews, _warn, sample_controls

NAME = "intervene"
DEFAULT_FIRST, DEFAULT_LAST = 10, STEPS - 1


class InterventionView(LinkedViews):
    """Without | with | difference, on one slider."""

    def __init__(self, ex: Explorer):
        super().__init__(ex, NAME, 2, "Run")

    def render_extra_columns(self):
        with gr.Column(scale=4, min_width=250):
            self.diff = gr.HTML(views.empty_column_html(), elem_id=f"{NAME}_diff", padding=False)
        self.extra_outputs = [self.diff]

    def extra_frame(self, v, step: int) -> list:
        cmp = v.extra.get("comparison")
        return [gr.skip() if cmp is None else views.diff_html(cmp, step, v.layer)]


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
            first = checked.Slider(0, STEPS - 1, value=DEFAULT_FIRST, step=1, label="from step",
                                   elem_id="intervene_first")
            last = checked.Slider(0, STEPS - 1, value=DEFAULT_LAST, step=1, label="through step",
                                  elem_id="intervene_last")
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
            view.render_columns(scale=4, min_width=250)
            view.render_controls()
            view.render_figure("where the runs part: mean change of the states per step, and each row's NLL")
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
        _warn(notes)
        lay = -1 if kind in ROW_EDITS else cmp.changes[0].layer  # show the layer that was changed
        titles = [views.run_title_html("without the intervention", cmp.original, entry.name),
                  views.run_title_html("with the intervention", cmp.intervened, description)]
        fig = views.intervention_figure(cmp, lay, 0)
        return ([views.comparison_summary(cmp, entry.name, [description])] +
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
