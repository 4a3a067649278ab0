"""Reconstruct (VAE): encode a test digit or a drawing to z and watch the decoder redraw it row by row.

Only checkpoints with a latent code (``config.latent > 0``) are offered; without one the tab says
how to train one. "Sample from the prior" draws a new digit from z ~ N(0, I) instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np
from PIL import Image

from ...render import digit_thumbnail
from ...trace import Trace
from .. import components as checked
from .. import links
from ..components import DigitSource, digit_source, message, warn
from ..deeplinks import LinkBar, link_name, step_of
from ..inputs import InputError, sampling
from ..operations import VAE_HOWTO, Explorer
from ..stepview import StepView

NAME = "rec"


@dataclass
class Handle:
    ex: Explorer
    view: StepView
    digit_source: DigitSource
    model: gr.Dropdown
    note: gr.Markdown
    temperature: gr.Slider
    seed: gr.Number
    use_mean: gr.Checkbox
    button: gr.Button
    prior: gr.Button
    summary: gr.Markdown
    source_image: gr.Image
    link: LinkBar


def _note(ex: Explorer) -> str:
    if ex.vae_choices():
        return ""
    return f'<div class="rv-notice">\n\n{VAE_HOWTO}\n\n</div>'


def build(ex: Explorer, ckpt=None) -> Handle:
    """The tab's layout (call inside its ``gr.Tab``). It offers VAE checkpoints only, so it has its
    own model menu rather than the page's ``ckpt``."""
    view = StepView(ex, NAME, button="Reconstruct")
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=300):
            src = digit_source(ex, "rec", "reconstruct")
        with gr.Column(scale=3, min_width=240):
            model = gr.Dropdown(ex.vae_choices(), value=ex.default_vae_key(), label="VAE (checkpoint with a z)",
                                elem_id="rec_model", allow_custom_value=True)  # checked by the registry
            note = gr.Markdown(_note(ex), elem_id="rec_note")
            temperature = checked.slider("temperature", elem_id="rec_temperature")
            seed = checked.number("seed", elem_id="rec_seed")
            use_mean = gr.Checkbox(True, label="decode from the mean of q(z | x) (off: one draw of it)",
                                   elem_id="rec_use_mean")
            with gr.Row():
                button = gr.Button("Reconstruct", variant="primary", elem_id="reconstruct_btn")
                prior = gr.Button("Sample from the prior", elem_id="prior_btn")
            summary = gr.Markdown(elem_id="rec_summary")
            link = LinkBar.render("rec")
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=170):
            source_image = gr.Image(label="source (what the encoder reads)", format="png", interactive=False,
                                    height=200, elem_classes="rv-pixelated", elem_id="rec_source", buttons=[])
        with gr.Column(scale=11, min_width=600):
            view.render()
    return Handle(ex, view, src, model, note, temperature, seed,
                  use_mean, button, prior, summary, source_image, link)


def binary_image(binary: np.ndarray, scale: int = 8) -> Image.Image:
    """A crisp image of a binary (H, W) digit, white on black."""
    return digit_thumbnail(np.asarray(binary).astype(np.uint8) * 255, scale)


def reconstruction_summary(trace: Trace, model_name: str, source: str) -> str:
    """Markdown: what a VAE's redraw (or prior sample) is, and its NLL given z."""
    kind = trace.meta.get("kind", "sample")
    if kind == "reconstruction":
        head = f"**{model_name}** encoded {source} and redrew it row by row from z"
        src = trace.meta.get("source")
        if src is not None:
            wrong = int((np.asarray(src).astype(bool) != trace.image.astype(bool)).sum())
            head += f"; {wrong} of {trace.image.size} pixels differ from the source"
    else:
        head = f"**{model_name}** drew a new digit from z sampled from the prior N(0, I)"
    seed = "" if trace.seed is None else f", seed {trace.seed}"
    return (f"{head} (temperature {trace.temperature:g}{seed}). NLL {trace.nll:.1f} nats "
            "(\u2212log p(image | z) under the decoder, temperature 1).")


