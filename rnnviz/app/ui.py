"""The Gradio page: components and event wiring only.

Handlers translate between components and ``state.Explorer`` (which calls rnnviz) and
``views`` (which draws); they do no model math. Every listener has an ``api_name``, so the whole
page can be driven with ``gradio_client`` (tests/test_app.py does).

Step views (``stepview.StepView``: one canvas + slider + play control + gate grids + units x time
figure; ``stepview.LinkedViews``: several traces on one slider) live in ``stepview.py``. The Generate,
Complete and Train tabs are laid out here; every other tab is a module in ``tabs/`` with
``build(ex, ckpt)`` (its layout, called inside its ``gr.Tab``) and ``wire(...)`` (its events).
"""

from __future__ import annotations

import html
import random
from pathlib import Path

import gradio as gr
import pandas as pd

from . import tabs, views
from .exports import Downloads, ExportBar
from . import components as checked
from .components import message
from .inputs import InputError
from .state import Explorer, TrainingRefused
from .stepview import CURSOR_JS, DIGITS, STEPS, StepView, _session, _warn  # noqa: F401 (re-exported)
from .uploads import MAX_UPLOAD_BYTES, SUFFIX

HERE = Path(__file__).resolve().parent


# Gradio keeps a copy of the page's configuration per session (~0.6 MB here) until this many newer
# sessions have come (its default, 10,000, would be gigabytes on a public server)
GRADIO_SESSIONS = 128


def launch_options() -> dict:
    """Keyword arguments for ``demo.launch`` (Gradio 6 takes theme, css and head there)."""
    return {"theme": gr.themes.Soft(primary_hue="cyan", secondary_hue="orange"),
            "css": (HERE / "style.css").read_text(), "head": CURSOR_JS, "run_history": False,
            "max_file_size": MAX_UPLOAD_BYTES,  # larger uploads are refused with HTTP 413
            "state_session_capacity": GRADIO_SESSIONS}


