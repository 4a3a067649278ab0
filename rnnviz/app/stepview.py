"""Step views: a trace (or a few traces) and a timestep slider that scrubs through its 28 rows.

- ``StepView``: one canvas + slider + Play/Pause + gate grids + units x time figure, bound to a named
  per-session view (``Explorer.sessions.get(session).view(name)``). The Generate, Complete and
  Reconstruct tabs each have one.
- ``LinkedViews``: several traces side by side (a column of canvas and state grids each) driven by
  one slider and one Play button, plus one figure whose cursor follows the slider (Compare cells,
  Intervene).

Scrubbing sends only small HTML (inline native-resolution PNGs, ~10-15 KB a column) and skips the
queue; figures are sent when a trace is loaded and their cursor (shapes named ``cursor``/``band``) is
moved in the browser by ``CURSOR_JS``. Handlers do no model math: traces come from ``state.Explorer``
and are drawn by ``views``.
"""

from __future__ import annotations

import html
import json
from contextlib import nullcontext

import gradio as gr
from gradio.components.plot import PlotData

from . import components as checked
from . import views
from .components import message
from .inputs import InputError
from .state import Explorer

STEPS = 28
DIGITS = ["any"] + [str(d) for d in range(10)]

CURSOR_JS = """<script>
window.rnnvizCursor = function (id, t) {
  const gd = document.querySelector('#' + id + ' .js-plotly-plot');
  if (!gd || !window.Plotly || !gd.layout || !gd.layout.shapes) return;
  const u = {};
  gd.layout.shapes.forEach(function (s, k) {
    if (s.name === 'cursor') { u['shapes[' + k + '].x0'] = t; u['shapes[' + k + '].x1'] = t; }
    else if (s.name === 'band') { u['shapes[' + k + '].x0'] = t - 0.5; u['shapes[' + k + '].x1'] = t + 0.5; }
  });
  window.Plotly.relayout(gd, u);
};
</script>"""


def _session(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None) if request is not None else None


def _warn(notes):
    for note in notes:
        if note:
            gr.Warning(note)


def _plot(fig: dict) -> PlotData:
    """A plotly figure dict as gr.Plot's payload (skips building a validated go.Figure, ~250 ms)."""
    return PlotData(type="plotly", plot=json.dumps(fig))


def empty_canvas(button: str = "Generate") -> str:
    """The canvas before anything was drawn: a dark square and which button to press."""
    return ('<div class="rv-canvas-wrap"><div class="rv-canvas-col"><div class="rv-canvas"></div></div>'
            f'<div class="rv-side">Press <b>{html.escape(button)}</b>.</div></div>')


EMPTY_CANVAS = empty_canvas()
EMPTY_GATES = '<div class="rv-gates-head">The gates and states of the recurrent layer appear here.</div>'


def sample_controls(prefix: str, side_by_side: bool = False):
    """The digit, temperature and seed inputs of a tab that samples (elem ids ``<prefix>_digit``,
    ``_temperature``, ``_seed``); ``side_by_side`` puts temperature and seed in one row."""
    digit = gr.Radio(DIGITS, value="7", label="digit", elem_id=f"{prefix}_digit")
    with gr.Row() if side_by_side else nullcontext():
        temperature = checked.Slider(0.1, 2.0, value=1.0, step=0.05, label="temperature",
                                     elem_id=f"{prefix}_temperature", **({"min_width": 110} if side_by_side else {}))
        seed = checked.Number(0, precision=0, minimum=0, label="seed", elem_id=f"{prefix}_seed",
                              **({"min_width": 90} if side_by_side else {}))
    return digit, temperature, seed


