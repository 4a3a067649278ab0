"""Per-visitor state: ``Sessions``, a bounded LRU of ``Session`` keyed by Gradio's session hash (the
trace of each step view, the last completions, what this page was last sent). Traces never travel to
the browser as ``gr.State``; the downloads and the Units tab read them here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..interventions import Comparison
from ..trace import Trace

DEFAULT_UNIT_ORDER = "behaviour"  # the structure reads at once (a sweep of peaks down the rows)


@dataclass
class ViewState:
    """One step view of one visitor: the trace(s) on its slider and how they are shown."""
    trace: Trace | None = None  # the trace on the slider (the first one of a linked view)
    model_name: str = ""
    layer: int = 0
    playing: bool = False  # Play pressed and not paused
    traces: list[Trace] = field(default_factory=list)  # several traces on one slider (LinkedViews)
    titles: list[str] = field(default_factory=list)  # the column titles of a linked view
    comparison: Comparison | None = None  # Intervene: the two runs, for the difference column
    model_key: str | None = None  # the checkpoint that drew ``trace`` (the unit order is measured on it)
    unit_order: str = DEFAULT_UNIT_ORDER  # "index" or "behaviour": how the grids and figure lay out units
    unit_perm: np.ndarray | None = None  # the behaviour order in use (None: index order)
    order_note: str = ""  # why the view fell back to index order, if it did
    mixture_part: int | None = None  # the part of the mixture of scan orders that drew ``trace``, if it did


@dataclass
class Seen:
    """What this visitor's page was last sent, so that timers send only what changed."""
    train: tuple | None = None  # (state, step, history length, ...) of the training run
    models: tuple | None = None  # the checkpoint list's signature
    train_saturation: str | None = None  # fingerprint of the live saturation figure
    saturation_open: bool = False  # the Gate saturation tab was opened (it then follows the model)
    saturation_key: str | None = None  # the model it measured last


@dataclass
class Session:
    views: dict[str, ViewState] = field(default_factory=dict)
    completions: list[Trace] = field(default_factory=list)
    completion_model: str = ""
    completion_key: str | None = None  # the checkpoint that drew them
    seen: Seen = field(default_factory=Seen)

    def view(self, name: str) -> ViewState:
        return self.views.setdefault(name, ViewState())


class Sessions:
    """A bounded LRU of per-visitor state, keyed by Gradio's session hash."""

    def __init__(self, max_sessions: int = 64):
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._data: OrderedDict[str, Session] = OrderedDict()
        self.on_drop: list = []  # called with the session hash when a session ends (its uploads)

    def get(self, session_hash: str | None) -> Session:
        key = session_hash or "local"
        with self._lock:
            s = self._data.get(key)
            if s is None:
                s = self._data[key] = Session()
                while len(self._data) > self.max_sessions:
                    self._data.popitem(last=False)
            else:
                self._data.move_to_end(key)
            return s

    def drop(self, session_hash: str | None) -> bool:
        """Forget a session (its tab was closed). True if it was held."""
        with self._lock:
            held = self._data.pop(session_hash or "local", None) is not None
        for hook in self.on_drop:
            hook(session_hash)
        return held

    def values(self) -> list[Session]:
        """Every session held, least recently used first (a copy, for tests and diagnostics)."""
        with self._lock:
            return list(self._data.values())

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, session_hash) -> bool:
        return session_hash in self._data
