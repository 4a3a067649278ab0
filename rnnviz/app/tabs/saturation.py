"""Gate saturation: how often each gate unit of the page's model sits at its ends.

Karpathy, Johnson & Fei-Fei (2015), Fig. 4: per unit of every sigmoid gate, the fraction of steps
it is below 0.1 (left-saturated) against the fraction above 0.9 (right-saturated), over test digits
read with teacher forcing (``rnnviz.analysis.gate_saturation`` via ``measurements.Analyses``, cached per
checkpoint file and layer). The tab measures when it is opened, when Measure is pressed, and when the
page's model changes after this visitor has opened it.

Also the Train tab's live view of the same figure for the model being trained
(``render_live``/``wire_live``): the trainer measures it with every sample snapshot
(``Trainer.snapshot()["saturation"]``); the timer sends it only when it changed.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass


import gradio as gr
import numpy as np

from ...cells import DESCRIPTIONS
from ..components import message, plot, session_id
from ..figures import base_layout, empty_figure
from ..inputs import InputError
from ..measurements import Analyses, SaturationResult
from ..operations import Explorer
from ..components import layer_choices

NAME = "saturation"
SWITCH = 0.5  # a unit "acts as a switch" when one end takes more than this fraction of its steps
ALWAYS = 0.9  # ... and is "always saturated" when both ends together take at least this fraction

EXPLAIN = """**Gate saturation** (Karpathy, Johnson & Fei-Fei 2015, *Visualizing and understanding recurrent
networks*, Fig. 4). Every point is one unit of a gate, read on test digits with teacher forcing:
**x** = the fraction of steps the gate is below 0.1 (*left-saturated*: shut), **y** = the fraction it is
above 0.9 (*right-saturated*: open). Points near the **ends of the axes** are units that act as switches
(almost always shut, or almost always open); points on the **diagonal** x + y = 1 are always saturated,
flipping between shut and open; points near the **origin** work in the soft middle range. An RNN has
no gates. Hover a point for its unit."""


@dataclass
class Handle:
    ex: Explorer
    analyses: Analyses
    ckpt: gr.Dropdown
    button: gr.Button
    layer: gr.Radio
    note: gr.Markdown
    plot: gr.Plot


def build(ex: Explorer, ckpt) -> Handle:
    """The tab's layout (call inside its ``gr.Tab``); it measures the page's model (``ckpt``)."""
    gr.Markdown(EXPLAIN, elem_id="saturation_explain")
    with gr.Row(equal_height=True):
        button = gr.Button("Measure again", variant="primary", elem_id="saturation_btn", scale=0, min_width=160)
        layer = gr.Radio([("layer 1 (top)", 0)], value=0, label="layer", visible=False, elem_id="saturation_layer",
                         scale=2)
    note = gr.Markdown(elem_id="saturation_note")
    fig = gr.Plot(label="gate saturation: one point per unit", show_label=False, elem_id="saturation_fig")
    return Handle(ex, ex.analyses, ckpt, button, layer, note, fig)


def summary_table(sat: dict) -> str:
    """Markdown: per gate, how many units act as switches or are always saturated."""
    rows = ["| gate | units shut on > half the steps | open on > half | saturated on \u2265 90% of steps "
            "| mean share of steps saturated |", "|---|---|---|---|---|"]
    for g in sat["gates"]:
        lo, hi = np.asarray(sat["low"][g]), np.asarray(sat["high"][g])
        rows.append(f"| **{g}** | {int((lo > SWITCH).sum())} | {int((hi > SWITCH).sum())} | "
                    f"{int((lo + hi >= ALWAYS).sum())} | {float((lo + hi).mean()):.0%} |")
    return "\n".join(rows)


def caption(r: SaturationResult) -> str:
    sat, name, cell = r.sat, r.entry.name, r.sat["cell"]
    top = " (top)" if sat["layer"] == r.layers - 1 and r.layers > 1 else ""
    where = f"layer {sat['layer'] + 1} of {r.layers}{top}"
    if not sat["gates"]:
        return (f"**{name}** is a tanh **RNN**: it has no gates, so nothing can saturate (its units are plain "
                "tanh units; see h in *Generate & step*). Pick an LSTM or GRU in the model menu above.")
    took = f" Measured in {r.seconds:.1f} s." if r.seconds else " (Measured earlier: cached.)"
    return (f"**{name}** ({cell.upper()}, {where}, {sat['units']} units per gate): {sat['images']} digits \u00d7 "
            f"{sat['steps']} steps, {r.source}, read with teacher forcing given {r.read_with}.{took}\n\n"
            + summary_table(sat))


GATE_COLORS = {"i": "#38bdf8", "f": "#f97316", "o": "#a3e635", "r": "#f472b6", "z": "#facc15"}


def saturation_figure(sat: dict | None, heading: str | None = None) -> dict:
    """Karpathy et al. (2015) Fig. 4 for one layer: a panel per gate, a point per unit at (fraction
    of steps left-saturated, fraction right-saturated); every point lies in the triangle x + y <= 1.
    Points near the left edge never switch off, near the bottom never fully on; points on the
    diagonal are always saturated one way or the other. Hover shows the unit. ``sat`` is a
    ``rnnviz.analysis.gate_saturation`` result (None: nothing measured yet); ``heading`` starts the
    line above the panels (each panel is titled with its gate). Returns a plain dict
    (``plotly.graph_objects.Figure(d)`` accepts it)."""
    if sat is None:
        return empty_figure("no gate saturation measured yet")
    gates = tuple(sat["gates"])
    if not gates:
        return empty_figure(sat.get("message") or "this cell has no gates")
    lo, hi = sat["low_threshold"], sat["high_threshold"]
    n = len(gates)
    gap = 0.06
    width = (1 - gap * (n - 1)) / n
    data, annotations, shapes = [], [], []
    layout = base_layout(360, (60, 20, 60, 50), showlegend=False)
    for k, g in enumerate(gates):
        ax = "" if k == 0 else str(k + 1)
        x0 = k * (width + gap)
        units = np.arange(len(sat["low"][g]))
        data.append({"type": "scatter", "mode": "markers", "x": np.round(sat["low"][g], 4).tolist(),
                     "y": np.round(sat["high"][g], 4).tolist(), "customdata": units.tolist(),
                     "xaxis": f"x{ax}", "yaxis": f"y{ax}", "name": g,
                     "marker": {"color": GATE_COLORS.get(g, "#9aa5b1"), "size": 7, "opacity": 0.75,
                                "line": {"width": 0.5, "color": "#111827"}},
                     "hovertemplate": (f"{g} unit %{{customdata}}<br>&lt; {lo:g}: %{{x:.1%}} of steps<br>"
                                       f"&gt; {hi:g}: %{{y:.1%}} of steps<extra></extra>")})
        layout[f"xaxis{ax}"] = {"domain": [round(x0, 4), round(x0 + width, 4)], "range": [-0.03, 1.03],
                                "anchor": f"y{ax}", "title": {"text": f"fraction &lt; {lo:g} (left-saturated)"},
                                "zeroline": False, "tickformat": ".0%"}
        layout[f"yaxis{ax}"] = {"domain": [0, 1], "range": [-0.03, 1.03], "anchor": f"x{ax}",
                                "title": {"text": f"fraction &gt; {hi:g} (right-saturated)" if k == 0 else ""},
                                "zeroline": False, "tickformat": ".0%", "scaleanchor": f"x{ax}"}
        shapes.append({"type": "line", "xref": f"x{ax}", "yref": f"y{ax}", "x0": 0, "y0": 1, "x1": 1, "y1": 0,
                       "line": {"color": "#9aa5b1", "width": 1, "dash": "dot"}})
        annotations.append({"text": f"<b>{g}</b> {html.escape(DESCRIPTIONS.get(g, g).split(':')[0])}",
                            "xref": "paper", "yref": "paper", "x": x0 + width / 2, "y": 1.02,
                            "xanchor": "center", "yanchor": "bottom", "showarrow": False})
    annotations.append({"text": html.escape((f"{heading}: " if heading else "") +
                                            f"{sat['cell'].upper()} layer {sat['layer'] + 1}: {sat['units']} units, "
                                            f"{sat['images']} images \u00d7 {sat['steps']} steps"),
                        "xref": "paper", "yref": "paper", "x": 0, "y": 1.12, "xanchor": "left",
                        "yanchor": "bottom", "showarrow": False, "font": {"size": 12}})
    layout.update(shapes=shapes, annotations=annotations)
    return {"data": data, "layout": layout}



def wire(h: Handle, tab=None):
    ex = h.ex

    def measure(key, layer, request: gr.Request):
        """Measure (or fetch) the model's saturation; the top layer when the model changed."""
        sess = ex.sessions.get(session_id(request))
        sess.seen.saturation_open = True
        same = sess.seen.saturation_key == key
        try:
            r = h.analyses.saturation(key, layer if same and layer is not None else None)
        except InputError as e:
            raise message(str(e)) from None
        sess.seen.saturation_key = key
        return (caption(r), plot(saturation_figure(r.sat)),
                gr.Radio(choices=layer_choices(r.layers), value=r.sat["layer"], visible=r.layers > 1))

    def follow_model(key, layer, request: gr.Request):
        """The page's model changed: measure it too, if this visitor has opened the tab."""
        if not ex.sessions.get(session_id(request)).seen.saturation_open:
            return gr.skip(), gr.skip(), gr.skip()
        return measure(key, layer, request)

    inputs, outputs = [h.ckpt, h.layer], [h.note, h.plot, h.layer]
    common = {"concurrency_limit": 1, "concurrency_id": "saturation"}  # one measurement at a time
    h.button.click(measure, inputs, outputs, api_name="saturation", **common)
    h.layer.input(measure, inputs, outputs, api_name="saturation_layer", **common)
    h.ckpt.change(follow_model, inputs, outputs, api_name="saturation_model", show_progress="hidden", **common)
    if tab is not None:
        tab.select(measure, inputs, outputs, api_name="saturation_tab", **common)


