"""The explorer's operations (``Explorer``), shared by all visitors and safe to use from handler
threads; it keeps each visitor's state in ``sessions.Sessions`` (the trace of each step view, the
last completions, what the page was last sent).

- ``Explorer``: the operations the page calls (generate, complete, compare, intervene, reconstruct),
  on the checkpoints of ``registry.Registry`` and beside the run of ``training.TrainingService``.
  It checks input and calls rnnviz; the model math is in rnnviz (``sample_traces``, ``intervene``,
  ``analysis.class_posterior``). It owns the app's services: ``ex.analyses`` (``measurements.Analyses``)
  and ``ex.unit_studies`` (``measurements.UnitStudies``), one of each per Explorer, whose caches every
  tab and visitor share.

Generation always uses models loaded from saved checkpoints, never the trainer's live module.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import RowModel, Trace, sample_traces
from ..analysis import class_posterior
from ..data import binarize_fixed
from ..interventions import VALUE_RANGES, Comparison, RowEdit, intervene, presets_for
from ..trace import reconstruct_traces
from . import inputs
from .measurements import Analyses, UnitStudies
from .mixtures import FOLDER as MIXTURE_FOLDER, MixtureDraw, Mixtures
from .registry import Entry, Registry
from .sessions import Sessions
from .training import TrainingService
from .uploads import MAX_UPLOAD_BYTES, UploadStore

COMPARE_DEFAULTS = ("mnist_lstm", "mnist_gru", "mnist_rnn")  # Compare cells opens on these
MAX_COMPARE = 3
DEFAULT_VAE = "mnist_vae"
# row edits offered beside the gate/state presets: label -> the value of every pixel of the row
ROW_EDITS = {"erase row(s): every pixel off": 0, "ink row(s): every pixel on": 1}
VAE_HOWTO = ("No VAE checkpoint here (a model trained with --latent > 0). Train one, e.g.\n\n"
             "    python -m rnnviz.train --latent 32 --free-bits 1.0 --out checkpoints/mnist_vae.safetensors "
             "--minutes 60\n\nand open this tab again: the checkpoint folders are read anew (or upload the file with "
             "*Load your own checkpoint* at the top).")
GALLERY = Path(__file__).resolve().parent.parent / "assets" / "gallery.npz"


# ---- the operations the page calls -------------------------------------------------------------
@dataclass
class Completion:
    traces: list[Trace]
    prefix: np.ndarray  # (H, W) binary image the kept rows come from
    label_note: str  # how the digit was chosen


class Explorer:
    """The app's server side: checkpoints, sessions, the gallery and the training run.
    Uploaded checkpoints are kept in ``uploads_dir`` (default: ``uploads`` beside the runs folder)."""

    def __init__(self, checkpoint_dir: str | os.PathLike = "checkpoints", runs_dir: str | os.PathLike = "runs/explorer",
                 training: TrainingService | None = None, max_sessions: int = 64,
                 uploads_dir: str | os.PathLike | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
                 public_uploads: bool = False):
        uploads_dir = Path(uploads_dir) if uploads_dir is not None else Path(runs_dir).parent / "uploads"
        self.uploads = UploadStore(uploads_dir, max_bytes=max_upload_bytes)
        self.registry = Registry({"shipped": Path(checkpoint_dir), "run": Path(runs_dir), "upload": uploads_dir},
                                 public_uploads=public_uploads)
        self.sessions = Sessions(max_sessions)
        self.sessions.on_drop.append(self._session_ended)
        self.training = training or TrainingService(Path(runs_dir))
        # runs may not take a shipped checkpoint's name (a run called mnist_lstm is renamed)
        self.training.reserved_names = self._shipped_names
        with np.load(GALLERY, allow_pickle=False) as z:
            self.gallery_images = z["images"].astype(np.uint8)
            self.gallery_labels = z["labels"].astype(np.int64)
        self.analyses = Analyses(self)  # gate saturation, teacher forcing and the test digits, cached
        self.unit_studies = UnitStudies(self, analyses=self.analyses)  # what the units do, cached
        self.mixtures = Mixtures(Path(checkpoint_dir) / MIXTURE_FOLDER)  # the mixture of scan orders, lazily

    # checkpoints
    def model(self, key: str | None) -> tuple[Entry, RowModel]:
        if key is None:
            key = self.registry.default_key()
            if key is None:
                raise inputs.InputError(self.no_checkpoint_message())
        return self.registry.model(key)

    def add_upload(self, path: str | os.PathLike, name: str | None, session: str | None = None) -> Entry:
        """Check a visitor's checkpoint and add it to ``session``'s model list (everyone's with
        ``public_uploads``); InputError says what is wrong."""
        accepted = self.uploads.accept(path, name)  # the file is read once, here
        entry = self.registry.adopt("upload", accepted.path, accepted.model, accepted.meta)
        self.registry.claim(entry.name, session)
        return entry

    def _session_ended(self, session: str | None):
        """A visitor left: their uploads leave the model list, and the files nobody else holds go
        (unless uploads are public)."""
        for stem in self.registry.release(session):
            if not self.registry.public_uploads:
                self.uploads.remove(stem)

    def _shipped_names(self) -> set[str]:
        folder = self.registry.folders.get("shipped")
        return {p.stem.lower() for p in folder.glob("*.safetensors")} if folder and folder.is_dir() else set()

    def no_checkpoint_message(self) -> str:
        folders = " or ".join(f"{p.name}/" for p in self.registry.folders.values())
        return (f"No checkpoint found in {folders}. Train one in the Train tab, or from a shell: "
                "python -m rnnviz.train --minutes 10 --out checkpoints/mnist_lstm.safetensors")

    # generation
    def generate(self, key: str | None, digit, temperature, seed, n: int = 1) -> tuple[Entry, list[Trace], list[str]]:
        entry, model = self.model(key)
        y = inputs.digit(digit, model.config.num_classes)
        t, s, notes = inputs.sampling(temperature, seed)
        return entry, sample_traces(model, n=n, y=y, temperature=t, seed=s), notes

    # the mixture of scan orders (mixtures.Mixtures)
    def sample_mixture(self, digit, temperature, seed) -> tuple[MixtureDraw, str | None, list[str]]:
        """One digit from the mixture: (the draw, the model list's key of the part that wrote it when
        that part is listed with the same config, else None, notes). InputError says why not."""
        y = inputs.digit(digit, self.mixtures.get()[1].num_classes)
        t, s, notes = inputs.sampling(temperature, seed)
        draw = self.mixtures.draw(y, t, s)
        key = next((e.key for e in self.registry.entries() if e.name == draw.part_name and e.config == draw.config),
                   None)
        return draw, key, notes

    def which_order(self, image: np.ndarray, drew: int | None = None) -> dict:
        """Each part of the mixture on one binary image (H, W): its NLL per line of its own order."""
        return self.mixtures.which_order(np.asarray(image), drew)

    # completion
    def gallery_binary(self, index, seed: int = 0) -> tuple[np.ndarray, int]:
        i = inputs.number("gallery image", index, 0, len(self.gallery_images) - 1, integer=True).value
        img = torch.from_numpy(self.gallery_images[i][None])
        return binarize_fixed(img, seed)[0].numpy().astype(np.uint8), int(self.gallery_labels[i])

    @staticmethod
    def drawing_binary(sketch, seed: int = 0) -> np.ndarray:
        gray = inputs.mnist_like(inputs.ink_mask(sketch))
        return binarize_fixed(torch.from_numpy(gray[None]), seed)[0].numpy().astype(np.uint8)

    def complete(self, key: str | None, prefix: np.ndarray, true_label: int | None, keep_rows, n, digit,
                 temperature, seed) -> tuple[Entry, Completion, list[str]]:
        entry, model = self.model(key)
        k, m = inputs.checked("keep_rows", keep_rows), inputs.checked("completions", n)
        t, s, notes = inputs.sampling(temperature, seed)
        notes = [c.note for c in (k, m) if c.note] + notes
        C = model.config.num_classes
        y = inputs.digit(digit, C, allow_auto=True)
        if y == "auto":
            if C == 0 or k.value == 0:
                y, how = (None, "any digit (nothing kept to guess from)") if C else (None, "unconditional")
            else:
                post = class_posterior(model, prefix, int(k.value))
                y = int(post.argmax())
                how = f"digit {y}: the model's best guess from the kept rows (p = {post[y]:.2f})"
                if true_label is not None:
                    how += f"; the test image is a {true_label}"
        else:
            how = "any digit (drawn at random per completion)" if y is None else f"digit {y}"
        traces = sample_traces(model, n=int(m.value), y=y, temperature=t, seed=s,
                               prefix=torch.from_numpy(prefix.astype(np.float32)), keep_rows=int(k.value))
        return entry, Completion(traces, prefix, how), notes

    # comparing cells
    def compare_default_keys(self) -> list[str]:
        """The shipped LSTM, GRU and RNN (those present); topped up with other class-conditional
        models when fewer than three are shipped."""
        entries = self.registry.entries()
        shipped = {e.name: e.key for e in entries if e.origin == "shipped"}
        keys = [shipped[n] for n in COMPARE_DEFAULTS if n in shipped]
        for e in entries:
            if len(keys) >= MAX_COMPARE:
                break
            if e.key not in keys and e.config.num_classes:
                keys.append(e.key)
        return keys

    def compare(self, keys, digit, temperature, seed) -> tuple[list[tuple[Entry, Trace]], list[str]]:
        """The same digit, seed and temperature through up to three models: [(entry, trace)] in the
        order given, and notes (models skipped, values clamped). With a digit, models that are not
        class-conditional are skipped (with a note); with 'any' every model draws its class from the
        seed (the same class for models with the same number of classes)."""
        if keys is None or (isinstance(keys, (list, tuple)) and not keys):
            keys = self.compare_default_keys()
        if isinstance(keys, str):
            keys = [keys]
        if not isinstance(keys, (list, tuple)) or not all(isinstance(k, str) for k in keys):
            raise inputs.InputError(f"models must be a list of checkpoint keys, got {str(keys)[:60]!r}")
        keys = list(dict.fromkeys(k for k in keys if k.strip()))  # order kept, repeats dropped
        if not keys:
            raise inputs.InputError(self.no_checkpoint_message())
        if len(keys) > MAX_COMPARE:
            raise inputs.InputError(f"choose at most {MAX_COMPARE} models to compare, got {len(keys)}")
        t, s, notes = inputs.sampling(temperature, seed)
        loaded = [self.model(k) for k in keys]  # unknown keys fail here, before any sampling
        out = []
        for entry, model in loaded:
            C = model.config.num_classes
            if C == 0 and inputs.digit(digit, 10) is not None:
                notes.append(f"{entry.name} is not class-conditional (it cannot be asked for a digit): skipped. "
                             "Choose digit 'any' to include it.")
                continue
            y = inputs.digit(digit, C)
            (trace,) = sample_traces(model, n=1, y=y, temperature=t, seed=s)
            out.append((entry, trace))
        if not out:
            raise inputs.InputError("None of the chosen models can draw that digit: " + " ".join(notes))
        return out, notes

    # interventions
    def intervention_choices(self, key: str | None) -> tuple[Entry, list[str]]:
        """The checkpoint's entry and the interventions that fit its cell (presets, then row edits)."""
        entry, _ = self.model(key)
        return entry, list(presets_for(entry.config.cell)) + list(ROW_EDITS)

    def intervene(self, key: str | None, digit, temperature, seed, kind, first, last, units, value=None,
                  layer=-1) -> tuple[Entry, Comparison, str, list[str]]:
        """Sample a digit with and without an intervention (``kind``: a preset of
        ``rnnviz.interventions.presets_for`` the model's cell, or one of ``ROW_EDITS``) at steps
        ``first``..``last``. Returns (entry, comparison, a description, notes)."""
        entry, model = self.model(key)
        c = model.config
        y = inputs.digit(digit, c.num_classes)
        t, s, notes = inputs.sampling(temperature, seed)
        t0, t1 = inputs.step_range(first, last, c.height)
        where = f"at step {t0}" if t0 == t1 else f"at steps {t0}-{t1}"
        presets = presets_for(c.cell)
        if not isinstance(kind, str):
            raise inputs.InputError(f"intervention must be one of the choices (text), got {inputs.short(kind)}")
        if kind in presets:
            preset = presets[kind]
            chosen = inputs.units(units, c.hidden)
            lay = inputs.number("layer", layer, -c.layers, c.layers - 1, integer=True, default=-1)
            notes += [lay.note] if lay.note else []
            val = None
            free = [name for name, v in preset.clamps if v is None]
            if free:
                lo, hi = VALUE_RANGES[free[0]]
                v = inputs.number("value", value, lo, hi)
                val, notes = float(v.value), notes + ([v.note] if v.note else [])
            try:
                changes = preset.make(t0, t1 + 1, chosen, int(lay.value), val)
            except ValueError as e:
                raise inputs.InputError(str(e)) from None
            who = "all units" if chosen is None else (f"{len(chosen)} unit{'s' if len(chosen) > 1 else ''} "
                                                      f"({_ranges(chosen)})")
            if c.layers > 1:
                who += f", layer {int(lay.value) % c.layers + 1} of {c.layers}"
            label = kind.replace("value", f"{val:g}") if val is not None else kind
            description = f"{label} {where}, {who}"
        elif kind in ROW_EDITS:
            row = (ROW_EDITS[kind],) * c.width
            changes = tuple(RowEdit(step, row) for step in range(t0, t1 + 1))
            description = f"{kind.split(':')[0].replace('(s)', 's' if t1 > t0 else '')} {where}"
        else:
            choices = ", ".join(repr(k) for k in [*presets, *ROW_EDITS])
            raise inputs.InputError(f"unknown intervention {str(kind)[:60]!r} for a {c.cell.upper()}: "
                                    f"choose one of {choices}")
        try:
            cmp = intervene(model, changes, y=y, temperature=t, seed=s)
        except ValueError as e:
            raise inputs.InputError(str(e)) from None
        return entry, cmp, description, notes

    # VAE: reconstruct and sample from the prior
    def vae_choices(self) -> list[tuple[str, str]]:
        return [(e.label, e.key) for e in self.registry.entries() if e.config.latent > 0]

    def default_vae_key(self) -> str | None:
        keys = [e for e in self.registry.entries() if e.config.latent > 0]
        for e in keys:
            if e.origin == "shipped" and e.name == DEFAULT_VAE:
                return e.key
        return keys[0].key if keys else None

    def vae_model(self, key: str | None) -> tuple[Entry, RowModel]:
        """A VAE checkpoint (``key`` None or "": the default one); InputError says how to get one."""
        key = key or self.default_vae_key()
        if key is None:
            raise inputs.InputError(VAE_HOWTO)
        entry, model = self.model(key)
        if not model.config.latent:
            raise inputs.InputError(f"{entry.name} is not a VAE (it has no encoder, latent = 0): choose a VAE "
                                    "checkpoint" + ("" if self.vae_choices() else ". " + VAE_HOWTO))
        return entry, model

    def reconstruct(self, key: str | None, image: np.ndarray, temperature, seed, use_mean=True
                    ) -> tuple[Entry, Trace, list[str]]:
        """A VAE encodes a binary (H, W) image and redraws it row by row from z (the mean of q(z | x),
        or one draw of it)."""
        entry, model = self.vae_model(key)
        t, s, notes = inputs.sampling(temperature, seed)
        img = np.asarray(image)
        if img.shape != (model.config.height, model.config.width):
            raise inputs.InputError(f"the image is {img.shape}, the model reads "
                                    f"{model.config.height}\u00d7{model.config.width}")
        (trace,) = reconstruct_traces(model, (img > 0).astype(np.float32), temperature=t, seed=s, n=1,
                                      use_mean=bool(use_mean))
        return entry, trace, notes

    def sample_prior(self, key: str | None, temperature, seed) -> tuple[Entry, Trace, list[str]]:
        """A VAE draws a new digit from z ~ N(0, I)."""
        entry, model = self.vae_model(key)
        t, s, notes = inputs.sampling(temperature, seed)
        (trace,) = sample_traces(model, n=1, temperature=t, seed=s, kind="prior sample")
        return entry, trace, notes


def _ranges(units: tuple[int, ...]) -> str:
    """(3, 17, 200, 201, 202) -> '3, 17, 200-202'."""
    out: list[list[int]] = []
    for u in units:
        if out and u == out[-1][1] + 1:
            out[-1][1] = u
        else:
            out.append([u, u])
    text = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in out)
    return text if len(text) <= 60 else text[:57] + "\u2026"

