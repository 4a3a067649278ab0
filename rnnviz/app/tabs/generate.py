"""Generate & step: pick a digit, temperature and seed, draw it, and scrub through its rows.

The page's model menu (``ckpt``) draws the digit; picking another model redraws the same digit and
seed with it (LSTM vs GRU vs RNN). The step view (``stepview.StepView``) shows the canvas, every
gate and state and the units x time figure; the export bar downloads the trace or a sample grid.

Deep links (``links``): ``open_link`` reads a page address's query (model, digit, seed,
temperature, t, tab) into this tab when the page opens, and **Copy link** (``copy_link``) writes the
current view back. ``Handle.settings`` names the components of the tab's state by the fields of a
``links.View``.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, replace

import gradio as gr

from .. import cards, links
from .. import components as checked
from ..components import message, warn
from ..downloads import Downloads, ExportBar
from ..inputs import DIGITS, InputError, sampling
from ..operations import Explorer
from ..deeplinks import LinkBar, link_name, step_of
from ..guard.base import Refused, request_client
from ..guard.slots import FairSlots
from ..stepview import OrdersView, StepView

NAME = "gen"  # the step view's name
ORDERS = "orders"  # the "which order?" view's name
TAB = "generate"  # the tab's id (in links)
DEFAULT_DIGIT = "7"
SLOTS = 1  # Generates running at once: they are mostly Python (the GIL), so two at once only share it
# Generate answers directly, not through Gradio's queue (whose join and event stream cost it about as
# much as the sampling); guard.slots.FairSlots keeps it fair. RNNVIZ_GENERATE_QUEUE=1 sends it through
# the queue as before: the baseline benchmarks/bench_scrub.py compares against.
DIRECT = os.environ.get("RNNVIZ_GENERATE_QUEUE", "") != "1"


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
    link: LinkBar
    mixture: gr.Button  # sample from the mixture of scan orders
    which: gr.Button  # "which order?" for the digit on screen
    orders: OrdersView

    @property
    def settings(self) -> dict[str, gr.components.Component]:
        """The components of the tab's state, by ``links.View`` field (in the order of a link; the
        step ``t`` lives in the browser's view and is read by Copy link's ``stepview.step_js``)."""
        return {"model": self.ckpt, "digit": self.digit, "seed": self.seed, "temperature": self.temperature}

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
            has_mixture = ex.mixtures.available
            with gr.Row(visible=has_mixture):  # the shipped mixture of scan orders (checkpoints/mixture/)
                # the seed draws one scan order's model, which writes the digit
                mixture = gr.Button("Sample from the mixture", elem_id="mixture_sample", size="sm")
                # each scan order's NLL of the digit on screen, line by line
                which = gr.Button("Which order?", elem_id="which_order", size="sm")
            summary = gr.Markdown(elem_id="gen_summary")
            link = LinkBar.render("gen", button_id="copy_link", box_id="view_link")
            bar = ExportBar(ex, NAME, downloads, grid=True)
            bar.render()
        with gr.Column(scale=11, min_width=600):
            view.render()
            orders = OrdersView(ex, ORDERS, "Which order?")
            orders.render()
    return Handle(ex, ckpt, view, digit, temperature, seed, button, dice, summary, bar, link, mixture, which, orders)


def generate(h: Handle, key, digit, temperature, seed, request, step: int | None = None) -> list:
    """Draw one digit and load it into the step view at ``step`` (None: the last, with the whole
    image drawn; InputError says what is wrong)."""
    entry, traces, notes = h.ex.generate(key, digit, temperature, seed)
    warn(notes)
    out = h.view.load(request, traces[0], entry.name, step=step, key=entry.key)
    h.view.view(request).mixture_part = None
    return [with_notes(cards.trace_summary(traces[0], entry.name), notes)] + out


def with_notes(summary: str, notes) -> str:
    """The summary and, under it, every note (a clamped value): Generate answers directly, outside
    the queue, where Gradio delivers no toast, so the notes travel in the answer itself."""
    return summary + "".join(f"\n\n*Note: {n}*" for n in notes if n)


def sample_mixture(h: Handle, digit, temperature, seed, request) -> list:
    """One digit from the mixture of scan orders: the seed draws the part that writes it. The page's
    model becomes that part when it is in the model list (every tab then goes on with it)."""
    draw, key, notes = h.ex.sample_mixture(digit, temperature, seed)
    warn(notes)
    trace = draw.traces[0]
    out = h.view.load(request, trace, draw.part_name, key=key)
    h.view.view(request).mixture_part = draw.part
    return [gr.Dropdown(value=key) if key else gr.skip()] + \
        [with_notes(draw.summary + " " + cards.trace_summary(trace, draw.part_name), notes)] + out


def which_order(h: Handle, request) -> list:
    """"Which order?" for the digit the Generate view shows."""
    v = h.view.view(request)
    if v.trace is None:
        raise InputError("generate a digit first")
    data = h.ex.which_order(v.trace.image, v.mixture_part)
    digit = "unconditional" if v.trace.label is None else f"digit {v.trace.label}"
    data["subject"] = f"{v.model_name}'s {digit}, seed {v.trace.seed}"
    return h.orders.load(data)


# ---- deep links ------------------------------------------------------------------------------------
def open_link(h: Handle, view: links.View, key: str | None, notes: list[str], request) -> list:
    """The values of ``link_outputs`` for the view a page address asks for (the Generate view is drawn
    on every page load: the header's model and this tab). ``key``: the checkpoint the link names (else
    the default); None: there is none at all. Its step is the link's when it links this tab, else the
    last. Never raises: a digit for an unconditional model draws any digit, with a note."""
    if key is None:
        return [gr.skip()] * 3 + [h.ex.no_checkpoint_message()] + [gr.skip()] * len(h.view.load_outputs)
    step = view.t if view.tab == TAB else None
    try:
        out = generate(h, key, view.digit, view.temperature, view.seed, request, step=step)
    except InputError as e:  # a digit for an unconditional model: draw any (say so if the link asked)
        if "digit" in view.given:
            notes.append(f"{e}; drawing any digit")
        view = replace(view, digit="any")
        out = generate(h, key, view.digit, view.temperature, view.seed, request, step=step)
    return [view.digit, view.temperature, view.seed] + out


def link_outputs(h: Handle) -> list:
    """What ``open_link`` fills: the tab's settings, its summary and its step view."""
    return [h.digit, h.temperature, h.seed] + h.outputs


