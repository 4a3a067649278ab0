"""Reconstruct (VAE): encode a test digit or a drawing to z and watch the decoder redraw it row by row.

Only checkpoints with a latent code (``config.latent > 0``) are offered; without one the tab says
how to train one. "Sample from the prior" draws a new digit from z ~ N(0, I) instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .. import components as checked
from .. import views
from ..components import message
from ..inputs import InputError
from ..state import VAE_HOWTO, Explorer
from ..stepview import StepView, _warn

NAME = "rec"


@dataclass
class Handle:
    ex: Explorer
    view: StepView
    gallery: gr.Gallery
    pick_tab: gr.Tab
    draw_tab: gr.Tab
    sketch: gr.Sketchpad
    source: gr.Radio
    index: gr.Number
    model: gr.Dropdown
    note: gr.Markdown
    temperature: gr.Slider
    seed: gr.Number
    use_mean: gr.Checkbox
    button: gr.Button
    prior: gr.Button
    summary: gr.Markdown
    source_image: gr.Image


def _note(ex: Explorer) -> str:
    if ex.vae_choices():
        return ""
    return f'<div class="rv-notice">\n\n{VAE_HOWTO}\n\n</div>'


def build(ex: Explorer, ckpt=None) -> Handle:
    """The tab's layout (call inside its ``gr.Tab``). It offers VAE checkpoints only, so it has its
    own model menu rather than the page's ``ckpt``."""
    view = StepView(ex, NAME, button="Reconstruct")
    thumbs = [views.digit_thumbnail(img) for img in ex.gallery_images]
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=300):
            with gr.Tabs():
                with gr.Tab("Test digits", id="rec_pick") as pick_tab:
                    gallery = gr.Gallery(thumbs, columns=8, height="auto", allow_preview=False, show_label=False,
                                         object_fit="contain", elem_id="rec_gallery", buttons=[],
                                         elem_classes="rv-pixelated")
                with gr.Tab("Draw", id="rec_draw") as draw_tab:
                    sketch = checked.Sketchpad(
                        canvas_size=(280, 280), fixed_canvas=True, type="numpy",
                        brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"),
                        label="draw a digit (pick the brush)", elem_id="rec_sketch", height=340)
            with gr.Row():
                source = gr.Radio(["test digit", "drawing"], value="test digit", label="reconstruct", scale=2)
                index = checked.Number(28, precision=0, minimum=0, maximum=len(ex.gallery_images) - 1,
                                       label="test digit #", scale=1, elem_id="rec_index")
        with gr.Column(scale=3, min_width=240):
            model = gr.Dropdown(ex.vae_choices(), value=ex.default_vae_key(), label="VAE (checkpoint with a z)",
                                elem_id="rec_model", allow_custom_value=True)  # checked by the registry
            note = gr.Markdown(_note(ex), elem_id="rec_note")
            temperature = checked.Slider(0.1, 2.0, value=1.0, step=0.05, label="temperature",
                                         elem_id="rec_temperature")
            seed = checked.Number(0, precision=0, minimum=0, label="seed", elem_id="rec_seed")
            use_mean = gr.Checkbox(True, label="decode from the mean of q(z | x) (off: one draw of it)",
                                   elem_id="rec_use_mean")
            with gr.Row():
                button = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct_btn")
                prior = gr.Button("Sample from the prior", elem_id="prior_btn")
            summary = gr.Markdown(elem_id="rec_summary")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=170):
            source_image = gr.Image(label="source (what the encoder reads)", format="png", interactive=False,
                                    height=200, elem_classes="rv-pixelated", elem_id="rec_source", buttons=[])
        with gr.Column(scale=5, min_width=320):
            view.render_canvas()
        with gr.Column(scale=6, min_width=300):
            view.render_gates()
    view.render_figure()
    return Handle(ex, view, gallery, pick_tab, draw_tab, sketch, source, index, model, note, temperature, seed,
                  use_mean, button, prior, summary, source_image)


def _image(ex: Explorer, source, index, sketch):
    """(binary image, what to call it) for the chosen source."""
    if source == "drawing":
        return ex.drawing_binary(sketch), "your drawing"
    img, label = ex.gallery_binary(index)
    return img, f"test digit #{int(index)} (a {label})"


def wire(h: Handle, tab=None):
    ex, view = h.ex, h.view

    def reconstruct(key, source, index, sketch, temp, s, use_mean, request: gr.Request):
        try:
            img, what = _image(ex, source, index, sketch)
            entry, trace, notes = ex.reconstruct(key, img, temp, s, use_mean)
        except InputError as e:
            raise message(str(e)) from None
        _warn(notes)
        return [views.reconstruction_summary(trace, entry.name, what), views.binary_image(img)] + \
            view.load(request, trace, entry.name)

    def prior(key, temp, s, request: gr.Request):
        try:
            entry, trace, notes = ex.sample_prior(key, temp, s)
        except InputError as e:
            raise message(str(e)) from None
        _warn(notes)
        return [views.reconstruction_summary(trace, entry.name, ""), None] + view.load(request, trace, entry.name)

    def preview(source, index, sketch):
        try:
            img, _ = _image(ex, source, index, sketch)
        except InputError as e:
            gr.Warning(str(e))
            return None
        return views.binary_image(img)

    def pick(evt: gr.SelectData):
        return evt.index, "test digit"

    def models(key):
        choices = ex.vae_choices()
        keys = [k for _, k in choices]
        return gr.Dropdown(choices=choices, value=key if key in keys else ex.default_vae_key()), _note(ex)

    view.wire()
    outputs = [h.summary, h.source_image] + view.load_outputs
    h.button.click(reconstruct, [h.model, h.source, h.index, h.sketch, h.temperature, h.seed, h.use_mean], outputs,
                   api_name="reconstruct", concurrency_limit=2)
    h.prior.click(prior, [h.model, h.temperature, h.seed], outputs, api_name="sample_prior", concurrency_limit=2)
    preview_in = [h.source, h.index, h.sketch]
    h.gallery.select(pick, None, [h.index, h.source], api_name="rec_pick_test_digit", show_progress="hidden").then(
        preview, preview_in, [h.source_image], api_name="rec_preview_after_pick", show_progress="hidden")
    h.index.submit(preview, preview_in, [h.source_image], api_name="rec_preview", show_progress="hidden")
    h.draw_tab.select(lambda: "drawing", None, [h.source], api_name="rec_use_drawing", show_progress="hidden")
    h.pick_tab.select(lambda: "test digit", None, [h.source], api_name="rec_use_test_digit", show_progress="hidden")
    if tab is not None:  # a VAE trained or uploaded meanwhile joins the menu
        tab.select(models, [h.model], [h.model, h.note], api_name="rec_models", show_progress="hidden")
