"""The explorer's exact mixture of scan orders: sampling from it, and "which order?" for a digit.

The shipped mixture (``checkpoints/mixture/*.safetensors``, ``rnnviz.mixture``) is one density
made of several models, most of them writing the digit in another scan order. The explorer uses it
two ways, both in the Generate tab:

- **Sample from the mixture**: the seed draws the part (``Mixture.choose_part``, a generator of its
  own), and that part writes the digit with the same seed, exactly as ``Mixture.sample`` does. The
  part is also a model of the model list when the mixture was built from the shipped files (the
  same name), so the page's model becomes it and every tab goes on with it.
- **Which order?**: for the digit on screen, each part's NLL and its NLL per line of its own order,
  and the posterior over the parts (``Mixture.which_order``).

Nothing here is model math: the mixture's own methods do it. The file is read lazily and again when it
changes, within the explorer's limits; a missing or malformed one makes the buttons say why, and nothing
else breaks.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..checkpoint import APP_LIMITS, CheckpointError
from ..mixture import Mixture, load_mixture
from ..rules import ORDER_NAMES
from .inputs import InputError

FOLDER = "mixture"  # beside the shipped checkpoints: the model list (single models) does not read it


class MixtureDraw(NamedTuple):
    """A digit drawn from the mixture: the summary, the part that wrote it (index, name, config), its traces."""

    summary: str
    part: int
    part_name: str
    config: object
    traces: list


class Mixtures:
    """The first mixture file in ``folder`` (sorted by name), loaded on first use and kept while the
    file stays the same (a file added, replaced or removed is seen on the next use)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._key: tuple | None = None  # (path, mtime, size) of what was read, or ("none",)
        self._got: tuple[str, Mixture] | str = ""  # (name, mixture), or why there is none

    def path(self) -> Path | None:
        files = sorted(self.folder.glob("*.safetensors")) if self.folder.is_dir() else []
        return files[0] if files else None

    @property
    def available(self) -> bool:
        return self.path() is not None

    def get(self) -> tuple[str, Mixture]:
        """(name, mixture); InputError says why there is none."""
        path = self.path()
        try:
            st = path.stat() if path else None
        except OSError:
            path = st = None
        key = (str(path), st.st_mtime_ns, st.st_size) if st else ("none",)
        with self._lock:
            if key != self._key:
                self._got = self._read(path) if st else (
                    f"no mixture of scan orders in {self.folder}/: build one with python -m rnnviz.mixture "
                    f"--part A.safetensors --part B.safetensors --out {self.folder}/mnist_mixture.safetensors")
                self._key = key
            if isinstance(self._got, str):
                raise InputError(self._got)
            return self._got

    @staticmethod
    def _read(path: Path) -> tuple[str, Mixture] | str:
        try:
            return path.stem, load_mixture(path, APP_LIMITS)
        except CheckpointError as e:
            return f"the mixture file could not be read: {e}"

    def draw(self, y, temperature: float, seed: int) -> MixtureDraw:
        """One digit of class ``y`` (None: any) from the mixture: ``Mixture.sample_traces``, the part
        drawn from the seed."""
        name, mix = self.get()
        k, traces = mix.sample_traces(1, y=y, temperature=temperature, seed=seed)
        summary = (f"**{name}** drew part {k + 1} of {len(mix)} from the seed: **{mix.names[k]}**, which writes "
                   f"{ORDER_NAMES[mix.orders[k]]}.")
        return MixtureDraw(summary, k, mix.names[k], mix.parts[k].config, traces)

    def which_order(self, image: np.ndarray, drew: int | None = None) -> dict:
        """The "which order?" numbers of one binary image, as the page's OrderChart reads them."""
        name, mix = self.get()
        H, W = mix.shape
        if image.shape != (H, W):
            raise InputError(f"the mixture reads {H}\u00d7{W} images; this digit is {image.shape[0]}\u00d7{image.shape[1]}")
        got = mix.which_order(image.astype(np.float32))
        return {"mixture": name, "nll": got["nll"], "height": H, "width": W, "drew": drew,
                "parts": [{"name": p["name"], "order": p["order"], "nll": p["nll"], "posterior": p["posterior"],
                           "lineNll": [float(v) for v in p["line_nll"]]} for p in got["parts"]]}