# ---- the Train tab: the model being trained ------------------------------------------------------
LIVE_HEADING = "The model being trained (updated with each sample snapshot)"


def render_live() -> gr.Plot:
    """The Train tab's saturation plot (call inside its layout). Its label is for screen readers: a
    shown label floats over the top of the figure, where the gates' panel titles are; the figure
    says what it is itself (``LIVE_HEADING``)."""
    return gr.Plot(label="gate saturation of the model being trained (the first 200 test digits, top layer; "
                         "measured with every sample snapshot)", show_label=False, elem_id="train_saturation")


def version(sat: dict | None):
    """A fingerprint of a saturation result (None: none yet)."""
    if sat is None:
        return None
    h = hashlib.sha1(repr((sat["cell"], sat["layer"], sat["images"])).encode())
    for g in sat["gates"]:
        h.update(np.ascontiguousarray(sat["low"][g]).tobytes())
        h.update(np.ascontiguousarray(sat["high"][g]).tobytes())
    return h.hexdigest()


def wire_live(ex: Explorer, timer: gr.Timer, figure: gr.Plot, train_tab=None):
    """Send the running model's saturation on every tick of the Train tab's timer where it changed,
    and whenever the tab is opened."""
    tr = ex.training

    def live(request, force: bool):
        snap, _ = tr.snapshot()
        sat = None if snap is None else snap.get("saturation")
        sess = ex.sessions.get(session_id(request))
        v = version(sat)
        if snap is None or (v == sess.seen.train_saturation and not force):
            return gr.skip()
        sess.seen.train_saturation = v
        if sat is None:
            return plot(empty_figure("no gate saturation measured yet: it appears with the first "
                                            "sample snapshot"))
        return plot(saturation_figure(sat, LIVE_HEADING))

    def saturation_tick(request: gr.Request):
        return live(request, force=False)

    def saturation_refresh(request: gr.Request):
        return live(request, force=True)

    timer.tick(saturation_tick, None, [figure], api_name="train_saturation_tick", show_progress="hidden")
    if train_tab is not None:
        train_tab.select(saturation_refresh, None, [figure], api_name="train_saturation", show_progress="hidden")