class StepView:
    """Canvas, timestep slider, Play/Pause, gate grids and units x time figure for one trace."""

    def __init__(self, ex: Explorer, name: str, button: str = "Generate"):
        self.ex, self.name, self.button = ex, name, button

    # ---- layout ----------------------------------------------------------------------------------
    def render_canvas(self):
        self.canvas = gr.HTML(empty_canvas(self.button), elem_id=f"{self.name}_canvas", padding=False)
        self.step = checked.Slider(0, STEPS - 1, value=0, step=1, label="timestep t = the row being drawn",
                                   elem_id=f"{self.name}_step")
        with gr.Row():
            self.play = gr.Button("Play", size="sm", elem_id=f"{self.name}_play")
            self.pause = gr.Button("Pause", size="sm", elem_id=f"{self.name}_pause")
        self.timer = gr.Timer(0.25, active=False)

    def render_gates(self):
        self.layer = gr.Radio([("layer 1", 0)], value=0, label="layer", visible=False,
                              elem_id=f"{self.name}_layer")
        self.gates = gr.HTML(EMPTY_GATES, elem_id=f"{self.name}_gates", padding=False)

    def render_figure(self):
        self.fig = gr.Plot(label="every unit at every step (hover for unit, step and value)",
                           elem_id=f"{self.name}_fig")

    @property
    def load_outputs(self) -> list:
        return [self.canvas, self.gates, self.fig, self.step, self.layer]

    # ---- handlers --------------------------------------------------------------------------------
    def load(self, request, trace, model_name: str, layer: int | None = None) -> list:
        """Store ``trace`` as this session's current trace and return every view at step 0."""
        v = self.ex.sessions.get(_session(request)).view(self.name)
        nlayers = len(trace.layers)
        v.trace, v.model_name, v.playing = trace, model_name, False
        v.layer = nlayers - 1 if layer is None else max(0, min(int(layer), nlayers - 1))
        choices = [(f"layer {k + 1}" + (" (top)" if k == nlayers - 1 else ""), k) for k in range(nlayers)]
        return [views.canvas_html(trace, 0), views.gates_html(trace, 0, v.layer),
                _plot(views.units_time_figure(trace, v.layer, 0)), 0,
                gr.Radio(choices=choices, value=v.layer, visible=nlayers > 1)]

    def _current(self, request):
        v = self.ex.sessions.get(_session(request)).view(self.name)
        if v.trace is None:
            raise InputError(f"Nothing to step through yet (or it expired): press {self.button} first.")
        return v

    def _frame(self, request, t) -> tuple[int, str, str]:
        v = self._current(request)
        step = int(max(0, min(STEPS - 1, round(float(t or 0)))))
        return step, views.canvas_html(v.trace, step), views.gates_html(v.trace, step, v.layer)

    def scrub(self, t, request: gr.Request):
        try:
            _, canvas, gates = self._frame(request, t)
        except InputError as e:
            raise message(str(e)) from None
        return canvas, gates

    def tick(self, t, request: gr.Request):
        """One Play frame: the next step. Stops at the last row, or when Pause was pressed (a tick
        already on its way then must not turn the timer back on)."""
        try:
            v = self._current(request)
            if not v.playing:
                raise InputError("paused")
            step, canvas, gates = self._frame(request, int(t or 0) + 1)
        except InputError:
            return gr.skip(), gr.skip(), gr.skip(), gr.Timer(active=False)
        v.playing = step < STEPS - 1
        return step, canvas, gates, gr.Timer(active=v.playing)

    def start_play(self, t, request: gr.Request):
        start = 0 if int(t or 0) >= STEPS - 1 else int(t or 0)
        try:
            step, canvas, gates = self._frame(request, start)
        except InputError as e:
            raise message(str(e)) from None
        self._current(request).playing = True
        return step, canvas, gates, gr.Timer(active=True)

    def stop_play(self, request: gr.Request):
        self.ex.sessions.get(_session(request)).view(self.name).playing = False
        return gr.Timer(active=False)

    def set_layer(self, layer, t, request: gr.Request):
        try:
            v = self._current(request)
        except InputError as e:
            raise message(str(e)) from None
        v.layer = max(0, min(int(layer or 0), len(v.trace.layers) - 1))
        step = int(max(0, min(STEPS - 1, round(float(t or 0)))))
        return views.gates_html(v.trace, step, v.layer), _plot(views.units_time_figure(v.trace, v.layer, step))

    def wire(self):
        wire_player(self, [self.canvas, self.gates])
        self.layer.input(self.set_layer, [self.layer, self.step], [self.gates, self.fig],
                         api_name=f"{self.name}_layer", show_progress="hidden")


