"""Download buttons for a step view: the trace as an animated GIF or a .npz, and a PNG grid of samples.

``ExportBar`` adds a row of buttons under a ``StepView`` (Generate & step, Complete). A click writes
the file with ``rnnviz.export`` (``trace_gif``, ``save_trace_npz``, ``sample_grid_png``) from the
session's current trace (or the page's model, digit, temperature and seed), hands it to a hidden
``gr.DownloadButton`` and clicks that in the browser, so one click downloads the new file. (A
``gr.DownloadButton`` downloads the value it already has when clicked: made on its own click, the
file would arrive one click late.) Through the API the handler returns the file.

Files: ``Downloads`` keeps one folder per session (named by a hash of the session id) under Gradio's
temporary folder, with names built only from the cell type and validated numbers (never text a
visitor typed). A new export of a kind replaces the session's previous one; the folders of the
oldest sessions are deleted beyond ``max_sessions`` and a session's folder when its tab closes.
Gradio copies each returned file into its cache, which ``delete_cache`` on the Blocks empties.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path

import gradio as gr

from .. import export
from ..model import CELLS
from . import inputs
from .components import Number, message, session_id, warn
from .inputs import InputError
from .operations import Explorer

GRID_N = 10  # samples per class (or of the chosen digit) in the sample grid


class Downloads:
    """Per-session folders for exported files, bounded in number."""

    def __init__(self, root: str | os.PathLike | None = None, max_sessions: int = 64):
        base = Path(root or os.environ.get("GRADIO_TEMP_DIR") or tempfile.gettempdir())
        base.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="rnnviz-exports-", dir=base))
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._folders: OrderedDict[str, Path] = OrderedDict()
        atexit.register(shutil.rmtree, self.root, True)

    def folder(self, session: str | None) -> Path:
        """This session's folder (made now if needed); the oldest sessions' folders go beyond the limit."""
        name = hashlib.sha256((session or "local").encode()).hexdigest()[:16]
        with self._lock:
            path = self._folders.get(name)
            if path is None:
                path = self._folders[name] = self.root / name
                while len(self._folders) > self.max_sessions:
                    _, old = self._folders.popitem(last=False)
                    shutil.rmtree(old, ignore_errors=True)
            else:
                self._folders.move_to_end(name)
            path.mkdir(parents=True, exist_ok=True)
            return path

    def path(self, session: str | None, stem: str, suffix: str) -> Path:
        """Where to write this session's ``stem + suffix``; its earlier ``suffix`` files are removed."""
        folder = self.folder(session)
        for old in folder.glob(f"*{suffix}"):
            old.unlink(missing_ok=True)
        return folder / f"{stem}{suffix}"

    def drop(self, session: str | None):
        name = hashlib.sha256((session or "local").encode()).hexdigest()[:16]
        with self._lock:
            path = self._folders.pop(name, None)
        if path is not None:
            shutil.rmtree(path, ignore_errors=True)

    def __len__(self) -> int:
        return len(self._folders)


def trace_stem(trace, what: str) -> str:
    """A file name from the trace's cell and numbers only, e.g. ``rnnviz_lstm_digit7_seed0``."""
    parts = ["rnnviz", str(trace.cell) if trace.cell in CELLS else "model"]
    if trace.label is not None:
        parts.append(f"digit{int(trace.label)}")
    if trace.seed is not None:
        parts.append(f"seed{int(trace.seed)}")
    if trace.keep_rows:
        parts.append(f"kept{int(trace.keep_rows)}")
    return "_".join(parts + ([what] if what else []))


CLICK_JS = """() => { const e = document.querySelector('#%s');
  const b = e && (e.tagName === 'BUTTON' ? e : e.querySelector('button')); if (b) b.click(); }"""


LAYER_JS = "() => [window.rnnviz && window.rnnviz.layer ? window.rnnviz.layer('%s') : -1]"


class ExportBar:
    """GIF / trace .npz (/ sample grid PNG) buttons for the step view ``view`` (a ``StepView`` name)."""

    def __init__(self, ex: Explorer, view: str, downloads: Downloads, button: str = "Generate", grid: bool = False):
        self.ex, self.view, self.downloads, self.button, self.grid = ex, view, downloads, button, grid

    def render(self):
        with gr.Row(elem_classes="rv-exports", equal_height=True):
            self.gif = gr.Button("\u2b07 GIF", size="sm", elem_id=f"{self.view}_export_gif", scale=0, min_width=70)
            self.npz = gr.Button("\u2b07 trace .npz", size="sm", elem_id=f"{self.view}_export_npz", scale=0,
                                 min_width=110)
            if self.grid:
                self.png = gr.Button("\u2b07 sample grid PNG", size="sm", elem_id=f"{self.view}_export_grid", scale=0,
                                     min_width=150)
        self.file = gr.DownloadButton("download", visible="hidden", elem_id=f"{self.view}_download")
        # the layer the visitor shows (it lives in the browser's view): the GIF draws that one
        self.layer = Number(-1, precision=0, visible=False, label="layer", elem_id=f"{self.view}_gif_layer")

    def _trace(self, request):
        v = self.ex.sessions.get(session_id(request)).view(self.view)
        if v.trace is None:
            raise message(f"Nothing to export yet (or it expired): press {self.button} first.")
        return v

    def wire(self, ckpt=None, digit=None, temperature=None, seed=None):
        n, click = self.view, CLICK_JS % f"{self.view}_download"

        def gif(layer, request: gr.Request):
            v = self._trace(request)
            nlayers = len(v.trace.layers)
            k = v.layer if layer is None or layer < 0 else min(int(layer), nlayers - 1)  # the page's, clamped
            path = self.downloads.path(session_id(request), trace_stem(v.trace, n) + (f"_layer{k + 1}" if nlayers > 1 else ""),
                                       ".gif")
            return export.trace_gif(v.trace, path, layer=k)

        def npz(request: gr.Request):
            v = self._trace(request)
            path = self.downloads.path(session_id(request), trace_stem(v.trace, n), ".npz")
            return export.save_trace_npz(v.trace, path)

        self.gif.click(gif, [self.layer], [self.file], api_name=f"{n}_export_gif", concurrency_limit=2,
                       js=LAYER_JS % n).success(None, None, None, js=click)
        self.npz.click(npz, None, [self.file], api_name=f"{n}_export_npz", concurrency_limit=2).success(
            None, None, None, js=click)
        if not self.grid:
            return

        def grid(key, d, temp, s, request: gr.Request):
            try:
                entry, model = self.ex.model(key)
                C = model.config.num_classes
                y = inputs.digit(d, C)
                t, seed, notes = inputs.sampling(temp, s)
            except InputError as e:
                raise message(str(e)) from None
            warn(notes)
            what = f"digit{y}" if y is not None else ("digits" if C else "samples")
            stem = f"rnnviz_{entry.config.cell}_{what}_seed{seed}_grid"
            path = self.downloads.path(session_id(request), stem, ".png")
            return export.sample_grid_png(model, path, digit=y, n=GRID_N if (y is not None or C) else 10 * GRID_N,
                                          temperature=t, seed=seed)

        self.png.click(grid, [ckpt, digit, temperature, seed], [self.file], api_name=f"{n}_export_grid",
                       concurrency_limit=2).success(None, None, None, js=click)
