"""Interventions: change what the recurrent cell computes at chosen steps and see what it draws.

What does the LSTM use its forget gate for? Shut it and look: sample an image, sample it again with
the same random numbers but f = 0 from row 10 on, and compare. ``RowModel.sample`` draws all its
random numbers from the seed before it starts, so the two runs are identical up to the first
intervened step and every difference after it is caused by the intervention.

Two kinds of change:

- ``Intervention``: overwrite a gate or state (see ``cells.STATE_NAMES``) of some or all units of
  one layer at steps start, ..., stop - 1 with a fixed value. The value is written where the cell
  computes it (``cells.step``'s clamp), so everything downstream uses it: with f = 0 the cell state
  becomes i * g, and a fixed h is what the head, the layer above and the next step read.
- ``RowEdit``: image row t is a given row instead of a drawn one; the later rows read it. (For a
  model of another scan order, step t and "row t" are line t of its order, its pixels in the order
  they are written: ``Trace.lines`` maps an image to them.)

``intervene`` runs the sample without and with the changes and returns a ``Comparison``.
``PRESETS`` names the common interventions in plain words for the explorer.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from . import cells
from .model import CELLS, ModelConfig, RowModel
from .trace import Trace, sample_traces

# The values a gate or state can take: sigmoid gates lie in [0, 1], tanh ones (and h) in [-1, 1];
# the LSTM's cell state c is unbounded.
VALUE_RANGES: dict[str, tuple[float, float]] = {
    "i": (0.0, 1.0), "f": (0.0, 1.0), "o": (0.0, 1.0), "r": (0.0, 1.0), "z": (0.0, 1.0),
    "g": (-1.0, 1.0), "n": (-1.0, 1.0), "h": (-1.0, 1.0), "c": (-math.inf, math.inf),
}


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _step_range(start: int, stop: int | None) -> str:
    if stop is None:
        return f"from step {start} on"
    return f"at step {start}" if stop == start + 1 else f"at steps {start}-{stop - 1}"


@dataclass(frozen=True)
class Intervention:
    """Overwrite gate or state ``name`` of ``units`` (None: all units) of ``layer`` with ``value``
    at steps ``start``, ..., ``stop`` - 1 (``stop`` None: through the last row).

    Checked on creation for what does not depend on the model; ``check(config)`` checks the rest.
    """

    name: str
    value: float
    start: int = 0
    stop: int | None = None
    units: tuple[int, ...] | None = None
    layer: int = -1

    def __post_init__(self):
        problems = []
        if self.name not in VALUE_RANGES:
            problems.append(f"unknown gate or state {self.name!r}: choose from {', '.join(VALUE_RANGES)}")
        is_number = isinstance(self.value, numbers.Real) and not isinstance(self.value, bool)
        if not (is_number and math.isfinite(self.value)):
            problems.append(f"value must be a finite number, got {self.value!r}")
        elif self.name in VALUE_RANGES:
            lo, hi = VALUE_RANGES[self.name]
            if not lo <= self.value <= hi:
                problems.append(f"{self.name} lies in [{lo:g}, {hi:g}], got value {self.value!r}")
        if not (_is_int(self.start) and self.start >= 0):
            problems.append(f"start must be an integer >= 0, got {self.start!r}")
        elif self.stop is not None and not (_is_int(self.stop) and self.stop > self.start):
            problems.append(f"stop must be None or an integer > start ({self.start}), got {self.stop!r}")
        units = self.units
        if units is not None:
            units = tuple(units)
            if not units:
                problems.append("units is empty: give unit indices, or None for all units")
            elif not all(_is_int(u) and u >= 0 for u in units):
                problems.append(f"units must be integers >= 0, got {self.units!r}")
            else:
                units = tuple(sorted({int(u) for u in units}))
        if not _is_int(self.layer):
            problems.append(f"layer must be an integer, got {self.layer!r}")
        if problems:
            raise ValueError("invalid intervention: " + "; ".join(problems))
        object.__setattr__(self, "value", float(self.value))
        object.__setattr__(self, "units", units)

    def check(self, config: ModelConfig) -> None:
        """Raise ValueError if this does not fit a model with ``config``."""
        problems = []
        names = cells.STATE_NAMES[config.cell]
        if self.name not in names:
            problems.append(f"a {config.cell} cell has no {self.name!r} (it computes {', '.join(names)})")
        if self.start >= config.height or (self.stop is not None and self.stop > config.height):
            problems.append(f"steps must lie in [0, {config.height - 1}], "
                            f"got start={self.start}, stop={self.stop}")
        if self.units is not None and self.units[-1] >= config.hidden:
            problems.append(f"units must lie in [0, {config.hidden - 1}], got {self.units[-1]}")
        if not -config.layers <= self.layer < config.layers:
            problems.append(f"layer must lie in [{-config.layers}, {config.layers - 1}], got {self.layer}")
        if problems:
            raise ValueError(f"intervention {self.describe()!r} does not fit this model: " + "; ".join(problems))

    def steps(self, height: int) -> range:
        """The steps it applies to in an image of ``height`` rows."""
        return range(self.start, height if self.stop is None else self.stop)

    def describe(self) -> str:
        """E.g. 'f = 0 from step 10 on (all units, layer -1)'."""
        units = "all units" if self.units is None else "units " + ", ".join(map(str, self.units))
        return f"{self.name} = {self.value:g} {_step_range(self.start, self.stop)} ({units}, layer {self.layer})"


@dataclass(frozen=True)
class RowEdit:
    """Image row ``step`` is ``row`` (W values in {0, 1}) instead of a drawn one; later rows read it."""

    step: int
    row: tuple[int, ...]

    def __post_init__(self):
        problems = []
        if not (_is_int(self.step) and self.step >= 0):
            problems.append(f"step must be an integer >= 0, got {self.step!r}")
        row = np.asarray(self.row)
        if row.ndim != 1 or row.size == 0:
            problems.append(f"row must be a flat sequence of pixels, got shape {row.shape}")
        elif not np.isin(row, (0, 1)).all():
            problems.append("row pixels must be 0 or 1")
        if problems:
            raise ValueError("invalid row edit: " + "; ".join(problems))
        object.__setattr__(self, "row", tuple(int(v) for v in row))

    def check(self, config: ModelConfig) -> None:
        """Raise ValueError if this does not fit a model with ``config``."""
        problems = []
        if self.step >= config.height:
            problems.append(f"step must lie in [0, {config.height - 1}], got {self.step}")
        if len(self.row) != config.width:
            problems.append(f"row must have {config.width} pixels, got {len(self.row)}")
        if problems:
            raise ValueError(f"{self.describe()!r} does not fit this model: " + "; ".join(problems))

    def describe(self) -> str:
        return f"row {self.step} edited ({sum(self.row)} pixels on)"


Change = Intervention | RowEdit


def _as_changes(changes: Change | Iterable[Change]) -> tuple[Change, ...]:
    changes = (changes,) if isinstance(changes, (Intervention, RowEdit)) else tuple(changes)
    for ch in changes:
        if not isinstance(ch, (Intervention, RowEdit)):
            raise TypeError(f"expected Intervention or RowEdit, got {type(ch).__name__}")
    return changes


def schedule(model: RowModel, changes: Change | Iterable[Change]
             ) -> tuple[dict[int, dict[int, cells.Clamp]], dict[int, Tensor]]:
    """The ``clamps`` (step -> layer -> name -> (unit mask, values)) and ``edit_rows``
    (step -> row) that ``RowModel.sample`` and ``trace_images`` take, checked against ``model``.

    Interventions on the same gate, layer and step combine; two that give one unit different
    values, or two edits of one row, are an error rather than a silent choice of one.
    """
    c = model.config
    device = model.positions.device
    changes = _as_changes(changes)
    for ch in changes:
        ch.check(c)
    merged: dict[tuple[int, int, str], tuple[Tensor, Tensor]] = {}
    for iv in (ch for ch in changes if isinstance(ch, Intervention)):
        layer = iv.layer % c.layers
        units = torch.ones(c.hidden, dtype=torch.bool)
        if iv.units is not None:
            units = torch.zeros(c.hidden, dtype=torch.bool)
            units[list(iv.units)] = True
        for t in iv.steps(c.height):
            mask, values = merged.setdefault((t, layer, iv.name), (torch.zeros(c.hidden, dtype=torch.bool),
                                                                  torch.zeros(c.hidden)))
            clash = mask & units & (values != iv.value)
            if clash.any():
                raise ValueError(f"two interventions set {iv.name} of unit {int(clash.nonzero()[0])} of layer "
                                 f"{layer} at step {t} to different values")
            mask |= units
            values[units] = iv.value
    clamps: dict[int, dict[int, cells.Clamp]] = {}
    for (t, layer, name), (mask, values) in merged.items():
        clamps.setdefault(t, {}).setdefault(layer, {})[name] = (mask.to(device), values.to(device))
    edit_rows: dict[int, Tensor] = {}
    for edit in (ch for ch in changes if isinstance(ch, RowEdit)):
        row = torch.tensor(edit.row, dtype=torch.float32, device=device)
        if edit.step in edit_rows and not torch.equal(edit_rows[edit.step], row):
            raise ValueError(f"row {edit.step} is edited twice, differently")
        edit_rows[edit.step] = row
    return clamps, edit_rows


@dataclass
class Comparison:
    """One sample without (``original``) and with (``intervened``) ``changes``, same random numbers."""

    original: Trace
    intervened: Trace
    changes: tuple[Change, ...]

    @property
    def first_step(self) -> int | None:
        """The first step any change applies to (None: no changes); both runs agree before it."""
        steps = [ch.start if isinstance(ch, Intervention) else ch.step for ch in self.changes]
        return min(steps, default=None)

    @property
    def image_diff(self) -> np.ndarray:
        """(H, W) int8: +1 where only the intervened image has a pixel on, -1 where only the original."""
        return self.intervened.image.astype(np.int8) - self.original.image.astype(np.int8)

    @property
    def first_changed_row(self) -> int | None:
        """The first step where the images differ, i.e. the first line of the model's scan order
        (a row, for "rows") with a changed pixel (None: identical images)."""
        rows = np.flatnonzero(self.original.lines(self.image_diff).any(axis=1))
        return int(rows[0]) if rows.size else None

    def state_diff(self, name: str, layer: int = -1) -> np.ndarray:
        """(H, hidden) intervened minus original, for one gate or state."""
        return self.intervened.state(name, layer) - self.original.state(name, layer)

    def step_change(self, name: str, layer: int = -1) -> np.ndarray:
        """(H,) mean absolute difference over the units, per step: where the runs drift apart."""
        return np.abs(self.state_diff(name, layer)).mean(axis=1)

    @property
    def row_nll_diff(self) -> np.ndarray:
        """(H,) intervened minus original NLL per row, each under the run that drew it."""
        return self.intervened.row_nll - self.original.row_nll


def intervene(model: RowModel, changes: Change | Iterable[Change], y=None, temperature: float = 1.0,
              seed: int = 0, z=None, prefix=None, keep_rows: int = 0) -> Comparison:
    """Sample one image as ``sample_traces`` would, then again with ``changes``, with the same seed.

    Both runs use the same label (drawn from the seed when ``y`` is None), the same z and the same
    uniforms for every pixel, so they agree up to ``Comparison.first_step``. The intervened trace
    holds the gates and states as overwritten: the ones that drew its image. Its ``row_nll`` is
    under the intervened model; ``meta["interventions"]`` describes the changes.
    """
    changes = _as_changes(changes)
    clamps, edit_rows = schedule(model, changes)
    common = dict(y=y, temperature=temperature, seed=seed, z=z, prefix=prefix, keep_rows=keep_rows)
    (original,) = sample_traces(model, 1, **common)
    (intervened,) = sample_traces(model, 1, kind="intervention", clamps=clamps, edit_rows=edit_rows, **common)
    intervened.meta["interventions"] = [ch.describe() for ch in changes]
    return Comparison(original, intervened, changes)


@dataclass(frozen=True)
class Preset:
    """A named intervention for the explorer: one or more (gate, value) clamps, for some cells."""

    clamps: tuple[tuple[str, float | None], ...]  # value None: the user chooses it
    cells: tuple[str, ...]  # the cells that compute these gates
    help: str

    def make(self, start: int = 0, stop: int | None = None, units: tuple[int, ...] | None = None,
             layer: int = -1, value: float | None = None) -> tuple[Intervention, ...]:
        """The interventions, over steps start..stop-1 (see ``Intervention``)."""
        needs_value = any(v is None for _, v in self.clamps)
        if needs_value and value is None:
            raise ValueError("this preset needs a value")
        if not needs_value and value is not None:
            raise ValueError("this preset's values are fixed; do not give a value")
        return tuple(Intervention(name, value if v is None else v, start, stop, units, layer)
                     for name, v in self.clamps)


PRESETS: dict[str, Preset] = {
    "forget everything (f = 0)": Preset(
        (("f", 0.0),), ("lstm",), "the cell state drops its past: c = i * g, only what is written now"),
    "never forget (f = 1)": Preset(
        (("f", 1.0),), ("lstm",), "the cell state keeps all it had and keeps adding: c = c + i * g"),
    "ignore input (i = 0)": Preset(
        (("i", 0.0),), ("lstm",), "nothing new enters the cell state: c = f * c"),
    "freeze memory (f = 1, i = 0)": Preset(
        (("f", 1.0), ("i", 0.0)), ("lstm",), "the cell state stays exactly as it was: c = c"),
    "hide memory (o = 0)": Preset(
        (("o", 0.0),), ("lstm",), "h = 0 while the cell state carries on underneath"),
    "keep old state (z = 1)": Preset(
        (("z", 1.0),), ("gru",), "the GRU keeps its hidden state unchanged: h = h"),
    "overwrite state (z = 0)": Preset(
        (("z", 0.0),), ("gru",), "the GRU replaces its hidden state by the candidate: h = n"),
    "ignore old state (r = 0)": Preset(
        (("r", 0.0),), ("gru",), "the candidate n is computed from the input alone"),
    "zero hidden units (h = 0)": Preset(
        (("h", 0.0),), tuple(CELLS), "the chosen units are silenced: they pass on 0"),
    "fix hidden units (h = value)": Preset(
        (("h", None),), tuple(CELLS), "the chosen units pass on a value you choose, in [-1, 1]"),
}


def presets_for(cell: str) -> dict[str, Preset]:
    """The presets that apply to a cell (one of ``model.CELLS``)."""
    return {label: p for label, p in PRESETS.items() if cell in p.cells}
