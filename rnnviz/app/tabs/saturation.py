"""Gate saturation: how often each gate unit of the page's model sits at its ends.

Karpathy, Johnson & Fei-Fei (2015), Fig. 4: per unit of every sigmoid gate, the fraction of steps
it is below 0.1 (left-saturated) against the fraction above 0.9 (right-saturated), over test digits
read with teacher forcing (``rnnviz.analysis.gate_saturation`` via ``analyses.Analyses``, cached per
checkpoint file and layer). The tab measures when it is opened, when Measure is pressed, and when the
page's model changes after this visitor has opened it.

Also the Train tab's live view of the same figure for the model being trained
(``render_live``/``wire_live``): the trainer measures it with every sample snapshot
(``Trainer.snapshot()["saturation"]``); the timer sends it only when it changed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import gradio as gr
import numpy as np

from .. import views
from ..analyses import Analyses, SaturationResult
from ..components import message
from ..inputs import InputError
from ..state import Explorer
from ..stepview import _plot, _session

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
    plot = gr.Plot(label="gate saturation: one point per unit", show_label=False, elem_id="saturation_fig")
    return Handle(ex, Analyses(ex), ckpt, button, layer, note, plot)


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


def wire(h: Handle, tab=None):
    ex = h.ex

    def measure(key, layer, request: gr.Request):
        """Measure (or fetch) the model's saturation; the top layer when the model changed."""
        sess = ex.sessions.get(_session(request))
        sess.seen["saturation_open"] = True
        same = sess.seen.get("saturation_key") == key
        try:
            r = h.analyses.saturation(key, layer if same and layer is not None else None)
        except InputError as e:
            raise message(str(e)) from None
        sess.seen["saturation_key"] = key
        L = r.layers
        choices = [(f"layer {k + 1}" + (" (top)" if k == L - 1 else ""), k) for k in range(L)]
        return (caption(r), _plot(views.saturation_figure(r.sat)),
                gr.Radio(choices=choices, value=r.sat["layer"], visible=L > 1))

    def follow_model(key, layer, request: gr.Request):
        """The page's model changed: measure it too, if this visitor has opened the tab."""
        if not ex.sessions.get(_session(request)).seen.get("saturation_open"):
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
def render_live() -> gr.Plot:
    """The Train tab's saturation plot (call inside its layout)."""
    return gr.Plot(label="gate saturation of the model being trained (the first 200 test digits, top layer; "
                         "measured with every sample snapshot)", elem_id="train_saturation")


def version(sat: dict | None):
    """A fingerprint of a saturation result (None: none yet)."""
    if sat is None:
        return None
    h = hashlib.sha1(repr((sat["cell"], sat["layer"], sat["images"])).encode())
    for g in sat["gates"]:
        h.update(np.ascontiguousarray(sat["low"][g]).tobytes())
        h.update(np.ascontiguousarray(sat["high"][g]).tobytes())
    return h.hexdigest()


def wire_live(ex: Explorer, timer: gr.Timer, plot: gr.Plot, train_tab=None):
    """Send the running model's saturation on every tick of the Train tab's timer where it changed,
    and whenever the tab is opened."""
    tr = ex.training

    def live(request, force: bool):
        snap, _ = tr.snapshot()
        sat = None if snap is None else snap.get("saturation")
        sess = ex.sessions.get(_session(request))
        v = version(sat)
        if snap is None or (v == sess.seen.get("train_saturation") and not force):
            return gr.skip()
        sess.seen["train_saturation"] = v
        if sat is None:
            return _plot(views.empty_figure("no gate saturation measured yet: it appears with the first "
                                            "sample snapshot"))
        return _plot(views.saturation_figure(sat))

    def saturation_tick(request: gr.Request):
        return live(request, force=False)

    def saturation_refresh(request: gr.Request):
        return live(request, force=True)

    timer.tick(saturation_tick, None, [plot], api_name="train_saturation_tick", show_progress="hidden")
    if train_tab is not None:
        train_tab.select(saturation_refresh, None, [plot], api_name="train_saturation", show_progress="hidden")