# ---- the page ----------------------------------------------------------------------------------
def build_app(ex: Explorer) -> gr.Blocks:
    downloads = Downloads()  # per-session folders of exported files (GIF, .npz, PNG)
    with gr.Blocks(title="rnnviz explorer", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# rnnviz: watch a recurrent network write digits, row by row\n"
                    "Pick a model, generate a digit and scrub through its 28 steps: the canvas, every gate "
                    "and state, and each row's surprise stay in sync. The *About* tab has the equations.")
        with gr.Row(equal_height=True):
            ckpt = gr.Dropdown(label="model (checkpoint)", choices=ex.registry.choices(),
                               value=ex.registry.default_key(), scale=2, elem_id="checkpoint",
                               allow_custom_value=True)  # runs trained later are checked by the registry
            model_info = gr.Markdown(elem_id="model_info")
            upload = gr.UploadButton(f"Load your own checkpoint ({SUFFIX}, up to {MAX_UPLOAD_BYTES // 2**20} MB)",
                                     file_types=[SUFFIX], file_count="single", type="filepath", size="sm",
                                     scale=1, elem_id="upload_checkpoint")
        with gr.Tabs():
            with gr.Tab("Generate & step", id="generate"):
                gen = StepView(ex, "gen")
                with gr.Row(equal_height=False):
                    with gr.Column(scale=3, min_width=230):
                        digit = gr.Radio(DIGITS, value="7", label="digit", elem_id="digit")
                        temperature = checked.Slider(0.1, 2.0, value=1.0, step=0.05, label="temperature",
                                                     info="< 1 safer strokes, > 1 wilder")
                        seed = checked.Number(0, precision=0, label="seed", minimum=0, elem_id="seed")
                        with gr.Row():
                            generate = gr.Button("Generate", variant="primary", elem_id="generate", scale=2)
                            dice = gr.Button("New seed", elem_id="dice", scale=1, min_width=90)
                        summary = gr.Markdown(elem_id="gen_summary")
                    with gr.Column(scale=5, min_width=320):
                        gen.render_canvas()
                        gen_dl = ExportBar(ex, "gen", downloads, grid=True)
                        gen_dl.render()
                    with gr.Column(scale=6, min_width=300):
                        gen.render_gates()
                gen.render_figure()
            with gr.Tab("Complete", id="complete"):
                comp = StepView(ex, "comp")
                c = _complete_tab(ex)
                with gr.Row(equal_height=False):
                    with gr.Column(scale=5, min_width=320):
                        comp.render_canvas()
                        comp_dl = ExportBar(ex, "comp", downloads, button="Complete")
                        comp_dl.render()
                    with gr.Column(scale=7, min_width=300):
                        comp.render_gates()
                comp.render_figure()
            # ---- tabs of their own modules (rnnviz/app/tabs/): build here, wire below
            with gr.Tab("Compare cells", id="compare") as compare_tab:
                compare = tabs.compare.build(ex, ckpt)
            with gr.Tab("Intervene", id="intervene") as intervene_tab:
                intervene = tabs.intervene.build(ex, ckpt)
            with gr.Tab("Reconstruct (VAE)", id="reconstruct") as reconstruct_tab:
                reconstruct = tabs.reconstruct.build(ex, ckpt)
            with gr.Tab("Gate saturation", id="saturation") as saturation_tab:
                saturation = tabs.saturation.build(ex, ckpt)
            with gr.Tab("Teacher forcing", id="forcing") as forcing_tab:
                forcing = tabs.forcing.build(ex, ckpt)
            with gr.Tab("Train", id="train") as train_tab:
                t = _train_tab(ex)
            with gr.Tab("About", id="about"):
                gr.Markdown((HERE / "about.md").read_text(),
                            latex_delimiters=[{"left": "$$", "right": "$$", "display": True},
                                              {"left": "$", "right": "$", "display": False}])

        gen.wire()
        comp.wire()
        tabs.compare.wire(compare, compare_tab)
        tabs.intervene.wire(intervene, intervene_tab)
        tabs.reconstruct.wire(reconstruct, reconstruct_tab)
        tabs.saturation.wire(saturation, saturation_tab)
        tabs.forcing.wire(forcing, forcing_tab)
        gen_dl.wire(ckpt, digit, temperature, seed)
        comp_dl.wire()

        # ---- header and Generate
        def describe(key):
            try:
                entry, _ = ex.model(key)
            except InputError as e:
                return str(e)
            return views.model_summary(entry.config, entry.metrics, entry.name)

        def do_generate(key, d, temp, s, request: gr.Request):
            try:
                entry, traces, notes = ex.generate(key, d, temp, s)
            except InputError as e:
                raise message(str(e)) from None
            _warn(notes)
            return [views.trace_summary(traces[0], entry.name)] + gen.load(request, traces[0], entry.name)

        def new_seed():
            return random.randint(0, 99_999)

        gen_inputs = [ckpt, digit, temperature, seed]
        gen_outputs = [summary] + gen.load_outputs
        ckpt.change(describe, [ckpt], [model_info], api_name="describe", show_progress="hidden")
        # picking another model redraws the same digit and seed with it (LSTM vs GRU vs RNN)
        ckpt.input(do_generate, gen_inputs, gen_outputs, api_name="generate_with_model", concurrency_limit=2)
        generate.click(do_generate, gen_inputs, gen_outputs, api_name="generate", concurrency_limit=2)
        dice.click(new_seed, None, [seed], api_name="new_seed", show_progress="hidden").then(
            do_generate, gen_inputs, gen_outputs, api_name="generate_new_seed", concurrency_limit=2)

        def upload_checkpoint(path):
            if not path:
                raise message("No file arrived.")
            try:
                entry = ex.add_upload(path, Path(path).name)
            except InputError as e:
                raise message(str(e)) from None
            gr.Info(f"Added {entry.label} to the model list.")
            return gr.Dropdown(choices=ex.registry.choices(), value=entry.key), describe(entry.key)

        upload.upload(upload_checkpoint, [upload], [ckpt, model_info], api_name="upload_checkpoint",
                      concurrency_limit=2, show_progress="hidden")  # a refusal shows a toast, not error badges

        # ---- Complete
        _wire_complete(ex, c, comp, ckpt)

        # ---- Train
        _wire_train(ex, t, ckpt, train_tab)

        # ---- page load: models, a first digit, the training state
        def on_load(request: gr.Request):
            key = ex.registry.default_key()
            out = [gr.Dropdown(choices=ex.registry.choices(), value=key), describe(key)]
            if key is None:
                return out + [ex.no_checkpoint_message()] + [gr.skip()] * len(gen.load_outputs)
            try:
                entry, traces, _ = ex.generate(key, "7", 1.0, 0)
            except InputError:  # e.g. an unconditional model
                entry, traces, _ = ex.generate(key, "any", 1.0, 0)
            return out + [views.trace_summary(traces[0], entry.name)] + gen.load(request, traces[0], entry.name)

        def train_on_load(request: gr.Request):
            return _train_refresh(ex, request)

        demo.load(on_load, None, [ckpt, model_info] + gen_outputs, api_name="on_load")
        demo.load(train_on_load, None, t["refresh_outputs"], api_name="train_on_load", show_progress="hidden")

        def end_session(request: gr.Request):
            """The tab was closed or reloaded: drop this visitor's traces now rather than by LRU."""
            ex.sessions.drop(_session(request))
            downloads.drop(_session(request))

        demo.unload(end_session)
    return demo