def link_view(h: Handle, key, digit, temperature, seed, t) -> links.View:
    """The link to the view the page shows (Copy link; the step comes from the browser)."""
    temperature, seed, _ = sampling(temperature, seed)
    return links.View(model=link_name(h.ex, key), digit=digit if digit in DIGITS else DEFAULT_DIGIT, seed=seed,
                      temperature=temperature, t=step_of(t), tab=TAB)


def wire(h: Handle, tab=None):
    slots = FairSlots(SLOTS)

    def answer(run, *args):
        """``run(*args)``; an InputError or a busy refusal becomes the visitor's message."""
        try:
            return run(*args)
        except InputError as e:
            raise message(str(e)) from None
        except Refused as e:
            raise message(e.message) from None

    def in_slot(run, *args):
        with slots.slot(request_client(args[-1])):
            return run(*args)

    def fair(run, *args):
        """``run(*args)`` in a fair slot (the last argument is the request), answered as ``answer``."""
        return answer(in_slot, run, *args)

    def do_generate(key, d, temp, s, request: gr.Request):
        if not key and h.ex.registry.default_key() is None:  # no checkpoint at all: how to get one, not an error
            howto = h.ex.no_checkpoint_message()
            gr.Warning(howto)
            return [howto] + [gr.skip()] * (len(h.outputs) - 1)
        return fair(lambda *a: generate(h, *a), key, d, temp, s, request)

    def new_seed():
        return random.randint(0, 99_999)

    def pick(key, d, temp, s, request):
        d, note = checked.digit_for_model(h.ex, key, d)
        out = generate(h, key, d, temp, s, request)
        if note:
            gr.Info(note)
        return [d] + out

    def follow_model(key, d, temp, s, request: gr.Request):
        """A model picked in the menu: the same digit and seed with it; an unconditional model draws
        'any' (the digit follows, with a note)."""
        return fair(pick, key, d, temp, s, request)

    h.downloads.wire(h.ckpt, h.digit, h.temperature, h.seed)
    ins = [h.ckpt, h.digit, h.temperature, h.seed]
    # answered directly (fair slots) or, as the baseline, through the queue (its fair picker)
    how = {"queue": False} if DIRECT else {"concurrency_limit": SLOTS}
    # picking another model redraws the same digit and seed with it (LSTM vs GRU vs RNN). On .select:
    # Gradio 6's Dropdown sends .input twice per pick (on the pick and on the blur that follows; the
    # second was refused as "busy"), and .change also fires when on_load sets the menu from a link
    # (through the queue: its note about a digit switched to 'any' is a toast, which a direct answer cannot carry)
    h.ckpt.select(follow_model, ins, [h.digit] + h.outputs, api_name="generate_with_model",
                  trigger_mode="always_last", concurrency_limit=SLOTS)  # quick picks: the last one is drawn once the one running ends
    # no spinner over the view: it redraws itself, and a spinner over it only costs time
    h.button.click(do_generate, ins, h.outputs, api_name="generate", show_progress="minimal", **how)
    h.dice.click(new_seed, None, [h.seed], api_name="new_seed", show_progress="hidden", queue=False).then(
        do_generate, ins, h.outputs, api_name="generate_new_seed", **how)

    h.link.wire(lambda *a: link_view(h, *a), ins + [h.view.t], "copy_link", NAME)

    def do_mixture(d, temp, s, request: gr.Request):
        return answer(sample_mixture, h, d, temp, s, request)

    def do_which(request: gr.Request):
        return answer(which_order, h, request)

    h.mixture.click(do_mixture, [h.digit, h.temperature, h.seed], [h.ckpt] + h.outputs, api_name="sample_mixture",
                    concurrency_limit=2, show_progress="minimal")
    h.which.click(do_which, None, h.orders.load_outputs, api_name="which_order", concurrency_limit=2,
                  show_progress="minimal")
