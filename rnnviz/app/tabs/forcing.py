"""Teacher forcing vs free running: one test digit read two ways by the page's model.

Teacher forced, the model reads the true rows (as in training and in the test NLL); free running,
it draws its own rows from the same start (the same label, or for a VAE the same z: the mean of
q(z | x) of the digit) with a seed, after copying the first ``rows kept`` true rows. The figure
(``views.forcing_figure``) shows both images and their p(on) and how far the two runs' hidden (and
cell) states drift apart per step; the caption names the first row where the free run parts from
the true image and both NLLs. The work is ``rnnviz.analysis.forcing_comparison`` (via
``analyses.Analyses.forcing``).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from .. import components as checked
from .. import views
from ..analyses import Analyses
from ..components import message
from ..inputs import InputError
from ..state import Explorer
from ..stepview import STEPS, _plot, _warn

NAME = "forcing"

EXPLAIN = """**Teacher forcing vs free running.** *Teacher forced*, the model reads the true rows of a
test digit and predicts each next row, as in training and in the test NLL. *Free running*, it starts
from the same place (the digit's true label; for a VAE the z its encoder gives this digit) and reads
the rows **it draws itself**. Once its drawing leaves the true image the two runs read different rows
and their hidden states part: the curve below shows how far. *Rows kept* copies the first rows of the
true digit before the model runs free (as *Complete* does). Pick a digit, then **Run**."""


@dataclass
class Handle:
    ex: Explorer
    analyses: Analyses
    ckpt: gr.Dropdown
    gallery: gr.Gallery
    index: gr.Number
    seed: gr.Number
    temperature: gr.Slider
    keep: gr.Slider
    button: gr.Button
    note: gr.Markdown
    plot: gr.Plot


def build(ex: Explorer, ckpt) -> Handle:
    """The tab's layout (call inside its ``gr.Tab``); it runs the page's model (``ckpt``)."""
    thumbs = [views.digit_thumbnail(img) for img in ex.gallery_images]
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=300):
            gr.Markdown(EXPLAIN)
            gallery = gr.Gallery(thumbs, columns=10, height="auto", allow_preview=False, show_label=False,
                                 object_fit="contain", elem_id="forcing_gallery", buttons=[],
                                 elem_classes="rv-pixelated")
        with gr.Column(scale=3, min_width=240):
            index = checked.Number(28, precision=0, minimum=0, maximum=len(ex.gallery_images) - 1,
                                   label="test digit # (or click one)", elem_id="forcing_index")
            keep = checked.Slider(0, STEPS - 1, value=0, step=1, label="rows kept (copied before it runs free)",
                                  elem_id="forcing_keep")
            temperature = checked.Slider(0.1, 2.0, value=1.0, step=0.05, label="temperature (free run)",
                                         elem_id="forcing_temperature")
            seed = checked.Number(0, precision=0, minimum=0, label="seed (free run)", elem_id="forcing_seed")
            button = gr.Button("Run", variant="primary", elem_id="forcing_btn")
    note = gr.Markdown(elem_id="forcing_note")
    plot = gr.Plot(label="teacher forcing vs free running", show_label=False, elem_id="forcing_fig")
    return Handle(ex, Analyses(ex), ckpt, gallery, index, seed, temperature, keep, button, note, plot)


def caption(entry_name: str, cmp, index: int, label: int, conditioned: str) -> str:
    """Markdown: what was run, where the free run parts from the true image, both NLLs."""
    kept = cmp.keep_rows
    head = (f"**{entry_name}**, test digit #{index} (a {label}), {conditioned}; free run with seed {cmp.seed}, "
            f"temperature {cmp.temperature:g}" + (f", the first {kept} rows kept." if kept else "."))
    if cmp.first_diff_row is None:
        parts = "- The free run drew **the true image** exactly: both runs read the same rows throughout."
    else:
        r = cmp.first_diff_row
        parts = (f"- The free run first parts from the true image at **row {r}** "
                 f"({int(cmp.row_mismatch[r])} of {cmp.true_image.shape[1]} pixels differ there, "
                 f"{int(cmp.row_mismatch.sum())} in all): the states agree up to step {r} and can part from "
                 f"step {r + 1} on.")
    nll = (f"- NLL teacher forced **{cmp.forced.nll:.1f}** nats (\u2212log p(true digit)); free running "
           f"**{cmp.free.nll:.1f}** nats (\u2212log p(the digit it drew), at temperature 1).")
    h = cmp.h_distance[-1]
    drift = f"- \u2016h forced \u2212 h free\u2016 at the last step: {float(h[-1]):.2f} (top layer)."
    return "\n".join([head, "", parts, nll, drift])


def _conditioned(config, label: int) -> str:
    parts = []
    if config.num_classes and label < config.num_classes:
        parts.append(f"given its true label {label}")
    if config.latent:
        parts.append("z = the mean of q(z | x) of this digit")
    return " and ".join(parts) or "unconditional"


def wire(h: Handle, tab=None):
    def run(key, index, seed, temperature, keep):
        try:
            entry, cmp, label, notes = h.analyses.forcing(key, index, seed, temperature, keep)
        except InputError as e:
            raise message(str(e)) from None
        _warn(notes)
        i = int(round(float(index if index is not None else 28)))
        return (caption(entry.name, cmp, i, label, _conditioned(entry.config, label)),
                _plot(views.forcing_figure(cmp)))

    def pick(evt: gr.SelectData):
        return evt.index

    inputs, outputs = [h.ckpt, h.index, h.seed, h.temperature, h.keep], [h.note, h.plot]
    h.button.click(run, inputs, outputs, api_name="forcing", concurrency_limit=2)
    h.gallery.select(pick, None, [h.index], api_name="forcing_pick", show_progress="hidden").then(
        run, inputs, outputs, api_name="forcing_after_pick", concurrency_limit=2)
    h.index.submit(run, inputs, outputs, api_name="forcing_index", concurrency_limit=2)