# ---- Complete tab --------------------------------------------------------------------------------
def _complete_tab(ex: Explorer) -> dict:
    c = {}
    thumbs = [views.digit_thumbnail(img) for img in ex.gallery_images]
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=300):
            with gr.Tabs():
                with gr.Tab("Test digits", id="pick") as c["pick_tab"]:
                    c["gallery"] = gr.Gallery(thumbs, columns=8, height="auto", allow_preview=False,
                                              show_label=False, object_fit="contain", elem_id="test_gallery",
                                              buttons=[], elem_classes="rv-pixelated")
                with gr.Tab("Draw", id="draw") as c["draw_tab"]:
                    c["sketch"] = checked.Sketchpad(
                        canvas_size=(280, 280), fixed_canvas=True, type="numpy",
                        brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"),
                        label="draw a digit (pick the brush)", elem_id="sketch", height=340)
            with gr.Row():
                c["source"] = gr.Radio(["test digit", "drawing"], value="test digit", label="complete", scale=2)
                c["index"] = checked.Number(28, precision=0, minimum=0, maximum=len(ex.gallery_images) - 1,
                                            label="test digit #", scale=1, elem_id="gallery_index")
        with gr.Column(scale=3, min_width=220):
            c["preview"] = gr.Image(label="what the model is given (blue rows are kept)", format="png",
                                    interactive=False, height=200, elem_classes="rv-pixelated", elem_id="preview",
                                    buttons=[])
            c["keep"] = checked.Slider(0, STEPS - 1, value=14, step=1, label="rows to keep",
                                       elem_id="keep_rows")
            c["n"] = checked.Slider(1, 8, value=6, step=1, label="completions")
            c["digit"] = gr.Dropdown(["auto"] + DIGITS, value="auto", label="complete it as digit",
                                     info="auto: the digit the model finds most likely for the kept rows")
            c["temperature"] = checked.Slider(0.1, 2.0, value=1.0, step=0.05, label="temperature")
            c["seed"] = checked.Number(0, precision=0, minimum=0, label="seed")
            c["button"] = gr.Button("Complete", variant="primary", elem_id="complete_btn")
        with gr.Column(scale=4, min_width=260):
            gr.Markdown("**Completions**: click one to step through it below.")
            c["out"] = gr.Gallery(label="completions", show_label=False, buttons=[], columns=3, height="auto",
                                  allow_preview=False, object_fit="contain", elem_id="completions",
                                  elem_classes="rv-pixelated")
            c["note"] = gr.Markdown(elem_id="complete_note")
            c["pick"] = checked.Number(0, precision=0, visible=False)
    return c


def _prefix(ex: Explorer, source, index, sketch):
    """(binary image, its label or None) for the chosen source."""
    if source == "drawing":
        return ex.drawing_binary(sketch), None
    return ex.gallery_binary(index)


