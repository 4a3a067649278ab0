"""Deep links in the app: which models a link may name, and each tab's Copy link.

``links`` parses and writes the URL (pure); this module connects it to the running explorer: a
link names shipped models by file name (``mnist_gru``) and runs trained here by key (``run/...``);
uploads are private to their visitor, so no link names one. Every tab with a view has a Copy link
button (``LinkBar``); its handler builds a ``links.View`` of the tab's settings, the step coming
from the browser's view (``stepview.step_js``). When the page opens, ``ui.build_app`` gives the
parsed view to the tab it names (each tab's ``open_link``).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from . import links
from .components import message
from .inputs import STEPS, InputError
from .operations import ROW_EDITS, Explorer
from .stepview import step_js


def link_models(ex: Explorer) -> dict[str, str]:
    """A link's model name -> checkpoint key (shipped models by file name, runs by key)."""
    return {(e.name if e.origin == "shipped" else e.key): e.key for e in ex.registry.entries() if e.origin != "upload"}


def link_name(ex: Explorer, key) -> str:
    """The name a link gives the model ``key``; InputError for an upload (private to its visitor)."""
    names = {k: n for n, k in link_models(ex).items()}
    if key not in names:
        raise InputError("uploaded models are private to your session: a link cannot open one for others")
    return names[key]


def context(ex: Explorer, tabs) -> links.Context:
    """What a link may name on this server: its models, tabs and interventions."""
    from .. import interventions

    return links.Context(models=tuple(link_models(ex)), tabs=tuple(tabs),
                         kinds=tuple(interventions.PRESETS) + tuple(ROW_EDITS))


def step_of(t) -> int:
    """The step the browser's view showed (sent by ``stepview.step_js``), clamped."""
    try:
        return int(min(max(int(float(t or 0)), 0), STEPS - 1))
    except (TypeError, ValueError, OverflowError):
        return 0


@dataclass
class LinkBar:
    """A Copy link button and the box that shows the link (elem ids ``<prefix>_copy_link``,
    ``<prefix>_link``)."""

    button: gr.Button
    box: gr.Textbox

    @classmethod
    def render(cls, prefix: str, button_id: str | None = None, box_id: str | None = None) -> "LinkBar":
        button = gr.Button("Copy link", size="sm", elem_id=button_id or f"{prefix}_copy_link")
        box = gr.Textbox(label="link to this view", interactive=False, elem_id=box_id or f"{prefix}_link", max_lines=1,
                         placeholder="Copy link puts the address of this exact view here")
        return cls(button, box)

    def wire(self, view_fn, inputs: list, api_name: str, view_name: str | None = None):
        """``view_fn(*inputs[, step]) -> links.View``; with ``view_name`` the step of that step view
        is added as the last input (read in the browser)."""

        def copy(*values):
            try:
                return links.address(view_fn(*values))
            except InputError as e:
                raise message(str(e)) from None

        extra = {"js": step_js(view_name, len(inputs))} if view_name else {}
        self.button.click(copy, inputs, [self.box], api_name=api_name, show_progress="hidden", queue=False,
                          **extra).then(None, [self.box], [self.box], js=links.COPY_JS)
