"""Compare cells: the same digit and seed through the LSTM, GRU and RNN side by side.

One slider (and one Play button) drives every model's canvas and its state grids at step t (h for
all, plus the LSTM's f and c and the GRU's z); each column is titled with the model, its test NLL
(and how it was measured) and this sample's NLL. Below, every model's NLL per row with the current
row marked. The models draw with the same random numbers (same seed), so what differs is the cell.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr
import numpy as np

from ..cards import CELL_COLORS, COLUMN_STATES, column_title_html, fmt
from ..components import message, sample_controls, warn
from ..figures import base_layout, cursor_band, cursor_line
from ..inputs import STEPS, InputError
from ..state import MAX_COMPARE, Explorer
from ..stepview import LinkedViews

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
    view = LinkedViews(ex, NAME, MAX_COMPARE, "Compare", names=lambda cell: COLUMN_STATES.get(cell))
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
            view.render("NLL of each row, per model (the band follows the slider)")
    return Handle(ex, view, models, digit, temperature, seed, button, note)


def row_nll_figure(series: list[tuple[str, str, np.ndarray]], step: int = 0,
                   title: str = "NLL of each row (nats)") -> dict:
    """Per-row NLL of a few traces, one line each: ``series`` is (label, cell, row_nll). A cursor
    marks ``step``."""
    data = []
    H = 0
    dashes = ("solid", "dot", "dash", "dashdot")
    seen: dict[str, int] = {}
    for label, cell, nll in series:
        nll = np.asarray(nll, np.float32)
        H = max(H, nll.size)
        k = seen[cell] = seen.get(cell, -1) + 1  # two models of one cell: another dash
        data.append({"type": "scatter", "mode": "lines+markers", "name": f"{label} ({fmt(float(nll.sum()), 1)})",
                     "x": list(range(nll.size)), "y": np.round(nll, 3).tolist(),
                     "line": {"color": CELL_COLORS.get(cell, "#9aa5b1"), "width": 2, "dash": dashes[k % 4]},
                     "marker": {"size": 5},
                     "hovertemplate": f"{html.escape(label)}<br>row %{{x}}: %{{y:.2f}} nats<extra></extra>"})
    H = H or STEPS
    layout = base_layout(
        320, (60, 20, 60, 45), font=12, hovermode="x unified", title=f"<b>{html.escape(title)}</b>",
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
        xaxis={"range": [-0.5, H - 0.5], "dtick": 1, "tickfont": {"size": 10},
               "title": {"text": "row = step (the band is the slider's step)"}},
        yaxis={"rangemode": "tozero", "title": {"text": "nats"}},
        shapes=[cursor_band(step), cursor_line(step)])
    return {"data": data, "layout": layout}


def wire(h: Handle, tab=None):
    ex, view = h.ex, h.view

    def run(keys, d, temp, s, request: gr.Request):
        try:
            results, notes = ex.compare(keys, d, temp, s)
        except InputError as e:
            raise message(str(e)) from None
        warn(notes)
        traces = [tr for _, tr in results]
        titles = [column_title_html(e.name, e.config, e.metrics, tr) for e, tr in results]
        fig = row_nll_figure([(e.name, tr.cell, tr.row_nll) for e, tr in results], 0)
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
