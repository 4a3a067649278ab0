"""Step views: a trace (or a few traces) and a timestep slider, drawn in the visitor's browser.

The app and the static page share one view layer, the ES modules of ``rnnviz/site/static/``
(``view.js`` a step view, ``group.js`` several traces on one slider, ``intervene.js`` Intervene's
difference column; ``gradio.js`` mounts them in a ``gr.HTML``). The server computes a trace once per
Generate (Complete, Compare, Run, ...) and sends it once as exact float32 values
(``rnnviz.wire``); scrubbing, Play, the step box, the keys, hover, the layer and the unit order
then happen in the browser and send no request. The step reaches the server only where it needs
it: Copy link reads it from the page (``STEP_JS``), and a click on a unit opens the Units tab.

- ``StepView``: one trace (Generate & step, Complete, Reconstruct).
- ``LinkedViews``: several traces on one player (Compare cells; Intervene with its difference).

Each view also keeps its trace(s) in the visitor's session (``Explorer.sessions``): the downloads and
the Units tab read them there. Handlers do no model math: traces come from ``state.Explorer``.
"""

from __future__ import annotations

import html
import itertools
import json
from pathlib import Path

import gradio as gr

from ..site import STATIC
from ..wire import encode_trace
from .components import Number, session_id
from .inputs import InputError
from .operations import Explorer
from .sessions import ViewState

# gr.set_static_paths serves the modules here (ui.build_app); gradio.js imports the rest relative to itself
MODULES = Path(STATIC).resolve()
# js_on_load of every view: load the host module from this server and mount the view (the URL is built
# from the page's own address, so an app served under a path prefix finds it too). The view's settings
# (name, kind, button, modules) are its props and, the same, data attributes of its template
# (``_template``): Gradio 6.31 drops a gr.HTML's own props when a listener answers gr.skip() for it
# before its tab was first shown (a deep link's page load does), and keeps the template
MOUNT_JS = """
const conf = (element.querySelector('.rv-host') || element).dataset;
const base = new URL('gradio_api/file=' + (props.modules || conf.modules) + '/', window.location.href.split('?')[0].replace(/[^/]*$/, ''));
import(new URL('gradio.js', base).href).then((m) => m.mount(element, props, watch))
  .catch((e) => { element.textContent = 'The step view could not load: ' + (e && e.message || e); });
"""
TEMPLATES = {
    "single": ('<div class="rv-host rv-sv"><div class="rv-sv-top"><div class="rv-slot-canvas"></div>'
               '<div class="rv-slot-gates"></div></div><div class="rv-slot-figure"></div></div>'),
    "group": '<div class="rv-host rv-group"></div>',
    "intervene": '<div class="rv-host rv-group"></div>',
    "orders": '<div class="rv-host rv-orders-host"></div>',
}
_loads = itertools.count(1)  # every payload gets a new id: the page's data-loaded says which it shows


def step_js(name: str, inputs: int) -> str:
    """A listener's ``js`` for ``inputs`` inputs, the last of them the view's ``t``: it passes the
    others on and puts the view ``name``'s step (which lives in the browser) in place of ``t``."""
    args = [f"a{k}" for k in range(inputs)]
    return (f"({', '.join(args)}) => [{''.join(a + ', ' for a in args[:-1])}"
            f"(window.rnnviz && window.rnnviz.step ? window.rnnviz.step('{name}') : 0)]")


def trace_model_key(ex: Explorer, trace, model_name: str) -> str | None:
    """The checkpoint named ``model_name`` that could have drawn ``trace`` (same cell and sizes;
    the first listed: shipped before runs and uploads), or None."""
    if trace is None:
        return None
    for e in ex.registry.entries():
        c = e.config
        if e.name == model_name and c.cell == trace.cell and c.layers == len(trace.layers) \
                and c.hidden == trace.layers[0]["h"].shape[1]:
            return e.key
    return None


def entry_json(name: str, config, metrics: dict | None = None) -> dict:
    """What a column title shows of a model: its name, config and recorded test NLL (texts are
    drawn as text by the page, never as markup)."""
    m = metrics or {}
    out = {"name": str(name)[:80], "config": {"cell": config.cell, "layers": config.layers, "hidden": config.hidden,
                                              "latent": getattr(config, "latent", 0),
                                              "order": getattr(config, "order", "rows")},
           "metrics": {}}
    if isinstance(m.get("test_nll"), (int, float)):
        out["metrics"]["test_nll"] = float(m["test_nll"])
    if m.get("test_nll_protocol"):
        out["metrics"]["test_nll_protocol"] = str(m["test_nll_protocol"])[:200]
    return out


