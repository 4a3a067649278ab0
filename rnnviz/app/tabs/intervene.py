"""Intervene: overwrite a gate or state (or an image row) at some steps and see what changes.

The model of the page's menu samples a digit twice with the same random numbers: without and with
the intervention (``rnnviz.interventions``). Both runs are shown side by side on one slider, with
the difference image (+1 red: only with it, -1 blue: only without), the change of h (and c) at the
current step, and per step the mean |Δh| (|Δc| for an LSTM) and both runs' NLL per row.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr
import numpy as np

from ... import interventions
from ...rules import RUN_COLORS
from .. import components as checked
from ..components import message, sample_controls, warn
from .. import links
from ..deeplinks import LinkBar, link_name, step_of
from ..inputs import DIGITS, InputError, sampling
from ..operations import ROW_EDITS, Explorer
from ..stepview import LinkedViews, entry_json

NAME = "intervene"


# ---- what the tab draws (pure) ------------------------------------------------------------------
def intervened_steps(changes, height: int) -> list[int]:
    """The steps any of ``changes`` (``rnnviz.interventions`` Intervention/RowEdit) applies to."""
    steps = set()
    for ch in changes:
        if hasattr(ch, "steps"):
            steps.update(ch.steps(height))
        else:
            steps.add(int(ch.step))
    return sorted(steps)


def comparison_summary(cmp, model_name: str, descriptions: list[str]) -> str:
    """Markdown: what was changed and what it did (the two NLLs, where the runs part)."""
    orig, new = cmp.original, cmp.intervened
    label = "unconditional" if orig.label is None else f"digit **{orig.label}**"
    what = "; ".join(descriptions) or "nothing"
    diff = new.nll - orig.nll
    parts = [f"**{model_name}**, {label}, seed {orig.seed}, temperature {orig.temperature:g}: *{html.escape(what)}*.",
             f"NLL without **{orig.nll:.1f}** nats, with **{new.nll:.1f}** nats ({'+' if diff >= 0 else ''}{diff:.1f};"
             " each under the run that drew it)."]
    first = cmp.first_changed_row
    start = cmp.first_step
    if first is None:
        moved = max(float(np.abs(cmp.state_diff("h")).max()), 0.0)
        parts.append(f"The images are **identical** (h moved by at most {moved:.3f}).")
    else:
        d = cmp.image_diff
        parts.append(f"The runs agree up to step {start}; the images first differ at **row {first}** "
                     f"(+{int((d > 0).sum())} / \u2212{int((d < 0).sum())} pixels).")
    return " ".join(parts)



@dataclass
class Handle:
    ex: Explorer
    ckpt: gr.Dropdown
    view: LinkedViews
    kind: gr.Dropdown
    help: gr.Markdown
    first: gr.Slider
    last: gr.Slider
    units: gr.Textbox
    value: gr.Number
    layer: gr.Dropdown
    digit: gr.Radio
    temperature: gr.Slider
    seed: gr.Number
    button: gr.Button
    summary: gr.Markdown
    link: LinkBar


def _help(kind: str) -> str:
    preset = interventions.PRESETS.get(kind)
    if preset is not None:
        return preset.help
    if kind in ROW_EDITS:
        return "the chosen rows are replaced (not sampled); the rows after them read the edited rows"
    return ""


def _needs_value(kind: str) -> bool:
    preset = interventions.PRESETS.get(kind)
    return preset is not None and any(v is None for _, v in preset.clamps)


def _choices(ex: Explorer, key) -> tuple[list[str], object]:
    try:
        entry, choices = ex.intervention_choices(key)
    except InputError:
        return list(ROW_EDITS), None
    return choices, entry.config


def build(ex: Explorer, ckpt) -> Handle:
    """The tab's layout (call inside its ``gr.Tab``); it uses the page's model menu ``ckpt``."""
    choices, config = _choices(ex, ex.registry.default_key())
    view = LinkedViews(ex, NAME, 2, "Run without and with", kind="intervene")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=250):
            gr.Markdown("Sample the digit twice with the same random numbers: without and with a change to "
                        "what the cell computes (model: the menu at the top).")
            kind = gr.Dropdown(choices, value=choices[0], label="intervention", elem_id="intervene_kind",
                               allow_custom_value=True)  # its choices follow the model; the Explorer checks it
            help_ = gr.Markdown(_help(choices[0]), elem_id="intervene_help", elem_classes="rv-help")
            first = checked.slider("first_step", elem_id="intervene_first")
            last = checked.slider("last_step", elem_id="intervene_last")
            units = gr.Textbox("all", label="units", info="all, or e.g. 3, 17, 200-210", max_lines=1,
                               elem_id="intervene_units", visible=kind.value not in ROW_EDITS)
            value = checked.Number(0.5, label="value", info="h lies in [-1, 1]", elem_id="intervene_value",
                                   visible=_needs_value(choices[0]))
            layers = getattr(config, "layers", 1)
            # a Dropdown that takes any value: the API may name a layer of a model picked after the page
            # was built; the Explorer checks it
            layer = gr.Dropdown(_layer_choices(layers), value=-1, label="layer", elem_id="intervene_layer",
                                visible=layers > 1, allow_custom_value=True)
            digit, temperature, seed = sample_controls("intervene", side_by_side=True)
            button = gr.Button("Run without and with", variant="primary", elem_id="intervene_btn")
            summary = gr.Markdown(elem_id="intervene_summary")
            link = LinkBar.render(NAME)
        with gr.Column(scale=11, min_width=600):
            view.render()
    return Handle(ex, ckpt, view, kind, help_, first, last, units, value, layer, digit, temperature, seed, button,
                  summary, link)


def run(h: Handle, key, kind, first, last, units, value, layer, d, temp, s, request, step: int | None = None) -> list:
    """Sample without and with the intervention and load both runs (at ``step``; None: the last).
    Returns the summary and the view's payload; InputError says what is wrong."""
    entry, cmp, description, notes = h.ex.intervene(key, d, temp, s, kind, first, last, units, value, layer)
    warn(notes)
    lay = -1 if kind in ROW_EDITS else cmp.changes[0].layer  # show the layer that was changed
    model = entry_json(entry.name, entry.config, entry.metrics)
    columns = [{"entry": model, "what": "without", "color": RUN_COLORS["without"]},
               {"entry": model, "what": f"with: {description}"[:120], "color": RUN_COLORS["with"],
                "intervened": intervened_steps(cmp.changes, cmp.original.steps)}]
    return ([comparison_summary(cmp, entry.name, [description])] +
            h.view.load(request, columns, [cmp.original, cmp.intervened], step=step, layer=lay, comparison=cmp))