def _wire_complete(ex: Explorer, c: dict, comp: StepView, ckpt):
    def preview(source, index, sketch, keep):
        try:
            img, _ = _prefix(ex, source, index, sketch)
        except InputError as e:
            gr.Warning(str(e))
            return None
        return views.prefix_preview(img, int(keep or 0))

    def pick(evt: gr.SelectData):
        return evt.index, "test digit"

    def do_complete(key, source, index, sketch, keep, n, d, temp, s, request: gr.Request):
        try:
            img, label = _prefix(ex, source, index, sketch)
            entry, done, notes = ex.complete(key, img, label, keep, n, d, temp, s)
        except InputError as e:
            raise message(str(e)) from None
        _warn(notes)
        sess = ex.sessions.get(_session(request))
        sess.completions, sess.completion_model = done.traces, entry.name
        items = [(views.thumbnail(tr), f"#{k + 1}: {tr.label}") for k, tr in enumerate(done.traces)]
        note = (f"{len(done.traces)} completions of the first {done.traces[0].keep_rows} rows by "
                f"**{entry.name}**, as {done.label_note}. Click one to step through it below.")
        return [items, note, views.prefix_preview(img, done.traces[0].keep_rows)] + \
            comp.load(request, done.traces[0], entry.name)

    def open_completion(k, request: gr.Request):
        sess = ex.sessions.get(_session(request))
        if not sess.completions:
            raise message("No completions yet (or they expired): press Complete first.")
        k = int(max(0, min(len(sess.completions) - 1, int(k or 0))))
        return comp.load(request, sess.completions[k], sess.completion_model)

    def pick_completion(evt: gr.SelectData):
        return evt.index

    preview_in = [c["source"], c["index"], c["sketch"], c["keep"]]
    c["gallery"].select(pick, None, [c["index"], c["source"]], api_name="pick_test_digit",
                        show_progress="hidden").then(preview, preview_in, [c["preview"]], api_name="preview_after_pick",
                                                     show_progress="hidden")
    c["draw_tab"].select(lambda: "drawing", None, [c["source"]], api_name="use_drawing", show_progress="hidden")
    c["pick_tab"].select(lambda: "test digit", None, [c["source"]], api_name="use_test_digit",
                         show_progress="hidden")
    for ev, name in ((c["keep"].input, "preview_keep"), (c["index"].submit, "preview_index"),
                     (c["source"].input, "preview_source"), (c["sketch"].change, "preview")):
        ev(preview, preview_in, [c["preview"]], api_name=name, trigger_mode="always_last", show_progress="hidden")
    c["button"].click(do_complete, [ckpt, c["source"], c["index"], c["sketch"], c["keep"], c["n"], c["digit"],
                                    c["temperature"], c["seed"]],
                      [c["out"], c["note"], c["preview"]] + comp.load_outputs, api_name="complete",
                      concurrency_limit=2)
    c["out"].select(pick_completion, None, [c["pick"]], api_name="pick_completion", show_progress="hidden").then(
        open_completion, [c["pick"]], comp.load_outputs, api_name="open_completion", show_progress="hidden")


# ---- Train tab ---------------------------------------------------------------------------------
def _train_tab(ex: Explorer) -> dict:
    tr = ex.training
    t = {}
    t["notice"] = gr.Markdown(_train_notice(ex), elem_id="train_notice")
    enabled = tr.enabled
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=260):
            t["cell"] = gr.Radio(["lstm", "gru", "rnn"], value="lstm", label="cell", interactive=enabled)
            t["hidden"] = checked.Slider(16, 512, value=128, step=16, label="hidden units",
                                         interactive=enabled, elem_id="train_hidden")
            t["layers"] = checked.Slider(1, 3, value=1, step=1, label="layers", interactive=enabled)
            # no bounds here: the training service clamps it to its limits and says so
            t["lr"] = checked.Number(2e-3, label="learning rate", step=5e-4, interactive=enabled)
            t["batch"] = checked.Slider(16, 256, value=64, step=16, label="batch size",
                                        interactive=enabled)
            t["minutes"] = checked.Slider(0.1, min(60.0, tr.max_minutes), value=min(5.0, tr.max_minutes),
                                          step=0.1, label="time budget (minutes)", interactive=enabled,
                                          elem_id="train_minutes")
            choices = tr.dataset_choices()
            t["dataset"] = gr.Dropdown([(Path(c).name, c) for c in choices], value=choices[0], label="dataset",
                                       interactive=enabled, elem_id="train_dataset")
            t["name"] = gr.Textbox(label="run name (optional)", placeholder="e.g. my_lstm", interactive=enabled,
                                   max_lines=1)
            with gr.Row():
                t["start"] = gr.Button("Start", variant="primary", interactive=enabled, elem_id="train_start")
                t["pause"] = gr.Button("Pause", interactive=enabled, elem_id="train_pause")
                t["resume"] = gr.Button("Resume", interactive=enabled, elem_id="train_resume")
                t["stop"] = gr.Button("Stop", variant="stop", interactive=enabled, elem_id="train_stop")
        with gr.Column(scale=5, min_width=320):
            t["status"] = gr.Markdown(views.training_status(None), elem_id="train_status")
            # starts as None: a LinePlot whose first value is an empty frame never draws its lines
            t["curve"] = gr.LinePlot(None, x="step", y="nats",
                                     color="series", title="loss (nats per image)", height=280,
                                     elem_id="train_curve", x_title="step", y_title="nats / image")
            t["samples"] = gr.Image(label="samples from the model being trained (one per digit)", format="png",
                                    interactive=False, elem_id="train_samples", height=130, buttons=[])
            t["saturation"] = tabs.saturation.render_live()
    t["timer"] = gr.Timer(1.0, active=False)
    t["refresh_outputs"] = [t["status"], t["curve"], t["samples"], t["timer"]]
    return t


