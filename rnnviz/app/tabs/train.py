"""Train: train a model on this server while exploring, and watch it learn.

One run at a time per server (``training.TrainingService``); the timer sends new curve points,
samples and the status while it goes, and the model list once its checkpoint appears. The run's
live gate saturation is the Gate saturation tab's figure (``saturation.render_live``/``wire_live``).
The status text and the loss curve's rows are pure functions of the trainer's snapshot.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from PIL import Image

from ...model import CELLS
from ...render import grid_image
from .. import components as checked
from ..components import session_id, warn
from ..inputs import InputError
from ..operations import Explorer
from ..training import EMA_DECAY, TrainingRefused
from . import saturation

NAME = "train"
SERIES_COLOURS = {"train loss": "#4c78a8", "test NLL": "#e45756", "validation NLL": "#54a24b"}  # curve_rows' series


# ---- what the tab shows (pure) -------------------------------------------------------------------
def downsample(xs: list, max_points: int) -> list:
    """Every k-th item so that at most ``max_points`` remain (always keeping the last)."""
    if len(xs) <= max_points:
        return list(xs)
    k = math.ceil(len(xs) / max_points)
    out = list(xs[::k])
    if out[-1] is not xs[-1]:
        out.append(xs[-1])
    return out


def curve_rows(history: list[dict], max_points: int = 400, expect: tuple[str, ...] = ()) -> list[dict]:
    """Long-format rows {step, nats, series} for a line plot: train loss (downsampled) and every
    test NLL and validation NLL (there are few). Each series in ``expect`` that has no point yet
    gets one row with ``nats`` None, which the plot does not draw: Gradio's LinePlot fixes its
    colour domain, and so its legend and lines, from the series of the first frame it gets, so
    a run's first frame must already name the scores that come later."""
    train = [h for h in history if h.get("train_loss") is not None and math.isfinite(h["train_loss"])]
    rows = [{"step": h["step"], "nats": round(float(h["train_loss"]), 3), "series": "train loss"}
            for h in downsample(train, max_points)]
    for key, series in (("test_nll", "test NLL"), ("val_nll", "validation NLL")):
        rows += [{"step": h["step"], "nats": round(float(h[key]), 3), "series": series}
                 for h in history if h.get(key) is not None and math.isfinite(h[key])]
    if rows:
        have = {r["series"] for r in rows}
        rows += [{"step": rows[0]["step"], "nats": None, "series": s} for s in expect if s not in have]
    return rows


def expected_series(val_images: int, final_eval: bool = True) -> tuple[str, ...]:
    """The curve's series for a run: the train loss and the periodic score (on held-out training
    images with a validation split, else on test images) and, where a validation run ends with a
    final evaluation, its test score."""
    if not val_images:
        return ("train loss", "test NLL")
    return ("train loss", "validation NLL") + (("test NLL",) if final_eval else ())


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def training_status(snap: dict | None, run: dict | None = None) -> str:
    """Markdown status of the training run: state, progress, speed, latest losses."""
    if snap is None:
        return "No training run yet. Choose the settings and press **Start**."
    hist = [h for h in snap["history"] if h.get("samples_per_s")]
    speed = f"{hist[-1]['samples_per_s']:.0f} images/s" if hist else "\u2013"
    loss = next((h["train_loss"] for h in reversed(snap["history"])
                 if h.get("train_loss") is not None and math.isfinite(h["train_loss"])), None)
    test = next((h["test_nll"] for h in reversed(snap["history"]) if h.get("test_nll") is not None), None)
    state = snap["state"] + (" (paused)" if snap.get("paused") and snap["state"] == "running" else "")
    lines = [f"**{state}**: {html.escape(snap.get('message') or '')}"]
    if run:
        lines.append(f"{run['summary']} \u00b7 started {run['started']} by {run['who']}")
    going = snap["state"] in ("running", "paused")
    left = f"{_duration(snap['seconds_left'])} left \u00b7 " if going else ""
    lines.append(f"step {snap['step']} \u00b7 {_duration(snap['seconds'])} trained \u00b7 {left}{speed}")
    dash = "\u2013"
    lines.append(f"train loss {dash if loss is None else f'{loss:.2f}'} nats \u00b7 "
                 f"test NLL {dash if test is None else f'{test:.2f}'} nats")
    if snap.get("checkpoint"):
        lines.append(f"checkpoint: `{Path(snap['checkpoint']).name}`")  # never the server's full path
    return "  \n".join(lines)