def link_outputs(h: Handle) -> list:
    """What a deep link sets: the intervention, its steps and units, the sample's settings, the
    summary and the view."""
    return [h.kind, h.help, h.first, h.last, h.units, h.digit, h.temperature, h.seed, h.summary] + h.view.load_outputs


def open_link(h: Handle, view: links.View, key, request) -> list:
    """The values of ``link_outputs`` for a deep link to this tab (the model's first intervention
    when the link names none, or one the model does not have)."""
    choices, _ = _choices(h.ex, key)
    kind = view.kind if view.kind in choices else choices[0]
    out = run(h, key, kind, view.first, view.last, view.units, 0.5, -1, view.digit, view.temperature, view.seed,
              request, step=view.t)
    return [gr.Dropdown(choices=choices, value=kind), _help(kind), view.first, view.last, view.units, view.digit,
            view.temperature, view.seed] + out


def link_view(h: Handle, key, kind, first, last, units, d, temp, s, t) -> links.View:
    """The link to the runs the page shows (Copy link)."""
    temp, s, _ = sampling(temp, s)
    clean = str(units or "all").strip()
    return links.View(model=link_name(h.ex, key), kind=kind, first=int(first or 0), last=int(last or 0),
                      units=clean if len(clean) <= links.MAX_VALUE_CHARS else "all", digit=d if d in DIGITS else "7",
                      seed=s, temperature=temp, t=step_of(t), tab=NAME)


def _layer_choices(layers: int) -> list[tuple[str, int]]:
    return [(f"layer {k + 1}" + (" (top)" if k == layers - 1 else ""), k - layers) for k in range(layers)]


def wire(h: Handle, tab=None):
    ex, view = h.ex, h.view

    def do_run(key, kind, first, last, units, value, layer, d, temp, s, request: gr.Request):
        try:
            return run(h, key, kind, first, last, units, value, layer, d, temp, s, request)
        except InputError as e:
            raise message(str(e)) from None

    def presets(key, kind):
        """The interventions that fit the chosen model's cell (and its layers)."""
        choices, config = _choices(ex, key)
        kind = kind if kind in choices else choices[0]
        layers = getattr(config, "layers", 1)
        return (gr.Dropdown(choices=choices, value=kind), _help(kind),
                gr.Dropdown(choices=_layer_choices(layers), value=-1, visible=layers > 1)) + kind_fields(kind)[1:]

    def kind_fields(kind):
        return _help(kind), gr.Textbox(visible=kind not in ROW_EDITS), gr.Number(visible=_needs_value(kind))

    h.link.wire(lambda *a: link_view(h, *a), [h.ckpt, h.kind, h.first, h.last, h.units, h.digit, h.temperature,
                                              h.seed, view.t], "intervene_copy_link", NAME)
    h.button.click(do_run, [h.ckpt, h.kind, h.first, h.last, h.units, h.value, h.layer, h.digit, h.temperature,
                         h.seed], [h.summary] + view.load_outputs, api_name="intervene", concurrency_limit=2)
    # .change, not .input: Gradio 6's Dropdown sends .input twice per pick (the second was refused as
    # "busy"); the help follows the kind whoever sets it (the visitor, or presets below)
    h.kind.change(kind_fields, [h.kind], [h.help, h.units, h.value], api_name="intervene_kind",
                  show_progress="hidden")
    preset_out = [h.kind, h.help, h.layer, h.units, h.value]
    h.ckpt.change(presets, [h.ckpt, h.kind], preset_out, api_name="intervene_presets", show_progress="hidden")

    def digit_follows(key, d):
        """An unconditional model draws 'any' (Generate's menu handler says so in its note)."""
        try:
            return checked.digit_for_model(ex, key, d)[0]
        except InputError:
            return gr.skip()

    h.ckpt.change(digit_follows, [h.ckpt, h.digit], [h.digit], api_name="intervene_digit_follows",
                  show_progress="hidden")
    if tab is not None:
        tab.select(presets, [h.ckpt, h.kind], preset_out, api_name="intervene_presets_on_open",
                   show_progress="hidden")
