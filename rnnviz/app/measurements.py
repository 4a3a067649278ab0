"""Server side of the analysis tabs: which test digits a model is read on, a bounded cache of
saturation results and of the unit studies (``UnitStudies``: unit order, inspector, pattern search,
memory reach, timescales), and the calls into ``rnnviz.analysis`` / ``rnnviz.units``.

Nothing here draws or builds components (that is ``tabs/saturation.py`` and ``tabs/forcing.py``). Every call is bounded in cost: the
saturation of a model is measured on at most ``MAX_TEST_IMAGES`` test images, once per checkpoint
file (its path and mtime), layer and image batch; the forcing comparison reads and draws one digit.

Test digits: the test split of the dataset the checkpoint was trained on (its ``dataset`` metric) or
else the Train tab's default dataset, when the training service finds it on disk (``--data-root``,
``RNNVIZ_DATA``; never downloaded here): its first ``MAX_TEST_IMAGES`` images, binarized with seed
``TEST_SEED``. Otherwise the explorer's own 40-image gallery (``rnnviz/assets/gallery.npz``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import units
from ..analysis import GATES, ForcingComparison, forcing_comparison, gate_saturation
from ..data import binarize_fixed
from . import inputs
from .registry import Entry

if TYPE_CHECKING:
    from .operations import Explorer

MAX_TEST_IMAGES = 500
TEST_SEED = 0
CACHE_SIZE = 16  # saturation results kept (each a few KB)


@dataclass(frozen=True)
class TestBatch:
    images: np.ndarray  # (N, H, W) uint8 in {0, 1}
    labels: np.ndarray  # (N,) int64
    source: str  # where they come from, for a caption (Markdown)
    key: str  # identifies the batch in cache keys
    full: bool  # True: the dataset's test split; False: the explorer's gallery


@dataclass(frozen=True)
class SaturationResult:
    entry: Entry
    sat: dict  # rnnviz.analysis.gate_saturation's result (never mutated)
    layers: int  # the model's number of recurrent layers
    source: str  # where the test digits come from (Markdown)
    full: bool  # read on the dataset's test split (else on the gallery)
    read_with: str  # what the images were conditioned on (Markdown)
    seconds: float  # how long the measurement took (0 when it came from the cache)


class Analyses:
    """Gate saturation (cached) and teacher forcing vs free running for the explorer's models.
    One per Explorer (``ex.analyses``), shared by the Gate saturation and Teacher forcing tabs and
    by ``UnitStudies`` (the test digits are read once)."""

    def __init__(self, ex: Explorer, max_images: int = MAX_TEST_IMAGES, cache_size: int = CACHE_SIZE):
        self.ex = ex
        self.max_images = max_images
        self.cache_size = cache_size
        self._lock = threading.Lock()  # guards the dicts below
        self._compute = threading.Lock()  # one measurement at a time (a second caller then finds it cached)
        self._batches: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}  # (dataset, H, W) -> test split
        self._cache: OrderedDict[tuple, SaturationResult] = OrderedDict()

    # ---- test digits ------------------------------------------------------------------------------
    def dataset_name(self, entry: Entry) -> str:
        """The dataset to read ``entry``'s model on: the one it was trained on when this server knows
        it, else the Train tab's default."""
        tr = self.ex.training
        name = entry.metrics.get("dataset")
        return name if isinstance(name, str) and name in tr.dataset_choices() else tr.default_dataset

    def test_batch(self, entry: Entry, limit: int | None = None) -> TestBatch:
        """Binary test digits for ``entry``'s model (see the module docstring): the first ``limit``
        (at most ``max_images``, the default) of its test set, else every gallery digit."""
        limit = self.max_images if limit is None else max(1, min(int(limit), self.max_images))
        name = self.dataset_name(entry)
        split = self._test_split(entry, name)
        if split is not None:
            n = min(limit, len(split[0]))
            return TestBatch(split[0][:n], split[1][:n], f"the first {n} images of the **{Path(name).name}** test "
                             f"set (binarized with seed {TEST_SEED})", f"{name}:{n}:{TEST_SEED}", True)
        # the gallery (not kept: the test set may appear later, e.g. once a training run downloads it)
        n = len(self.ex.gallery_images)
        pairs = [self.ex.gallery_binary(i, TEST_SEED) for i in range(n)]
        return TestBatch(np.stack([p[0] for p in pairs]), np.array([p[1] for p in pairs], np.int64),
                         f"the explorer's **{n} gallery digits** (the {Path(name).name} test set is not on this "
                         f"server: start the explorer with `--data-root` or `RNNVIZ_DATA` to use {limit} of its "
                         "test images)", f"gallery:{n}:{TEST_SEED}", False)

    def _test_split(self, entry: Entry, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """(images, labels): the first ``max_images`` of dataset ``name``'s test split, binarized (read
        once), or None if this server does not have it for ``entry``'s image size."""
        c = entry.config
        key = (name, c.height, c.width)
        with self._lock:
            got = self._batches.get(key)
        if got is not None:
            return got
        ds = self.ex.training.dataset(name)  # loaded once by the training service; never downloads
        if ds is None or tuple(ds.test.images.shape[1:]) != (c.height, c.width) or not len(ds.test):
            return None
        n = min(self.max_images, len(ds.test))
        split = (binarize_fixed(ds.test.images[:n], TEST_SEED).numpy().astype(np.uint8),
                 ds.test.labels[:n].numpy().astype(np.int64))
        with self._lock:
            self._batches[key] = split
        return split

    # ---- gate saturation --------------------------------------------------------------------------
    def saturation(self, key: str | None, layer=None) -> SaturationResult:
        """Gate saturation of ``key``'s model at ``layer`` (index from 0 = bottom; None: the top)."""
        entry, model = self.ex.model(key)
        c = model.config
        k = c.layers - 1 if layer is None else int(inputs.number("layer", layer, 0, c.layers - 1, integer=True).value)
        try:
            mtime = entry.path.stat().st_mtime_ns
        except OSError:
            raise inputs.InputError(f"checkpoint {entry.key!r} is no longer available") from None
        batch = self.test_batch(entry)
        cache_key = (str(entry.path), mtime, k, batch.key)
        with self._compute:
            with self._lock:
                hit = self._cache.get(cache_key)
                if hit is not None:
                    self._cache.move_to_end(cache_key)
                    return SaturationResult(entry, hit.sat, hit.layers, hit.source, hit.full, hit.read_with, 0.0)
            t0 = time.perf_counter()
            y = None
            if c.num_classes and GATES[c.cell] and int(batch.labels.max()) < c.num_classes:
                y = batch.labels
            try:
                sat = gate_saturation(model, batch.images, y=y, layer=k)
            except ValueError as e:
                raise inputs.InputError(str(e)) from None
            result = SaturationResult(entry, sat, c.layers, batch.source, batch.full, _read_with(sat, c),
                                      time.perf_counter() - t0)
            with self._lock:
                self._cache[cache_key] = result
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return result

    # ---- teacher forcing vs free running ----------------------------------------------------------
    def forcing(self, key: str | None, index, seed, temperature, keep_rows
                ) -> tuple[Entry, ForcingComparison, int, list[str]]:
        """Gallery digit ``index`` read teacher forced and drawn free running by ``key``'s model.
        A class-conditional model gets the digit's true label; a VAE the mean of q(z | x) of it.
        Returns (entry, comparison, the digit's true label, notes about clamped values)."""
        entry, model = self.ex.model(key)
        c = model.config
        image, label = self.ex.gallery_binary(index)
        t, s, notes = inputs.sampling(temperature, seed)
        k = inputs.checked("keep_rows", keep_rows, label="rows kept", default=0)
        y = label if c.num_classes and label < c.num_classes else None
        try:
            cmp = forcing_comparison(model, image, y=y, seed=s, temperature=t, keep_rows=int(k.value))
        except ValueError as e:
            raise inputs.InputError(str(e)) from None
        return entry, cmp, label, notes + ([k.note] if k.note else [])


def _read_with(sat: dict, config) -> str:
    """How the test images were conditioned, for a caption."""
    parts = []
    if sat.get("labels") == "given":
        parts.append("their true labels")
    elif sat.get("labels"):
        parts.append("the class the model finds most likely for each (argmax p(x | y))")
    if config.latent:
        parts.append("z = the mean of q(z | x) from the encoder")
    return " and ".join(parts) or "nothing (an unconditional model)"


# ---- what the units do (Units tab, the step views' unit order, Compare's memory reach) --------------
UNIT_IMAGES = 200  # test digits the unit studies read (each computation <= 3 s for 200 on the CPU)
UNITS_CACHE = 48  # results kept (orders and timescales: a few KB; profiles ~1 MB; reach 6 KB)


@dataclass(frozen=True)
class Digits:
    """The test digits a unit study read, and how to say so in a caption."""
    images: np.ndarray  # (N, H, W) uint8 in {0, 1}
    labels: np.ndarray  # (N,) int64 true labels
    y: np.ndarray | None  # the labels the model is read with (None: its own argmax class / unconditional)
    source: str  # Markdown: where they come from and how many
    key: str
    full: bool


class UnitStudies:
    """``rnnviz.units`` on a model's test digits, cached per checkpoint file (path and mtime),
    layer and batch: unit orders, unit profiles, pattern searches, memory reach, timescales.
    One per Explorer (``ex.unit_studies``), shared by the step views, the Units tab and Compare; it
    reads its digits through the Explorer's ``Analyses`` (``analyses``; default: its own)."""

    def __init__(self, ex: Explorer, images: int = UNIT_IMAGES, cache_size: int = UNITS_CACHE,
                 analyses: Analyses | None = None):
        self.ex = ex
        self.analyses = analyses if analyses is not None else Analyses(ex, max_images=max(images, 1))
        self.images = images
        self.cache_size = cache_size
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple, object] = OrderedDict()

    def digits(self, entry: Entry, model) -> Digits:
        """The first ``images`` test digits of ``entry``'s dataset (else the 40 shipped digits),
        read with their true labels by a class-conditional model."""
        b = self.analyses.test_batch(entry, self.images)  # at most ``images`` of them
        n = min(self.images, len(b.images))
        c = model.config
        y = b.labels[:n] if c.num_classes and int(b.labels[:n].max()) < c.num_classes else None
        return Digits(b.images[:n], b.labels[:n], y, b.source, f"{b.key}:{n}", b.full)

    def _cached(self, key: str | None, what: tuple, compute):
        """(entry, model, digits, result, cached): ``compute(model, digits)`` once per checkpoint file
        and ``what`` (``cached``: it was computed earlier)."""
        entry, model = self.ex.model(key)
        try:
            mtime = entry.path.stat().st_mtime_ns
        except OSError:
            raise inputs.InputError(f"checkpoint {entry.key!r} is no longer available") from None
        d = self.digits(entry, model)
        ck = (str(entry.path), mtime, d.key) + what
        with self._lock:
            if ck in self._cache:
                self._cache.move_to_end(ck)
                return entry, model, d, self._cache[ck], True
        try:
            result = compute(model, d)
        except ValueError as e:
            raise inputs.InputError(str(e)) from None
        with self._lock:
            self._cache[ck] = result
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return entry, model, d, result, False

    def layer(self, model, layer) -> int:
        """``layer`` checked (index from 0 = bottom; None: the top)."""
        n = model.config.layers
        return n - 1 if layer is None else int(inputs.number("layer", layer, 0, n - 1, integer=True).value)

    def unit(self, model, unit) -> int:
        U = model.config.hidden
        got = inputs.number("unit", unit, 0, U - 1, integer=True)
        if got.note:
            raise inputs.InputError(f"unit must be a whole number from 0 to {U - 1}, got {unit!r}")
        return int(got.value)

    def order(self, key: str | None, layer=None):
        """(entry, digits, permutation) of ``layer``'s units (``units.unit_order``)."""
        _, model = self.ex.model(key)
        k = self.layer(model, layer)
        entry, _, d, order, _ = self._cached(key, ("order", k),
                                          lambda m, d: units.unit_order(m, d.images, d.y, layer=k))
        return entry, d, order

    def profile(self, key: str | None, unit, layer=None):
        """(entry, digits, ``units.UnitProfile``) of one unit."""
        _, model = self.ex.model(key)
        k, u = self.layer(model, layer), self.unit(model, unit)
        entry, _, d, prof, _ = self._cached(key, ("profile", k, u),
                                         lambda m, d: units.unit_profile(m, d.images, u, d.y, layer=k))
        return entry, d, prof

    def pattern(self, key: str | None, trace, steps: tuple[int, int], threshold: float, layer=None):
        """(entry, digits, ``units.PatternMatch``) of a trace drawn by ``key``'s model (not cached:
        the trace is the visitor's)."""
        entry, model = self.ex.model(key)
        k = self.layer(model, layer)
        if trace.cell != model.config.cell or trace.layers[0]["h"].shape[1] != model.config.hidden:
            raise inputs.InputError(f"The current trace was not drawn by {entry.name}: press Generate first.")
        d = self.digits(entry, model)
        try:
            match = units.pattern_search(trace, steps, threshold, model, d.images, d.y, layer=k)
        except ValueError as e:
            raise inputs.InputError(str(e)) from None
        return entry, d, match

    def reach(self, key: str | None):
        """(entry, digits, M, seconds): ``units.memory_reach`` over the test digits, (H, H); seconds
        is 0 when it came from the cache."""
        def compute(m, d):
            t0 = time.perf_counter()
            return units.memory_reach(m, d.images, d.y), time.perf_counter() - t0
        entry, _, d, (M, s), hit = self._cached(key, ("reach",), compute)
        return entry, d, M, 0.0 if hit else s

    def digit_reach(self, key: str | None, index) -> tuple[Entry, np.ndarray, int]:
        """(entry, M, true label) of one shipped test digit (gallery ``index``), with its label."""
        entry, model = self.ex.model(key)
        image, label = self.ex.gallery_binary(index)
        y = [label] if model.config.num_classes and label < model.config.num_classes else None
        try:
            return entry, units.memory_reach(model, image[None], y), label
        except ValueError as e:
            raise inputs.InputError(str(e)) from None

    def timescales(self, key: str | None, layer=None):
        """(entry, digits, tau per unit) of ``layer`` (``units.timescales``)."""
        _, model = self.ex.model(key)
        k = self.layer(model, layer)
        entry, _, d, tau, _ = self._cached(key, ("tau", k), lambda m, d: units.timescales(m, d.images, d.y, layer=k))
        return entry, d, tau
