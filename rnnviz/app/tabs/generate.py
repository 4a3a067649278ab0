"""Generate & step: pick a digit, temperature and seed, draw it, and scrub through its rows.

The page's model menu (``ckpt``) draws the digit; picking another model redraws the same digit and
seed with it (LSTM vs GRU vs RNN). The step view (``stepview.StepView``) shows the canvas, every
gate and state and the units x time figure; the export bar downloads the trace or a sample grid.

``Handle.settings`` names the components that hold the tab's state by the fields of a deep link
(``links.View``: model, digit, seed, temperature, t), so a link can be read into the page and the
page written back into a link.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import gradio as gr

from .. import cards
from .. import components as checked
from ..components import message, warn
from ..downloads import Downloads, ExportBar
from ..inputs import DIGITS, InputError
from ..state import Explorer
from ..stepview import StepView

NAME = "gen"
DEFAULT_DIGIT = "7"


@dataclass
class Handle:
    ex: Explorer
    ckpt: gr.Dropdown
    view: StepView
    digit: gr.Radio
    temperature: gr.Slider
    seed: gr.Number
    button: gr.Button
    dice: gr.Button
    summary: gr.Markdown
    downloads: ExportBar

    @property
    def step(self) -> gr.Slider:
        return self.view.step

    @property
    def settings(self) -> dict[str, gr.components.Component]:
        """The components of the tab's state, by ``links.View`` field (in the order of a link)."""
        return {"model": self.ckpt, "digit": self.digit, "seed": self.seed, "temperature": self.temperature,
                "t": self.view.step}

    @property
    def outputs(self) -> list:
        """What a generation fills: the summary and the step view."""
        return [self.summary] + self.view.load_outputs


def build(ex: Explorer, ckpt, downloads: Downloads) -> Handle:
    """The tab's layout (call inside its ``gr.Tab``); it draws with the page's model (``ckpt``)."""
    view = StepView(ex, NAME)
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=230):
            digit = gr.Radio(DIGITS, value=DEFAULT_DIGIT, label="digit", elem_id="digit")
            temperature = checked.slider("temperature", info="< 1 safer strokes, > 1 wilder")
            seed = checked.number("seed", elem_id="seed")
            with gr.Row():
                button = gr.Button("Generate", variant="primary", elem_id="generate", scale=2)
                dice = gr.Button("New seed", elem_id="dice", scale=1, min_width=90)
            summary = gr.Markdown(elem_id="gen_summary")
        with gr.Column(scale=5, min_width=320):
            view.render_canvas()
            bar = ExportBar(ex, NAME, downloads, grid=True)
            bar.render()
        with gr.Column(scale=6, min_width=300):
            view.render_gates()
    view.render_figure()
    return Handle(ex, ckpt, view, digit, temperature, seed, button, dice, summary, bar)


def generate(h: Handle, key, digit, temperature, seed, request) -> list:
    """Draw one digit and load it into the step view (InputError says what is wrong)."""
    entry, traces, notes = h.ex.generate(key, digit, temperature, seed)
    warn(notes)
    return [cards.trace_summary(traces[0], entry.name)] + h.view.load(request, traces[0], entry.name)


def first_digit(h: Handle, request) -> list:
    """What the page shows when it opens: the default model's 7 (any digit for an unconditional
    model), or how to get a checkpoint."""
    key = h.ex.registry.default_key()
    if key is None:
        return [h.ex.no_checkpoint_message()] + [gr.skip()] * len(h.view.load_outputs)
    try:
        return generate(h, key, DEFAULT_DIGIT, 1.0, 0, request)
    except InputError:  # e.g. an unconditional model
        return generate(h, key, "any", 1.0, 0, request)


def wire(h: Handle, tab=None):
    def do_generate(key, d, temp, s, request: gr.Request):
        try:
            return generate(h, key, d, temp, s, request)
        except InputError as e:
            raise message(str(e)) from None

    def new_seed():
        return random.randint(0, 99_999)

    h.view.wire()
    h.downloads.wire(h.ckpt, h.digit, h.temperature, h.seed)
    ins = [h.ckpt, h.digit, h.temperature, h.seed]
    # picking another model redraws the same digit and seed with it (LSTM vs GRU vs RNN)
    h.ckpt.input(do_generate, ins, h.outputs, api_name="generate_with_model", concurrency_limit=2)
    h.button.click(do_generate, ins, h.outputs, api_name="generate", concurrency_limit=2)
    h.dice.click(new_seed, None, [h.seed], api_name="new_seed", show_progress="hidden").then(
        do_generate, ins, h.outputs, api_name="generate_new_seed", concurrency_limit=2)
