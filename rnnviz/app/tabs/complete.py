"""Complete: keep the first rows of a test digit (or a drawing) and let the model draw the rest.

The page's model completes the kept rows a few times (``Explorer.complete``); with digit *auto* it
completes them as the digit it finds most likely for them (``rnnviz.analysis.class_posterior``).
A click on a completion opens it in the step view below, to step through.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ... import render
from .. import components as checked
from .. import links
from ..components import DigitSource, digit_source, message, session_id, warn
from ..deeplinks import LinkBar, link_name, step_of
from ..downloads import Downloads, ExportBar
from ..inputs import DIGITS, InputError, sampling
from ..operations import Explorer
from ..stepview import StepView

NAME = "comp"


@dataclass
class Handle:
    ex: Explorer
    ckpt: gr.Dropdown
    view: StepView
    downloads: ExportBar
    digit_source: DigitSource
    preview: gr.Image
    keep: gr.Slider
    n: gr.Slider
    digit: gr.Dropdown
    temperature: gr.Slider
    seed: gr.Number
    button: gr.Button
    out: gr.Gallery
    note: gr.Markdown
    pick: gr.Number
    link: LinkBar


def build(ex: Explorer, ckpt, downloads: Downloads) -> Handle:
    """The tab's layout (call inside its ``gr.Tab``); it completes with the page's model (``ckpt``)."""
    view = StepView(ex, NAME, button="Complete")
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=300):
            src = digit_source(ex, "", "complete")
        with gr.Column(scale=3, min_width=220):
            preview = gr.Image(label="what the model is given (blue rows are kept)", format="png",
                               interactive=False, height=200, elem_classes="rv-pixelated", elem_id="preview",
                               buttons=[])
            keep = checked.slider("keep_rows", elem_id="keep_rows")
            n = checked.slider("completions")
            digit = gr.Dropdown(["auto"] + DIGITS, value="auto", label="complete it as digit",
                                info="auto: the digit the model finds most likely for the kept rows")
            temperature = checked.slider("temperature")
            seed = checked.number("seed")
            button = gr.Button("Complete", variant="primary", elem_id="complete_btn")
        with gr.Column(scale=4, min_width=260):
            gr.Markdown("**Completions**: click one to step through it below.")
            out = gr.Gallery(label="completions", show_label=False, buttons=[], columns=3, height="auto",
                             allow_preview=False, object_fit="contain", elem_id="completions",
                             elem_classes="rv-pixelated")
            note = gr.Markdown(elem_id="complete_note")
            pick = checked.Number(0, precision=0, visible=False)
            bar = ExportBar(ex, NAME, downloads, button="Complete")
            bar.render()
            link = LinkBar.render("complete")
    view.render()
    return Handle(ex, ckpt, view, bar, src, preview, keep, n, digit,
                  temperature, seed, button, out, note, pick, link)


def prefix(ex: Explorer, source, index, sketch):
    """(binary image, its label or None) for the chosen source."""
    if source == "drawing":
        return ex.drawing_binary(sketch), None
    return ex.gallery_binary(index)


def complete(h: Handle, key, source, index, sketch, keep, n, d, temp, s, request, k: int = 0,
             step: int | None = None) -> list:
    """Complete the kept rows and open completion ``k`` (at ``step``; None: the last). Returns the
    gallery, the note, the preview and the view's payload; InputError says what is wrong."""
    ex = h.ex
    img, label = prefix(ex, source, index, sketch)
    entry, done, notes = ex.complete(key, img, label, keep, n, d, temp, s)
    warn(notes)
    sess = ex.sessions.get(session_id(request))
    sess.completions, sess.completion_model, sess.completion_key = done.traces, entry.name, entry.key
    items = [(render.thumbnail(tr), f"#{j + 1}: {tr.label}") for j, tr in enumerate(done.traces)]
    note = (f"{len(done.traces)} completions of the first {done.traces[0].keep_rows} rows by "
            f"**{entry.name}**, as {done.label_note}. Click one to step through it below.")
    k = int(max(0, min(len(done.traces) - 1, k)))
    return [items, note, render.prefix_preview(img, done.traces[0].keep_rows)] + \
        h.view.load(request, done.traces[k], entry.name, key=entry.key, step=step)