class _View:
    """A gr.HTML that hosts one of the shared JavaScript views (``kind``: single, group, intervene)."""

    kind = "single"

    def __init__(self, ex: Explorer, name: str, button: str):
        self.ex, self.name, self.button = ex, name, button

    def render(self, **kw):
        self.html = gr.HTML("", html_template=self._template(), js_on_load=MOUNT_JS, padding=False,
                            elem_id=f"{self.name}_view", elem_classes="rv-view", name=self.name, kind=self.kind,
                            button=self.button, modules=str(MODULES), **kw)
        # the step as a listener's input: filled from the browser by ``step_js`` when it is needed (a
        # checked Number: anything but a finite number is refused with a message; the listener clamps it)
        self.t = Number(0, precision=0, visible=False, label="timestep", elem_id=f"{self.name}_t")
        return self.html

    def _template(self) -> str:
        """The view's template, its settings as data attributes of its host element (see MOUNT_JS)."""
        conf = {"name": self.name, "kind": self.kind, "button": self.button, "modules": str(MODULES)}
        attrs = " ".join(f'data-{k}="{html.escape(v, quote=True)}"' for k, v in conf.items())
        return TEMPLATES[self.kind].replace('<div class="rv-host', f'<div {attrs} class="rv-host', 1)

    @property
    def load_outputs(self) -> list:
        return [self.html]

    def view(self, request) -> ViewState:
        return self.ex.sessions.get(session_id(request)).view(self.name)

    def _unit_order(self, key: str | None, nlayers: int) -> tuple[list | None, str]:
        """Per layer the behaviour order of the units (``units.unit_order`` over test digits, cached
        per model and layer), or (None, why) when it cannot be measured."""
        if key is None:
            return None, "the model of this trace is not in the model list"
        try:
            return [self.ex.unit_studies.order(key, k)[2].tolist() for k in range(nlayers)], ""
        except InputError as e:
            return None, str(e)

    def _payload(self, columns: list[dict], step: int, layer: int = -1, **extra) -> str:
        return json.dumps({"id": next(_loads), "step": int(step), "layer": int(layer), "columns": columns, **extra},
                          separators=(",", ":"))


class StepView(_View):
    """One trace: canvas, player, gate grids and units x time panels (Generate, Complete, Reconstruct).
    Clicking a unit opens it in the Units tab (``page.js``: ``rnnvizInspect``)."""

    def __init__(self, ex: Explorer, name: str, button: str = "Generate"):
        super().__init__(ex, name, button)

    def load(self, request, trace, model_name: str, layer: int | None = None, step: int | None = None,
             key: str | None = None) -> list:
        """Store ``trace`` as this session's current trace and return the view's payload: it opens at
        ``step`` (a deep link's), else at the last step with the whole image drawn. ``key``: the
        checkpoint that drew it (None: found by ``model_name``), for the unit order."""
        v = self.view(request)
        nlayers = len(trace.layers)
        v.trace, v.traces, v.model_name, v.comparison = trace, [trace], model_name, None
        v.layer = nlayers - 1 if layer is None else max(0, min(int(layer), nlayers - 1))
        v.model_key = key or trace_model_key(self.ex, trace, model_name)
        try:
            entry = self.ex.registry.get(v.model_key) if v.model_key else None
        except InputError:  # removed meanwhile (an old run): the title says what the trace knows
            entry = None
        order, note = self._unit_order(v.model_key, nlayers)
        last = trace.steps - 1
        step = last if step is None else max(0, min(int(step), last))
        column = {"entry": entry_json(model_name, entry.config if entry else _config_of(trace),
                                      entry.metrics if entry else {}),
                  "trace": encode_trace(trace), "unitOrder": order, "note": note and f"index order: {note}"}
        return [self._payload([column], step, v.layer)]


class LinkedViews(_View):
    """Several traces side by side on one player, over one chart of every column's NLL per line on
    one scale (Compare cells); ``kind="intervene"`` adds Intervene's difference column."""

    kind = "group"

    def __init__(self, ex: Explorer, name: str, columns: int, button: str, kind: str = "group"):
        super().__init__(ex, name, button)
        self.ncols, self.kind = columns, kind

    def load(self, request, columns: list[dict], traces: list, step: int | None = None, layer: int = -1,
             comparison=None) -> list:
        """Store ``traces`` (at most ``columns``) in the session and return the payload: ``columns``
        are dicts with ``entry`` (``entry_json``), ``what`` (what the trace is) and, for Intervene's
        second column, ``intervened`` (steps); each gets its trace. Opens at the last step."""
        if not 1 <= len(traces) <= self.ncols or len(columns) != len(traces):
            raise ValueError(f"{self.name}: need 1 to {self.ncols} traces with a column each, got {len(traces)}")
        v = self.view(request)
        v.traces, v.layer, v.comparison, v.trace = list(traces), layer, comparison, traces[0]
        # a click on a unit of column k names the view "<name><k>" (gradio.js): the Units tab then
        # inspects that column's model (its trace's checkpoint), not the page's
        sess = self.ex.sessions.get(session_id(request))
        for k in range(self.ncols):
            if k < len(traces):
                cv, name = sess.view(f"{self.name}{k}"), columns[k]["entry"]["name"]
                cv.trace, cv.traces, cv.model_name, cv.layer = traces[k], [traces[k]], name, len(traces[k].layers) - 1
                cv.model_key = trace_model_key(self.ex, traces[k], name)
            else:
                sess.views.pop(f"{self.name}{k}", None)
        out = []
        for col, tr in zip(columns, traces):
            out.append({**col, "trace": encode_trace(tr), "layer": layer})
        last = max(tr.steps for tr in traces) - 1
        step = last if step is None else max(0, min(int(step), last))
        return [self._payload(out, step, layer)]


class OrdersView(_View):
    """"Which order?" (``orders.js``): each part of the mixture of scan orders scores the digit on
    screen, line by line in its own order (``mixtures.Mixtures.which_order`` computes the numbers)."""

    kind = "orders"

    def load(self, data: dict) -> list:
        return [self._payload([], 0, orders=data)]


def _config_of(trace):
    """A config-like record of a trace whose model is not listed (for its column title)."""
    from types import SimpleNamespace

    return SimpleNamespace(cell=trace.cell, layers=len(trace.layers), hidden=int(trace.layers[0]["h"].shape[1]),
                           latent=0 if trace.latent is None else int(trace.latent.size), order=trace.order)
