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

import random
from dataclasses import dataclass, replace

import gradio as gr

from .. import cards, links
from .. import components as checked
from ..components import message, warn
from ..downloads import Downloads, ExportBar
from ..inputs import DIGITS, STEPS, InputError, sampling
from ..state import Explorer
from ..stepview import StepView, step_js

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
    link_button: gr.Button
    link: gr.Textbox

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
            summary = gr.Markdown(elem_id="gen_summary")
            link_button = gr.Button("Copy link", size="sm", elem_id="copy_link")
            link = gr.Textbox(label="link to this view", interactive=False, elem_id="view_link", max_lines=1,
                              placeholder="Copy link puts the address of this exact view here")
            bar = ExportBar(ex, NAME, downloads, grid=True)
            bar.render()
        with gr.Column(scale=11, min_width=600):
            view.render()
    return Handle(ex, ckpt, view, digit, temperature, seed, button, dice, summary, bar, link_button, link)


def generate(h: Handle, key, digit, temperature, seed, request, step: int | None = None) -> list:
    """Draw one digit and load it into the step view at ``step`` (None: the last, with the whole
    image drawn; InputError says what is wrong)."""
    entry, traces, notes = h.ex.generate(key, digit, temperature, seed)
    warn(notes)
    return [cards.trace_summary(traces[0], entry.name)] + h.view.load(request, traces[0], entry.name, step=step, key=entry.key)


# ---- deep links ------------------------------------------------------------------------------------
def link_models(h: Handle) -> dict[str, str]:
    """A link's model name -> checkpoint key: shipped models by file name (``mnist_gru``), runs
    trained here by key (``run/...``). Uploads are private to their visitor, so no link names one."""
    return {(e.name if e.origin == "shipped" else e.key): e.key
            for e in h.ex.registry.entries() if e.origin != "upload"}


def open_link(h: Handle, params, tab_ids, request) -> tuple[str | None, str, list, list[str]]:
    """The view a page address asks for: (checkpoint key, tab id, the values of ``link_outputs``,
    notes on what was ignored). No query gives the first view (the default model's 7 at step 0).
    Never raises: anything unusable falls back to the default view, with a note."""
    models = link_models(h)
    default_key = h.ex.registry.default_key()
    default_name = next((n for n, k in models.items() if k == default_key), None)
    ctx = links.Context(models=tuple(models), tabs=tuple(tab_ids))
    view, notes = links.parse(params, ctx, links.View(model=default_name, digit=DEFAULT_DIGIT))
    key = models.get(view.model, default_key)
    if key is None:
        return None, view.tab, [gr.skip()] * 3 + [h.ex.no_checkpoint_message()] + [gr.skip()] * len(h.view.load_outputs), notes
    step = view.t if "t" in params else None
    try:
        out = generate(h, key, view.digit, view.temperature, view.seed, request, step=step)
    except InputError as e:  # a digit for an unconditional model: draw any (say so if the link asked)
        if "digit" in params:
            notes.append(f"{e}; drawing any digit")
        view = replace(view, digit="any")
        out = generate(h, key, view.digit, view.temperature, view.seed, request, step=step)
    return key, view.tab, [view.digit, view.temperature, view.seed] + out, notes


def link_outputs(h: Handle) -> list:
    """What ``open_link`` fills: the tab's settings, its summary and its step view."""
    return [h.digit, h.temperature, h.seed] + h.outputs


def copy_link(h: Handle, key, digit, temperature, seed, t) -> str:
    """The link to the view the page shows: absolute on a Space (its own host), else the query,
    which the page puts after its own address (``COPY_JS``)."""
    names = {k: n for n, k in link_models(h).items()}
    if key not in names:
        raise InputError("uploaded models are private to your session: a link cannot open one for others")
    temperature, seed, _ = sampling(temperature, seed)
    step = int(min(max(int(t or 0), 0), STEPS - 1))
    view = links.View(model=names[key], digit=digit if digit in DIGITS else DEFAULT_DIGIT, seed=seed,
                      temperature=temperature, t=step, tab="generate")
    base = links.public_base()
    return links.link(view, base) if base else "?" + links.query(view)


# after copy_link: make the link absolute from the page's own address, copy it, and show it in the
# address bar too (off a Space; there the page is an iframe and its parent's address is the Space's)
COPY_JS = """(link) => {
  if (!link) return link;
  const url = link.startsWith('?') ? window.location.origin + window.location.pathname + link : link;
  try { if (link.startsWith('?')) window.history.replaceState(null, '', url); } catch (e) {}
  try { navigator.clipboard && navigator.clipboard.writeText(url).catch(() => {}); } catch (e) {}
  return url;
}"""


def wire(h: Handle, tab=None):
    def do_generate(key, d, temp, s, request: gr.Request):
        try:
            return generate(h, key, d, temp, s, request)
        except InputError as e:
            raise message(str(e)) from None

    def new_seed():
        return random.randint(0, 99_999)

    def follow_model(key, d, temp, s, request: gr.Request):
        """A model picked in the menu: the same digit and seed with it; an unconditional model draws
        'any' (the digit follows, with a note)."""
        try:
            d, note = checked.digit_for_model(h.ex, key, d)
            out = generate(h, key, d, temp, s, request)
        except InputError as e:
            raise message(str(e)) from None
        if note:
            gr.Info(note)
        return [d] + out

    h.downloads.wire(h.ckpt, h.digit, h.temperature, h.seed)
    ins = [h.ckpt, h.digit, h.temperature, h.seed]
    # picking another model redraws the same digit and seed with it (LSTM vs GRU vs RNN). On .select:
    # Gradio 6's Dropdown sends .input twice per pick (on the pick and on the blur that follows; the
    # second was refused as "busy"), and .change also fires when on_load sets the menu from a link
    h.ckpt.select(follow_model, ins, [h.digit] + h.outputs, api_name="generate_with_model", concurrency_limit=2,
                  trigger_mode="always_last")  # quick picks: the last one is drawn once the one running ends
    h.button.click(do_generate, ins, h.outputs, api_name="generate", concurrency_limit=2)
    h.dice.click(new_seed, None, [h.seed], api_name="new_seed", show_progress="hidden").then(
        do_generate, ins, h.outputs, api_name="generate_new_seed", concurrency_limit=2)

    def do_copy_link(key, d, temp, s, t):
        try:
            return copy_link(h, key, d, temp, s, t)
        except InputError as e:
            raise message(str(e)) from None

    h.link_button.click(do_copy_link, ins + [h.view.t], [h.link], api_name="copy_link", show_progress="hidden",
                        queue=False, js=step_js(NAME, len(ins) + 1)).then(None, [h.link], [h.link], js=COPY_JS)
