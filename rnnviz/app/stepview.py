"""Step views: a trace (or a few traces) and a timestep slider that scrubs through its rows.

- ``Player``: the slider, Play/Pause and timer of a step view, bound to a named per-session view
  (``Explorer.sessions.get(session).view(name)``); a subclass says what one frame shows.
- ``StepView``: one canvas + gate grids + units x time figure (Generate, Complete, Reconstruct).
- ``LinkedViews``: several traces side by side (a column of canvas and state grids each) on one
  slider, plus one figure whose cursor follows the slider (Compare cells, Intervene).

Scrubbing sends only small HTML (``cards``: inline native-resolution PNGs, ~10-15 KB a column) and
skips the queue; figures are sent when a trace is loaded and their cursor (shapes named
``cursor``/``band``, see ``figures``) is moved in the browser by ``CURSOR_JS`` (``page.js``). Handlers do no model
math: traces come from ``state.Explorer``.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from . import cards, figures
from . import components as checked
from .components import message, plot, session_id
from .inputs import InputError
from .measurements import unit_studies
from .state import DEFAULT_UNIT_ORDER, Explorer, ViewState

# the page's own JavaScript (page.js): the figures' step cursor, and a click on a unit opening it
CURSOR_JS = "<script>\n" + Path(__file__).with_name("page.js").read_text(encoding="utf-8") + "</script>"

ORDERS = [("index order", "index"), ("by behaviour", "behaviour")]


def layer_choices(nlayers: int) -> list[tuple[str, int]]:
    """The layer menu of a model with ``nlayers`` recurrent layers (0 = bottom)."""
    return [(f"layer {k + 1}" + (" (top)" if k == nlayers - 1 else ""), k) for k in range(nlayers)]


def trace_model_key(ex: Explorer, trace, model_name: str) -> str | None:
    """The checkpoint named ``model_name`` that could have drawn ``trace`` (same cell and sizes;
    the first listed: shipped before runs and uploads), or None."""
    if trace is None:
        return None
    for e in ex.registry.entries():
        c = e.config
        if e.name == model_name and c.cell == trace.cell and c.layers == len(trace.layers) \
                and c.hidden == trace.layers[0]["h"].shape[1]:
            return e.key
    return None


class Player:
    """Slider, Play/Pause and timer of the per-session view ``name``. Subclasses lay out
    ``step``/``play``/``pause``/``timer`` and say what a frame is (``frame``, ``frame_outputs``)."""

    def __init__(self, ex: Explorer, name: str, button: str):
        self.ex, self.name, self.button = ex, name, button

    def render_player(self, label: str, **slider):
        self.step = checked.slider("step", label=label, elem_id=f"{self.name}_step", **slider)

    def render_buttons(self):
        self.play = gr.Button("Play", size="sm", elem_id=f"{self.name}_play")
        self.pause = gr.Button("Pause", size="sm", elem_id=f"{self.name}_pause")

    def render_timer(self):
        self.timer = gr.Timer(0.25, active=False)

    # ---- what subclasses define --------------------------------------------------------------------
    frame_outputs: list  # the components a frame fills

    def has_content(self, v: ViewState) -> bool:
        return v.trace is not None

    def frame(self, v: ViewState, step: int) -> list:
        """The values of ``frame_outputs`` at ``step``."""
        raise NotImplementedError

    # ---- handlers ------------------------------------------------------------------------------------
    def view(self, request) -> ViewState:
        return self.ex.sessions.get(session_id(request)).view(self.name)

    def _current(self, request) -> ViewState:
        v = self.view(request)
        if not self.has_content(v):
            raise InputError(f"Nothing to step through yet (or it expired): press {self.button} first.")
        return v

    @staticmethod
    def clamp_step(v: ViewState, t) -> int:
        """The slider's value ``t`` as a step of the view's trace."""
        return int(max(0, min(v.trace.steps - 1, round(float(t or 0)))))

    def _frame(self, request, t) -> tuple[int, list]:
        v = self._current(request)
        step = self.clamp_step(v, t)
        return step, self.frame(v, step)

    def scrub(self, t, request: gr.Request):
        try:
            return self._frame(request, t)[1]
        except InputError as e:
            raise message(str(e)) from None

    def tick(self, t, request: gr.Request):
        """One Play frame: the next step. Stops at the last row, or when Pause was pressed (a tick
        already on its way then must not turn the timer back on)."""
        try:
            v = self._current(request)
            if not v.playing:
                raise InputError("paused")
            step, out = self._frame(request, int(t or 0) + 1)
        except InputError:
            return [gr.skip()] * (1 + len(self.frame_outputs)) + [gr.Timer(active=False)]
        v.playing = step < v.trace.steps - 1
        return [step] + out + [gr.Timer(active=v.playing)]

    def start_play(self, t, request: gr.Request):
        try:
            v = self._current(request)
            step, out = self._frame(request, 0 if int(t or 0) >= v.trace.steps - 1 else int(t or 0))
        except InputError as e:
            raise message(str(e)) from None
        v.playing = True
        return [step] + out + [gr.Timer(active=True)]

    def stop_play(self, request: gr.Request):
        self.view(request).playing = False
        return gr.Timer(active=False)

    def wire(self):
        """Scrubbing skips the queue and keeps only the latest position; the figure's cursor
        ('<name>_fig') moves in the browser."""
        n, outs = self.name, self.frame_outputs
        frame = [self.step] + outs + [self.timer]
        self.step.input(self.scrub, [self.step], outs, api_name=f"{n}_step", trigger_mode="always_last",
                        show_progress="hidden", concurrency_limit=None, queue=False)
        cursor = f"(t) => {{ window.rnnvizCursor && window.rnnvizCursor('{n}_fig', t); }}"
        self.step.change(None, [self.step], None, js=cursor)  # in the browser only
        self.play.click(self.start_play, [self.step], frame, api_name=f"{n}_play", show_progress="hidden",
                        queue=False)
        self.pause.click(self.stop_play, None, [self.timer], api_name=f"{n}_pause", show_progress="hidden",
                         queue=False)
        self.timer.tick(self.tick, [self.step], frame, api_name=f"{n}_tick", show_progress="hidden",
                        concurrency_limit=None, queue=False)


class StepView(Player):
    """Canvas, timestep slider, Play/Pause, gate grids and units x time figure for one trace.

    The grids and the figure show the units in index order or by behaviour (``units.unit_order``
    over the model's test digits, cached per model and layer by ``measurements.UnitStudies``);
    each visitor's choice lives in their ``ViewState``. Clicking a unit opens it in the Units tab
    (``CURSOR_JS``)."""

    def __init__(self, ex: Explorer, name: str, button: str = "Generate"):
        super().__init__(ex, name, button)

    # ---- layout ----------------------------------------------------------------------------------
    def render_canvas(self):
        self.canvas = gr.HTML(cards.empty_canvas(self.button), elem_id=f"{self.name}_canvas", padding=False)
        self.render_player("timestep t = the row being drawn")
        with gr.Row():
            self.render_buttons()
        self.render_timer()

    def render_gates(self):
        self.layer = gr.Radio([("layer 1", 0)], value=0, label="layer", visible=False,
                              elem_id=f"{self.name}_layer")
        self.order = gr.Radio(ORDERS, value=DEFAULT_UNIT_ORDER, label="units in", elem_id=f"{self.name}_order",
                              info="by behaviour: sorted by the row where each unit is most active on test "
                                   "digits. Click a unit to inspect it.")
        self.gates = gr.HTML(cards.EMPTY_GATES, elem_id=f"{self.name}_gates", padding=False,
                             elem_classes="rv-inspectable")

    def render_figure(self):
        self.fig = gr.Plot(label="every unit at every step (hover for unit, step and value; click a unit to "
                                 "inspect it in the Units tab)", elem_id=f"{self.name}_fig",
                           elem_classes="rv-inspectable")

    @property
    def frame_outputs(self) -> list:
        return [self.canvas, self.gates]

    @property
    def load_outputs(self) -> list:
        return [self.canvas, self.gates, self.fig, self.step, self.layer]

    # ---- handlers --------------------------------------------------------------------------------
    def _reorder(self, v: ViewState):
        """Set ``v.unit_perm`` for the view's trace and layer (None in index order, or when the
        order cannot be measured: ``v.order_note`` says why)."""
        v.unit_perm, v.order_note = None, ""
        if v.unit_order != "behaviour" or v.trace is None:
            return
        if v.model_key is None:
            v.order_note = "index order: the model of this trace is not in the model list"
            return
        try:
            _, _, v.unit_perm = unit_studies(self.ex).order(v.model_key, v.layer)
        except InputError as e:
            v.order_note = f"index order ({e})"

    def _figure(self, v: ViewState, step: int):
        return plot(figures.units_time_figure(v.trace, v.layer, step, order=v.unit_perm))

    def frame(self, v: ViewState, step: int) -> list:
        return [cards.canvas_html(v.trace, step), cards.gates_html(v.trace, step, v.layer, order=v.unit_perm)]

    def load(self, request, trace, model_name: str, layer: int | None = None, step: int = 0,
             key: str | None = None) -> list:
        """Store ``trace`` as this session's current trace and return every view at ``step``
        (0 unless a deep link asks for another). ``key``: the checkpoint that drew it (None: found
        by ``model_name``), for the unit order."""
        v = self.view(request)
        nlayers = len(trace.layers)
        v.trace, v.model_name, v.playing = trace, model_name, False
        v.layer = nlayers - 1 if layer is None else max(0, min(int(layer), nlayers - 1))
        step = max(0, min(int(step), trace.steps - 1))
        v.model_key = key or trace_model_key(self.ex, trace, model_name)
        self._reorder(v)
        return self.frame(v, step) + [self._figure(v, step), step,
                                      gr.Radio(choices=layer_choices(nlayers), value=v.layer, visible=nlayers > 1)]

    def _redraw(self, request, t):
        """The grids and the figure again (another layer or order)."""
        v = self._current(request)
        self._reorder(v)
        step = self.clamp_step(v, t)
        if v.order_note:
            gr.Warning(f"Units shown in {v.order_note}.")
        return cards.gates_html(v.trace, step, v.layer, order=v.unit_perm), self._figure(v, step)

    def set_layer(self, layer, t, request: gr.Request):
        try:
            v = self._current(request)
            v.layer = max(0, min(int(layer or 0), len(v.trace.layers) - 1))
            return self._redraw(request, t)
        except InputError as e:
            raise message(str(e)) from None

    def set_order(self, mode, t, request: gr.Request):
        """Index order or by behaviour (the Radio refuses other values)."""
        try:
            self.view(request).unit_order = mode
            return self._redraw(request, t)
        except InputError as e:
            raise message(str(e)) from None

    def wire(self):
        super().wire()
        self.layer.input(self.set_layer, [self.layer, self.step], [self.gates, self.fig],
                         api_name=f"{self.name}_layer", show_progress="hidden")
        self.order.input(self.set_order, [self.order, self.step], [self.gates, self.fig],
                         api_name=f"{self.name}_order", show_progress="hidden")


class LinkedViews(Player):
    """Several traces side by side, one slider: ``columns`` HTML columns (title, canvas and state
    grids of one trace each, see ``cards.step_column_html``), a timestep slider, Play/Pause and one
    figure whose cursor follows the slider. ``load`` stores the traces in the per-session view
    ``name``; subclasses may add outputs to every frame (``extra_frame``)."""

    def __init__(self, ex: Explorer, name: str, columns: int, button: str, names=None):
        super().__init__(ex, name, button)
        self.ncols = columns
        self.names = names  # cell -> the gates/states to show (None: all of them)
        self.extra_outputs: list = []

    # ---- layout ----------------------------------------------------------------------------------
    def render(self, figure_label: str, scale: int = 4, min_width: int = 250):
        """The columns, the slider with Play/Pause under them, and the figure under those."""
        self.render_columns(scale, min_width)
        self.render_controls()
        self.render_figure(figure_label)

    def render_columns(self, scale: int = 4, min_width: int = 240):
        self.cols = []
        with gr.Row(equal_height=False, elem_classes="rv-linked"):
            for k in range(self.ncols):
                with gr.Column(scale=scale, min_width=min_width):
                    self.cols.append(gr.HTML(cards.empty_column_html(self.button if k == 0 else ""),
                                             elem_id=f"{self.name}_col{k}", padding=False))
            self.render_extra_columns()

    def render_extra_columns(self):
        """Subclasses: more columns in the same row (their components go in ``extra_outputs``)."""

    def render_controls(self):
        with gr.Row(equal_height=False, elem_classes="rv-linked-controls"):
            self.render_player("timestep t = the row being drawn (one slider for every column)", scale=8)
            with gr.Column(scale=1, min_width=90):
                self.render_buttons()
        self.render_timer()

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
    def has_content(self, v: ViewState) -> bool:
        return bool(v.traces)

    def load(self, request, traces: list, titles: list[str], figure: dict, layer: int = -1,
             comparison=None) -> list:
        """Store the traces (at most ``columns``) and return every view at step 0. Unused columns
        are emptied. ``comparison`` (Intervene) is kept in the view for ``extra_frame``."""
        if not 1 <= len(traces) <= self.ncols:
            raise ValueError(f"{self.name}: need 1 to {self.ncols} traces, got {len(traces)}")
        v = self.view(request)
        v.traces, v.playing, v.layer = list(traces), False, layer
        v.titles, v.comparison, v.trace = list(titles), comparison, traces[0]
        return self.frame(v, 0) + [plot(figure), 0]

    def frame(self, v: ViewState, step: int) -> list:
        cols = [cards.step_column_html(tr, step, title, v.layer, None if self.names is None else self.names(tr.cell))
                for tr, title in zip(v.traces, v.titles)]
        return cols + [""] * (self.ncols - len(cols)) + self.extra_frame(v, step)

    def extra_frame(self, v: ViewState, step: int) -> list:
        """Subclasses: the values of ``extra_outputs`` at ``step``."""
        return []