def sample_grid(samples: np.ndarray | None, cols: int = 10, scale: int = 3) -> Image.Image | None:
    """The trainer's latest samples as one crisp grid image."""
    if samples is None or len(samples) == 0:
        return None
    return grid_image(np.asarray(samples, np.float32), min(cols, len(samples)), scale)


# ---- the tab ------------------------------------------------------------------------------------
@dataclass
class Handle:
    ex: Explorer
    ckpt: gr.Dropdown
    notice: gr.Markdown
    cell: gr.Radio
    hidden: gr.Slider
    layers: gr.Slider
    lr: gr.Number
    batch: gr.Slider
    minutes: gr.Slider
    dataset: gr.Dropdown
    dropout: gr.Slider
    ema: gr.Checkbox
    name: gr.Textbox
    start: gr.Button
    pause: gr.Button
    resume: gr.Button
    stop: gr.Button
    status: gr.Markdown
    curve: gr.LinePlot
    samples: gr.Image
    saturation: gr.Plot
    timer: gr.Timer

    @property
    def refresh_outputs(self) -> list:
        """What ``refresh`` fills: status, curve, samples and the timer."""
        return [self.status, self.curve, self.samples, self.timer]


def build(ex: Explorer, ckpt) -> Handle:
    """The tab's layout (call inside its ``gr.Tab``); ``ckpt`` (the page's model menu) learns of
    the run's checkpoint when it appears."""
    tr = ex.training
    notice = gr.Markdown(_notice(ex), elem_id="train_notice")
    enabled = tr.enabled
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=260):
            cell = gr.Radio(list(CELLS), value="lstm", label="cell", interactive=enabled)
            # every range below is the training service's own table (TRAIN_LIMITS): what it checks
            hidden = checked.Slider(*tr.limits["hidden"], value=128, step=8, label="hidden units", interactive=enabled,
                                    elem_id="train_hidden")
            layers = checked.Slider(*tr.limits["layers"], value=1, step=1, label="layers", interactive=enabled)
            # no bounds here: the training service clamps it to its limits and says so
            lr = checked.Number(2e-3, label="learning rate", step=5e-4, interactive=enabled)
            batch = checked.Slider(*tr.limits["batch_size"], value=64, step=8, label="batch size", interactive=enabled)
            minutes = checked.Slider(*tr.limits["minutes"], value=min(5.0, tr.max_minutes), step=0.05,
                                     label="time budget (minutes)", interactive=enabled, elem_id="train_minutes")
            choices = tr.dataset_choices()
            dataset = gr.Dropdown([(Path(c).name, c) for c in choices], value=choices[0], label="dataset",
                                  interactive=enabled, elem_id="train_dataset")
            with gr.Accordion("regularization (for larger models and longer runs)", open=False):
                dropout = checked.Slider(*tr.limits["dropout"], value=0.0, step=0.05, label="dropout",
                                         info="drops this fraction of the recurrent output, of what stacked layers "
                                              "pass on and of the head's hidden units, while training",
                                         interactive=enabled, elem_id="train_dropout")
                ema = gr.Checkbox(False, label=f"average the weights (EMA, decay {EMA_DECAY})",
                                  info="the average is what is sampled, scored and saved", interactive=enabled,
                                  elem_id="train_ema")
            name = gr.Textbox(label="run name (optional)", placeholder="e.g. my_lstm", interactive=enabled,
                              max_lines=1)
            with gr.Row():
                start = gr.Button("Start", variant="primary", interactive=enabled, elem_id="train_start")
                pause = gr.Button("Pause", interactive=enabled, elem_id="train_pause")
                resume = gr.Button("Resume", interactive=enabled, elem_id="train_resume")
                stop = gr.Button("Stop", variant="stop", interactive=enabled, elem_id="train_stop")
        with gr.Column(scale=5, min_width=320):
            status = gr.Markdown(training_status(None), elem_id="train_status")
            # starts as None: a LinePlot whose first value is an empty frame never draws its lines
            # fixed colours per series; the plot's legend is that of its first frame, which is why
            # curve_rows names the scores still to come (expected_series)
            curve = gr.LinePlot(None, x="step", y="nats", color="series", title="loss (nats per image)", height=280,
                                elem_id="train_curve", x_title="step", y_title="nats / image", color_map=SERIES_COLOURS)
            samples = gr.Image(label="samples from the model being trained (one per digit)", format="png",
                               interactive=False, elem_id="train_samples", height=130, buttons=[])
            live = saturation.render_live()
    timer = gr.Timer(1.0, active=False)
    return Handle(ex, ckpt, notice, cell, hidden, layers, lr, batch, minutes, dataset, dropout, ema, name, start,
                  pause, resume, stop, status, curve, samples, live, timer)