def _image(ex: Explorer, source, index, sketch):
    """(binary image, what to call it) for the chosen source."""
    if source == "drawing":
        return ex.drawing_binary(sketch), "your drawing"
    img, label = ex.gallery_binary(index)
    return img, f"test digit #{int(index)} (a {label})"


def reconstruct(h: Handle, key, source, index, sketch, temp, s, use_mean, request, step: int | None = None) -> list:
    """Encode the digit and redraw it (at ``step``; None: the last). Returns the summary, the source
    image and the view's payload; InputError says what is wrong."""
    img, what = _image(h.ex, source, index, sketch)
    entry, trace, notes = h.ex.reconstruct(key, img, temp, s, use_mean)
    warn(notes)
    return [reconstruction_summary(trace, entry.name, what), binary_image(img)] + \
        h.view.load(request, trace, entry.name, key=entry.key, step=step)


def link_outputs(h: Handle) -> list:
    """What a deep link sets: the VAE, the source (a test digit), the settings, the summary, the
    source image and the view."""
    src = h.digit_source
    return [h.model, src.source, src.index, h.temperature, h.seed, h.summary, h.source_image] + h.view.load_outputs


def open_link(h: Handle, view: links.View, key, request) -> list:
    """The values of ``link_outputs`` for a deep link to this tab: the linked model if it is a VAE,
    else the default VAE, redraws the linked test digit (from the mean of q)."""
    vaes = [k for _, k in h.ex.vae_choices()]
    key = key if key in vaes else h.ex.default_vae_key()
    out = reconstruct(h, key, "test digit", view.test, None, view.temperature, view.seed, True, request, step=view.t)
    return [key, "test digit", view.test, view.temperature, view.seed] + out


def link_view(h: Handle, key, source, index, temp, s, t) -> links.View:
    """The link to the reconstruction the page shows (Copy link; a drawing cannot travel in a link)."""
    if source == "drawing":
        raise InputError("a link holds a test digit, not a drawing: pick a test digit to share this view")
    temp, s, _ = sampling(temp, s)
    return links.View(model=link_name(h.ex, key), test=int(index or 0), seed=s, temperature=temp, t=step_of(t),
                      tab="reconstruct")


def wire(h: Handle, tab=None):
    ex, view = h.ex, h.view

    def do_reconstruct(key, source, index, sketch, temp, s, use_mean, request: gr.Request):
        try:
            return reconstruct(h, key, source, index, sketch, temp, s, use_mean, request)
        except InputError as e:
            raise message(str(e)) from None

    def prior(key, temp, s, request: gr.Request):
        try:
            entry, trace, notes = ex.sample_prior(key, temp, s)
        except InputError as e:
            raise message(str(e)) from None
        warn(notes)
        return [reconstruction_summary(trace, entry.name, ""), None] + view.load(request, trace, entry.name, key=entry.key)

    def preview(source, index, sketch):
        try:
            img, _ = _image(ex, source, index, sketch)
        except InputError as e:
            gr.Warning(str(e))
            return None
        return binary_image(img)

    def models(key):
        choices = ex.vae_choices()
        keys = [k for _, k in choices]
        return gr.Dropdown(choices=choices, value=key if key in keys else ex.default_vae_key()), _note(ex)

    outputs = [h.summary, h.source_image] + view.load_outputs
    h.button.click(do_reconstruct, [h.model, *h.digit_source.inputs, h.temperature, h.seed, h.use_mean], outputs,
                   api_name="reconstruct", concurrency_limit=2)
    h.prior.click(prior, [h.model, h.temperature, h.seed], outputs, api_name="sample_prior", concurrency_limit=2)
    src = h.digit_source
    src.wire("rec", preview, src.inputs, [h.source_image])
    src.index.submit(preview, src.inputs, [h.source_image], api_name="rec_preview", show_progress="hidden")
    h.link.wire(lambda *a: link_view(h, *a), [h.model, src.source, src.index, h.temperature, h.seed, view.t],
                "rec_copy_link", NAME)
    if tab is not None:  # a VAE trained or uploaded meanwhile joins the menu
        tab.select(models, [h.model], [h.model, h.note], api_name="rec_models", show_progress="hidden")