class LinkedViews:
    """Several traces side by side, one slider: ``columns`` HTML columns (title, canvas and state
    grids of one trace each, see ``views.step_column_html``), a timestep slider, Play/Pause and one
    figure whose cursor follows the slider. ``load`` stores the traces in the per-session view
    ``name``; subclasses may add outputs to every frame (``extra_frame``)."""

    def __init__(self, ex: Explorer, name: str, columns: int, button: str, names=None):
        self.ex, self.name, self.ncols, self.button = ex, name, columns, button
        self.names = names  # cell -> the gates/states to show (None: all of them)
        self.extra_outputs: list = []

    # ---- layout ----------------------------------------------------------------------------------
    def render_columns(self, scale: int = 4, min_width: int = 240):
        self.cols = []
        with gr.Row(equal_height=False, elem_classes="rv-linked"):
            for k in range(self.ncols):
                with gr.Column(scale=scale, min_width=min_width):
                    self.cols.append(gr.HTML(views.empty_column_html(self.button if k == 0 else ""),
                                             elem_id=f"{self.name}_col{k}", padding=False))
            self.render_extra_columns()

    def render_extra_columns(self):
        """Subclasses: more columns in the same row (their components go in ``extra_outputs``)."""

    def render_controls(self):
        with gr.Row(equal_height=False, elem_classes="rv-linked-controls"):
            self.step = checked.Slider(0, STEPS - 1, value=0, step=1, label="timestep t = the row being drawn "
                                       "(one slider for every column)", elem_id=f"{self.name}_step", scale=8)
            with gr.Column(scale=1, min_width=90):
                self.play = gr.Button("Play", size="sm", elem_id=f"{self.name}_play")
                self.pause = gr.Button("Pause", size="sm", elem_id=f"{self.name}_pause")
        self.timer = gr.Timer(0.25, active=False)

    def render_figure(self, label: str):
        """The figure (its title is drawn in the figure; ``label`` names it for screen readers)."""
        self.fig = gr.Plot(label=label, show_label=False, elem_id=f"{self.name}_fig")

    @property
    def frame_outputs(self) -> list:
        return self.cols + self.extra_outputs

    @property
    def load_outputs(self) -> list:
        """What ``load`` returns: the columns (+ extra outputs), the figure and the slider."""
        return self.frame_outputs + [self.fig, self.step]

    # ---- handlers --------------------------------------------------------------------------------
    def load(self, request, traces: list, titles: list[str], figure: dict, layer: int = -1, **extra) -> list:
        """Store the traces (at most ``columns``) and return every view at step 0. Unused columns
        are emptied. ``extra`` is kept in the view for ``extra_frame``."""
        if not 1 <= len(traces) <= self.ncols:
            raise ValueError(f"{self.name}: need 1 to {self.ncols} traces, got {len(traces)}")
        v = self.ex.sessions.get(_session(request)).view(self.name)
        v.traces, v.playing, v.layer = list(traces), False, layer
        v.extra = {"titles": list(titles), **extra}
        v.trace = traces[0]
        cols = self._columns(v, 0)
        cols += [""] * (self.ncols - len(cols))
        return cols + self.extra_frame(v, 0) + [_plot(figure), 0]

    def _columns(self, v, step: int) -> list[str]:
        return [views.step_column_html(tr, step, title, v.layer,
                                       None if self.names is None else self.names(tr.cell))
                for tr, title in zip(v.traces, v.extra["titles"])]

    def extra_frame(self, v, step: int) -> list:
        """Subclasses: the values of ``extra_outputs`` at ``step``."""
        return []

    def _current(self, request):
        v = self.ex.sessions.get(_session(request)).view(self.name)
        if not v.traces:
            raise InputError(f"Nothing to step through yet (or it expired): press {self.button} first.")
        return v

    def _frame(self, request, t) -> tuple[int, list]:
        v = self._current(request)
        step = int(max(0, min(STEPS - 1, round(float(t or 0)))))
        cols = self._columns(v, step)
        return step, cols + [""] * (self.ncols - len(cols)) + self.extra_frame(v, step)

    def scrub(self, t, request: gr.Request):
        try:
            _, out = self._frame(request, t)
        except InputError as e:
            raise message(str(e)) from None
        return out

    def tick(self, t, request: gr.Request):
        """One Play frame (see ``StepView.tick``)."""
        try:
            v = self._current(request)
            if not v.playing:
                raise InputError("paused")
            step, out = self._frame(request, int(t or 0) + 1)
        except InputError:
            return [gr.skip()] * (1 + len(self.frame_outputs)) + [gr.Timer(active=False)]
        v.playing = step < STEPS - 1
        return [step] + out + [gr.Timer(active=v.playing)]

    def start_play(self, t, request: gr.Request):
        start = 0 if int(t or 0) >= STEPS - 1 else int(t or 0)
        try:
            step, out = self._frame(request, start)
        except InputError as e:
            raise message(str(e)) from None
        self._current(request).playing = True
        return [step] + out + [gr.Timer(active=True)]

    def stop_play(self, request: gr.Request):
        self.ex.sessions.get(_session(request)).view(self.name).playing = False
        return gr.Timer(active=False)

    def wire(self):
        wire_player(self, self.frame_outputs)


def wire_player(view, frame_outputs: list):
    """The slider, Play, Pause and timer of a ``StepView`` or ``LinkedViews``, whose frames fill
    ``frame_outputs``. Scrubbing skips the queue and keeps only the latest position; the units x time
    cursor ('<name>_fig') moves in the browser."""
    n = view.name
    frame = [view.step] + frame_outputs + [view.timer]
    view.step.input(view.scrub, [view.step], frame_outputs, api_name=f"{n}_step",
                    trigger_mode="always_last", show_progress="hidden", concurrency_limit=None, queue=False)
    cursor = f"(t) => {{ window.rnnvizCursor && window.rnnvizCursor('{n}_fig', t); }}"
    view.step.change(None, [view.step], None, js=cursor)  # in the browser only
    view.play.click(view.start_play, [view.step], frame, api_name=f"{n}_play", show_progress="hidden",
                    queue=False)
    view.pause.click(view.stop_play, None, [view.timer], api_name=f"{n}_pause", show_progress="hidden",
                     queue=False)
    view.timer.tick(view.tick, [view.step], frame, api_name=f"{n}_tick", show_progress="hidden",
                    concurrency_limit=None, queue=False)