def _train_notice(ex: Explorer) -> str:
    tr = ex.training
    if not tr.enabled:
        return f'<div class="rv-notice">{tr.disabled_reason}</div>'
    return ("Train a model on this server while you explore: the other tabs stay usable. One run at a time per "
            "server; a finished or stopped run's checkpoint is added to the model list (saved in "
            f"`{tr.runs_dir}`).")


def _curve_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a frame with typed columns (the series column must be text for the legend)."""
    return pd.DataFrame({"step": pd.Series([r["step"] for r in rows], dtype="int64"),
                         "nats": pd.Series([r["nats"] for r in rows], dtype="float64"),
                         "series": pd.Series([r["series"] for r in rows], dtype="str")})


def _train_views(ex: Explorer, request) -> tuple:
    snap, info = ex.training.snapshot(_session(request))
    if snap is None:
        return views.training_status(None), gr.skip(), gr.skip()
    rows = views.curve_rows(snap["history"])
    frame = _curve_frame(rows) if rows else gr.skip()  # never send an empty frame (see _train_tab)
    return views.training_status(snap, info), frame, views.sample_grid(snap["samples"])


def _train_refresh(ex: Explorer, request) -> tuple:
    """Everything the Train tab shows, and the timer on while a run is going."""
    status, curve, samples = _train_views(ex, request)
    return status, curve, samples, gr.Timer(active=ex.training.active())


def _wire_train(ex: Explorer, t: dict, ckpt, train_tab):
    tr = ex.training

    def notice():
        if not tr.enabled:
            return _train_notice(ex)
        problem = tr.dataset_problem()
        if problem:
            return (f'<div class="rv-notice"><b>The dataset is not on this machine.</b> Start will try to '
                    f"download it; if this machine is offline:<br>{problem}</div>")
        return _train_notice(ex)

    def start(cell, hidden, layers, lr, batch, minutes, dataset, name, request: gr.Request):
        try:
            msg, notes = tr.start(_session(request), cell, hidden, layers, lr, batch, minutes, dataset, name)
        except (TrainingRefused, InputError) as e:
            gr.Warning(str(e))
            return (f'<div class="rv-notice">{html.escape(str(e))}</div>',) + _train_refresh(ex, request)
        _warn(notes)
        gr.Info(msg)
        return (_train_notice(ex),) + _train_refresh(ex, request)[:3] + (gr.Timer(active=True),)

    def control(action):
        def handler(request: gr.Request):
            try:
                gr.Info(tr.control(_session(request), action))
            except (TrainingRefused, InputError) as e:
                gr.Warning(str(e))
            return _train_refresh(ex, request)
        handler.__name__ = f"train_{action}"
        return handler

    def tick(request: gr.Request):
        """Timer: new curve points, samples and status while a run goes; the model list when a
        checkpoint appears; the timer stops once the finished run has been shown."""
        sess = ex.sessions.get(_session(request))
        snap, _ = tr.snapshot()
        version = None if snap is None else (snap["state"], snap["step"], len(snap["history"]), snap["paused"],
                                             snap["checkpoint"], snap["message"])
        models = ex.registry.signature()
        out = list(_train_views(ex, request)) if version != sess.seen.get("train") else [gr.skip()] * 3
        out.append(gr.Dropdown(choices=ex.registry.choices()) if models != sess.seen.get("models") else gr.skip())
        sess.seen["train"], sess.seen["models"] = version, models
        out.append(gr.Timer(active=tr.active()))
        return out

    outputs = t["refresh_outputs"]
    t["start"].click(start, [t["cell"], t["hidden"], t["layers"], t["lr"], t["batch"], t["minutes"], t["dataset"],
                             t["name"]], [t["notice"]] + outputs, api_name="train_start", concurrency_limit=1)
    for action in ("pause", "resume", "stop"):
        t[action].click(control(action), None, outputs, api_name=f"train_{action}", show_progress="hidden")
    t["timer"].tick(tick, None, [t["status"], t["curve"], t["samples"], ckpt, t["timer"]], api_name="train_tick",
                    show_progress="hidden")
    def refresh(request: gr.Request):
        return _train_refresh(ex, request)

    train_tab.select(notice, None, [t["notice"]], api_name="train_notice", show_progress="hidden").then(
        refresh, None, outputs, api_name="train_refresh", show_progress="hidden")
    tabs.saturation.wire_live(ex, t["timer"], t["saturation"], train_tab)  # the running model's gates