def open_completion(h: Handle, k, request, step: int | None = None) -> list:
    """The view of completion ``k`` of this visitor's last Complete."""
    sess = h.ex.sessions.get(session_id(request))
    if not sess.completions:
        raise InputError("No completions yet (or they expired): press Complete first.")
    k = int(max(0, min(len(sess.completions) - 1, int(k or 0))))
    return h.view.load(request, sess.completions[k], sess.completion_model, key=sess.completion_key, step=step)


def link_outputs(h: Handle) -> list:
    """What a deep link sets: the source (a test digit), the settings, the completions and the view."""
    src = h.digit_source
    return [src.source, src.index, h.keep, h.n, h.digit, h.temperature, h.seed, h.pick, h.out, h.note,
            h.preview] + h.view.load_outputs


def open_link(h: Handle, view: links.View, key, request) -> list:
    """The values of ``link_outputs`` for a deep link to this tab (links name test digits only)."""
    out = complete(h, key, "test digit", view.test, None, view.keep, view.n, view.complete_as, view.temperature,
                   view.seed, request, k=view.k, step=view.t)
    return ["test digit", view.test, view.keep, view.n, view.complete_as, view.temperature, view.seed,
            min(view.k, view.n - 1)] + out


def link_view(h: Handle, key, source, index, keep, n, d, temp, s, k, t) -> links.View:
    """The link to the completion the page shows (Copy link); a drawing cannot travel in a link."""
    if source == "drawing":
        raise InputError("a link holds a test digit, not a drawing: pick a test digit to share this view")
    temp, s, _ = sampling(temp, s)
    return links.View(model=link_name(h.ex, key), test=int(index or 0), keep=int(keep or 0), n=int(n or 1),
                      complete_as=str(d) if str(d) in ("auto", *DIGITS) else "auto", seed=s, temperature=temp,
                      k=int(k or 0), t=step_of(t), tab="complete")


def wire(h: Handle, tab=None):
    ex, comp = h.ex, h.view

    def preview(source, index, sketch, keep):
        try:
            img, _ = prefix(ex, source, index, sketch)
        except InputError as e:
            gr.Warning(str(e))
            return None
        return render.prefix_preview(img, int(keep or 0))

    def do_complete(key, source, index, sketch, keep, n, d, temp, s, request: gr.Request):
        try:
            return complete(h, key, source, index, sketch, keep, n, d, temp, s, request)
        except InputError as e:
            raise message(str(e)) from None

    def do_open(k, request: gr.Request):
        try:
            return open_completion(h, k, request)[0]
        except InputError as e:
            raise message(str(e)) from None

    def pick_completion(evt: gr.SelectData):
        return evt.index

    h.downloads.wire()
    src = h.digit_source
    preview_in = src.inputs + [h.keep]
    src.wire("", preview, preview_in, [h.preview])
    for ev, name in ((h.keep.input, "preview_keep"), (src.index.submit, "preview_index"),
                     (src.source.input, "preview_source"), (src.sketch.change, "preview")):
        ev(preview, preview_in, [h.preview], api_name=name, trigger_mode="always_last", show_progress="hidden")
    h.button.click(do_complete, [h.ckpt, *src.inputs, h.keep, h.n, h.digit, h.temperature, h.seed],
                   [h.out, h.note, h.preview] + comp.load_outputs, api_name="complete", concurrency_limit=2).success(
        None, None, [h.pick], js="() => 0", show_progress="hidden")  # the view shows completion 0
    h.out.select(pick_completion, None, [h.pick], api_name="pick_completion", show_progress="hidden").then(
        do_open, [h.pick], comp.load_outputs, api_name="open_completion", show_progress="hidden")
    h.link.wire(lambda *a: link_view(h, *a), [h.ckpt, src.source, src.index, h.keep, h.n, h.digit, h.temperature,
                                              h.seed, h.pick, comp.t], "complete_copy_link", NAME)
