"""The Gradio page: the header (model menu, checkpoint upload) and the tabs, in order.

Each tab is a module in ``tabs/`` with ``build`` (its layout) and ``wire`` (its events); this file
adds them and wires what belongs to the whole page: the model menu's description, uploads, the
first digit when the page opens, and dropping a visitor's state when the tab closes. Every listener
has an ``api_name``, so the whole page can be driven with ``gradio_client`` (tests/app/).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

import gradio as gr

from .. import rules
from . import deeplinks, guard, links, tabs
from .cards import model_summary
from .components import message, session_id
from .downloads import Downloads
from .inputs import STEPS, InputError
from .operations import Explorer
from .stepview import MODULES
from .uploads import MAX_UPLOAD_BYTES, SUFFIX

HERE = Path(__file__).resolve().parent

# the page's head: the rules both front ends share (rnnviz.rules, as the static page's rules.json),
# then the app's own page.js; the step views' modules are served from stepview.MODULES
PAGE_HEAD = (f"<script>window.rnnvizRules = {json.dumps(rules.as_json(), separators=(',', ':'))};</script>\n"
             "<script>\n" + (HERE / "page.js").read_text(encoding="utf-8") + "</script>")

# Gradio keeps a copy of the page's configuration per session (~0.6 MB here) until this many newer
# sessions have come (its default, 10,000, would be gigabytes on a public server)
GRADIO_SESSIONS = 128


def launch_options() -> dict:
    """Keyword arguments for ``demo.launch`` (Gradio 6 takes theme, css and head there); every API
    request passes ``guard.RequestGuard`` first (sizes, URL-sourced files, a session's pending jobs)."""
    return {"theme": gr.themes.Soft(primary_hue="cyan", secondary_hue="orange"),
            "css": (HERE / "style.css").read_text() + (MODULES / "view.css").read_text(), "head": PAGE_HEAD, "run_history": False,
            "max_file_size": MAX_UPLOAD_BYTES,  # larger uploads are refused with HTTP 413
            "state_session_capacity": GRADIO_SESSIONS, "app_kwargs": {"middleware": guard.middleware()}}


DRAWING_GROUP = "drawings"  # every endpoint that reads a sketchpad: one concurrency group
DRAWING_CONCURRENCY = 2


def setup_queue(demo: gr.Blocks) -> gr.Blocks:
    """A bounded queue (``guard.MAX_QUEUE`` jobs; ``guard.RequestGuard`` bounds each session's),
    one shared concurrency group for the endpoints that decode drawings, and Gradio's cache swept
    every minute (uploads that reached no handler included: ``guard.cache_sweep``)."""
    for fn in demo.fns.values():
        if any(isinstance(b, gr.Sketchpad) for b in fn.inputs):
            fn.concurrency_id, fn.concurrency_limit = DRAWING_GROUP, DRAWING_CONCURRENCY
    demo.delete_cache = guard.cache_sweep()
    return demo.queue(max_size=guard.MAX_QUEUE)


def link_note_html(notes: list[str]) -> str:
    """The notes on a deep link's ignored values, as escaped text (empty when there are none)."""
    if not notes:
        return ""
    items = "".join(f"<li>{html.escape(n)}</li>" for n in notes)
    return f'<div class="rv-link-note" role="status"><b>Link:</b> some values were not used<ul>{items}</ul></div>'


def open_page(ex: Explorer, generate, linked: list, tab_ids: list[str], request) -> tuple:
    """The view the address asks for: (checkpoint key, tab id, notes on ignored values, the values of
    Generate's and every linked tab's ``link_outputs``). Generate is drawn on every load (the header's
    model), and the tab a deep link names is opened at its view. Never fails: a value the server
    cannot use falls back to its default, with a note."""
    names = deeplinks.link_models(ex)
    default_key = ex.registry.default_key()
    default = links.View(model=next((n for n, k in names.items() if k == default_key), None))
    view, notes = links.parse(request.query_params, deeplinks.context(ex, tab_ids), default)
    key = names.get(view.model, default_key)
    out = tabs.generate.open_link(generate, view, key, notes, request)
    for module, handle, tab in linked:
        values = [gr.skip()] * len(module.link_outputs(handle))
        if tab.id == view.tab and key is not None:
            try:
                values = module.open_link(handle, view, key, request)
            except InputError as e:
                notes.append(f"the {tab.id} view of this link could not be drawn: {e}")
        out += values
    return key, view.tab, notes, out


TABS = (("Generate & step", "generate", tabs.generate, True), ("Complete", "complete", tabs.complete, True),
        ("Units", "units", tabs.units, False), ("Compare cells", "compare", tabs.compare, False),
        ("Intervene", "intervene", tabs.intervene, False), ("Reconstruct (VAE)", "reconstruct", tabs.reconstruct, False),
        ("Gate saturation", "saturation", tabs.saturation, False), ("Teacher forcing", "forcing", tabs.forcing, False),
        ("Train", "train", tabs.train, False))  # (title, id, module, has downloads), in page order


def build_tabs(ex: Explorer, ckpt, downloads: Downloads) -> list:
    """Every tab's layout in page order (inside ``gr.Tabs``), then About: [(module, handle, gr.Tab)]."""
    built = []
    for title, tab_id, module, exports in TABS:
        with gr.Tab(title, id=tab_id) as tab:
            built.append((module, module.build(ex, ckpt, *((downloads,) if exports else ())), tab))
    with gr.Tab("About", id="about"):
        gr.Markdown((HERE / "about.md").read_text(),
                    latex_delimiters=[{"left": "$$", "right": "$$", "display": True},
                                      {"left": "$", "right": "$", "display": False}])
    return built


def build_app(ex: Explorer) -> gr.Blocks:
    gr.set_static_paths(paths=[MODULES])  # the shared view modules (ES modules, imported by the page)
    downloads = Downloads()  # per-session folders of exported files (GIF, .npz, PNG)
    with gr.Blocks(title="rnnviz explorer", delete_cache=(600, 3600)) as demo:
        gr.Markdown("# rnnviz: watch a recurrent network write digits, row by row\n"
                    f"Pick a model, generate a digit and scrub through its {STEPS} steps: the canvas, every gate "
                    "and state, and each row's surprise stay in sync. The *About* tab has the equations.")
        with gr.Row(equal_height=True):
            ckpt = gr.Dropdown(label="model (checkpoint)", choices=ex.registry.choices(),
                               value=ex.registry.default_key(), scale=2, elem_id="checkpoint",
                               allow_custom_value=True)  # runs trained later are checked by the registry
            model_info = gr.Markdown(elem_id="model_info")
            upload = gr.UploadButton(f"Load your own checkpoint ({SUFFIX}, up to {MAX_UPLOAD_BYTES // 2**20} MB)",
                                     file_types=[SUFFIX], file_count="single", type="filepath", size="sm",
                                     scale=1, elem_id="upload_checkpoint")
        link_note = gr.HTML("", elem_id="link_note", padding=False)  # what a deep link asked that was ignored
        with gr.Tabs(elem_id="tabs") as tab_bar:
            built = build_tabs(ex, ckpt, downloads)  # (module, handle, gr.Tab), wired once the whole page exists
        for module, handle, tab in built:
            module.wire(handle, tab)
        generate, train = built[0][1], built[-1][1]

        # ---- the header
        def describe(key):
            try:
                entry, _ = ex.model(key)
            except InputError as e:
                return str(e)
            return model_summary(entry.config, entry.metrics, entry.name)

        def upload_checkpoint(path, request: gr.Request):
            if not path:
                raise message("No file arrived.")
            try:  # listed for this session only (unless the server runs with --public-uploads)
                entry = ex.add_upload(path, Path(path).name, session_id(request))
            except InputError as e:
                raise message(str(e)) from None
            gr.Info(f"Added {entry.label} to the model list.")
            return gr.Dropdown(choices=ex.registry.choices(session_id(request)), value=entry.key), describe(entry.key)

        ckpt.change(describe, [ckpt], [model_info], api_name="describe", show_progress="hidden")
        upload.upload(upload_checkpoint, [upload], [ckpt, model_info], api_name="upload_checkpoint",
                      concurrency_limit=2, show_progress="hidden")  # a refusal shows a toast, not error badges

        # ---- page load: models, the view the address asks for (a deep link; else a first 7), training
        tab_ids = [tab.id for _, _, tab in built] + ["about"]

        linked = [(module, handle, tab) for module, handle, tab in built[1:] if hasattr(module, "open_link")]

        def on_load(request: gr.Request):
            key, tab, notes, out = open_page(ex, generate, linked, tab_ids, request)
            return [gr.Dropdown(choices=ex.registry.choices(), value=key), describe(key),
                    gr.Tabs(selected=tab), link_note_html(notes)] + out

        def train_on_load(request: gr.Request):
            return tabs.train.refresh(ex, request)

        demo.load(on_load, None, [ckpt, model_info, tab_bar, link_note] + tabs.generate.link_outputs(generate)
                  + [c for module, handle, _ in linked for c in module.link_outputs(handle)], api_name="on_load")
        demo.load(train_on_load, None, train.refresh_outputs, api_name="train_on_load", show_progress="hidden")

        def end_session(request: gr.Request):
            """The tab was closed or reloaded: drop this visitor's traces now rather than by LRU."""
            ex.sessions.drop(session_id(request))
            downloads.drop(session_id(request))

        demo.unload(end_session)
    return setup_queue(demo)