def _notice(ex: Explorer) -> str:
    tr = ex.training
    if not tr.enabled:
        return f'<div class="rv-notice">{tr.disabled_reason}</div>'
    return ("Train a model on this server while you explore: the other tabs stay usable. One run at a time per "
            "server; a finished or stopped run's checkpoint is added to the model list (saved in "
            f"`{tr.runs_folder()}` on the server; the oldest of more than {tr.max_runs} are removed).")


def curve_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a frame with typed columns (the series column must be text for the legend)."""
    return pd.DataFrame({"step": pd.Series([r["step"] for r in rows], dtype="int64"),
                         "nats": pd.Series([r["nats"] for r in rows], dtype="float64"),  # None: NaN, not drawn
                         "series": pd.Series([r["series"] for r in rows], dtype="str")})


def _views(ex: Explorer, request) -> tuple:
    snap, info = ex.training.snapshot(session_id(request))
    if snap is None:
        return training_status(None), gr.skip(), gr.skip()
    tc = ex.training.run.trainer.config
    # the run's metrics log, as TensorBoard and scripts read it
    rows = curve_rows(ex.training.history(), expect=expected_series(tc.val_images, tc.final_eval))
    frame = curve_frame(rows) if rows else gr.skip()  # never send an empty frame (see build)
    return training_status(snap, info), frame, sample_grid(snap["samples"])


def refresh(ex: Explorer, request) -> tuple:
    """Everything the Train tab shows, and the timer on while a run is going."""
    status, curve, samples = _views(ex, request)
    return status, curve, samples, gr.Timer(active=ex.training.active())


def wire(h: Handle, tab=None):
    ex = h.ex
    tr = ex.training

    def notice():
        if not tr.enabled:
            return _notice(ex)
        problem = tr.dataset_problem()
        if problem:
            return f'<div class="rv-notice">{html.escape(problem)}</div>'
        return _notice(ex)

    def start(cell, hidden, layers, lr, batch, minutes, dataset, name, dropout, ema, request: gr.Request):
        try:
            msg, notes = tr.start(session_id(request), cell, hidden, layers, lr, batch, minutes, dataset, name,
                                  dropout, ema)
        except (TrainingRefused, InputError) as e:
            gr.Warning(str(e))
            return (f'<div class="rv-notice">{html.escape(str(e))}</div>',) + refresh(ex, request)
        warn(notes)
        gr.Info(msg)
        return (_notice(ex),) + refresh(ex, request)[:3] + (gr.Timer(active=True),)

    def control(action):
        def handler(request: gr.Request):
            try:
                gr.Info(tr.control(session_id(request), action))
            except (TrainingRefused, InputError) as e:
                gr.Warning(str(e))
            return refresh(ex, request)
        handler.__name__ = f"train_{action}"
        return handler

    def tick(request: gr.Request):
        """Timer: new curve points, samples and status while a run goes; the model list when a
        checkpoint appears; the timer stops once the finished run has been shown."""
        sess = ex.sessions.get(session_id(request))
        snap, _ = tr.snapshot()
        version = None if snap is None else (snap["state"], snap["step"], len(snap["history"]), snap["paused"],
                                             snap["checkpoint"], snap["message"])
        models = ex.registry.signature(session_id(request))
        out = list(_views(ex, request)) if version != sess.seen.train else [gr.skip()] * 3
        out.append(gr.Dropdown(choices=ex.registry.choices(session_id(request))) if models != sess.seen.models
                   else gr.skip())
        sess.seen.train, sess.seen.models = version, models
        out.append(gr.Timer(active=tr.active()))
        return out

    def on_open(request: gr.Request):
        return refresh(ex, request)

    outputs = h.refresh_outputs
    h.start.click(start, [h.cell, h.hidden, h.layers, h.lr, h.batch, h.minutes, h.dataset, h.name, h.dropout, h.ema],
                  [h.notice] + outputs, api_name="train_start", concurrency_limit=1)
    for action in ("pause", "resume", "stop"):
        getattr(h, action).click(control(action), None, outputs, api_name=f"train_{action}", show_progress="hidden")
    h.timer.tick(tick, None, [h.status, h.curve, h.samples, h.ckpt, h.timer], api_name="train_tick",
                 show_progress="hidden")
    if tab is not None:
        tab.select(notice, None, [h.notice], api_name="train_notice", show_progress="hidden").then(
            on_open, None, outputs, api_name="train_refresh", show_progress="hidden")
    saturation.wire_live(ex, h.timer, h.saturation, tab)  # the running model's gates
