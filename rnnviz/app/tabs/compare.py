"""Compare cells: the same digit and seed through the LSTM, GRU and RNN side by side.

One slider (and one Play button) drives every model's canvas and its state grids at step t (h for
all, plus the LSTM's f and c and the GRU's z); each column is titled with the model, its test NLL
(and how it was measured) and this sample's NLL. Below, every model's NLL per row with the current
row marked. The models draw with the same random numbers (same seed), so what differs is the cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .. import views
from ..components import message
from ..inputs import InputError
from ..state import MAX_COMPARE, Explorer
from ..stepview import LinkedViews, _warn, sample_controls

NAME = "compare"


@dataclass
class Handle:
    ex: Explorer
    view: LinkedViews
    models: gr.Dropdown
    digit: gr.Radio
    temperature: gr.Slider
    seed: gr.Number
    button: gr.Button
    note: gr.Markdown


def build(ex: Explorer, ckpt=None) -> Handle:
    """The tab's layout (call inside its ``gr.Tab``). ``ckpt`` (the page's model menu) is not used:
    this tab picks its own models."""
    view = LinkedViews(ex, NAME, MAX_COMPARE, "Compare", names=lambda cell: views.COLUMN_STATES.get(cell))
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=240):
            gr.Markdown("The same digit, seed and temperature through each model: the same random numbers, "
                        "so what differs is the cell. One slider drives every column.")
            models = gr.Dropdown(ex.registry.choices(), value=ex.compare_default_keys(), multiselect=True,
                                 max_choices=MAX_COMPARE, label=f"models (up to {MAX_COMPARE})",
                                 elem_id="compare_models",
                                 allow_custom_value=True)  # runs trained later are checked by the registry
            digit, temperature, seed = sample_controls("compare")
            button = gr.Button("Compare", variant="primary", elem_id="compare_btn")
            note = gr.Markdown(elem_id="compare_note")
        with gr.Column(scale=11, min_width=600):
            view.render_columns(scale=4, min_width=250)
            view.render_controls()
            view.render_figure("NLL of each row, per model (the band follows the slider)")
    return Handle(ex, view, models, digit, temperature, seed, button, note)


def wire(h: Handle, tab=None):
    ex, view = h.ex, h.view

    def run(keys, d, temp, s, request: gr.Request):
        try:
            results, notes = ex.compare(keys, d, temp, s)
        except InputError as e:
            raise message(str(e)) from None
        _warn(notes)
        traces = [tr for _, tr in results]
        titles = [views.column_title_html(e.name, e.config, e.metrics, tr) for e, tr in results]
        fig = views.row_nll_figure([(e.name, tr.cell, tr.row_nll) for e, tr in results], 0)
        first = traces[0]
        label = "any digit" if first.label is None else f"digit **{first.label}**"
        text = (f"{len(traces)} models, {label}, seed {first.seed}, temperature {first.temperature:g}. "
                "Scrub or press Play: every column shows the same step.")
        if notes:
            text += "\n\n" + "\n".join(f"- {n}" for n in notes)
        return [text] + view.load(request, traces, titles, fig)

    def models():
        return gr.Dropdown(choices=ex.registry.choices())

    view.wire()
    h.button.click(run, [h.models, h.digit, h.temperature, h.seed], [h.note] + view.load_outputs,
                   api_name="compare", concurrency_limit=2)
    if tab is not None:  # runs trained or uploaded meanwhile join the menu
        tab.select(models, None, [h.models], api_name="compare_models", show_progress="hidden")
