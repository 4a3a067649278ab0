"""Server-side state of the explorer, shared by all visitors and safe to use from handler threads.

- ``Registry``: the checkpoints the app can use (the shipped folder and the server's runs folder),
  read lazily, loaded models kept in a small LRU.
- ``Sessions``: per-visitor traces (the current one per step view, the last completions), keyed by
  Gradio's session hash, in a bounded LRU. Traces never travel to the browser as ``gr.State``.
- ``TrainingService``: the one background training run of this server.
- ``Explorer``: the operations the page calls (generate, complete, train), built on the above.

Generation always uses models loaded from saved checkpoints, never the trainer's live module.
"""

from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import CheckpointError, ModelConfig, RowModel, Trace, load_checkpoint, sample_traces, trace_images
from ..checkpoint import read_metadata
from ..data import DataNotFoundError, binarize_fixed, load_dataset
from ..interventions import VALUE_RANGES, Comparison, RowEdit, intervene, presets_for
from ..trace import reconstruct_traces
from ..train import TrainConfig, Trainer, check_writable
from . import inputs
from .uploads import MAX_UPLOAD_BYTES, UploadStore, explorer_problem

DEFAULT_CHECKPOINT = "mnist_lstm"
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


# ---- checkpoints ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    key: str  # "<origin>/<stem>": what the page and the API send
    name: str  # file stem
    origin: str  # "shipped", "run" or "upload"
    path: Path
    config: ModelConfig
    metrics: dict

    @property
    def label(self) -> str:
        c = self.config
        nll = self.metrics.get("test_nll")
        extra = f", NLL {float(nll):.1f}" if nll is not None else ""
        where = {"run": " (trained here)", "upload": " (uploaded)"}.get(self.origin, "")
        return f"{self.name}{where}: {c.cell.upper()} {c.layers}\u00d7{c.hidden}{extra}"


class Registry:
    """Checkpoints found in a few folders. Keys are validated against what is on disk, so a key
    from the page can never name another path. Files the explorer cannot show (unreadable, another
    image size, bad metadata) are skipped and listed in ``problems``."""

    def __init__(self, folders: dict[str, Path], default: str = DEFAULT_CHECKPOINT, max_models: int = 6):
        self.folders = {origin: Path(p) for origin, p in folders.items()}
        self.default_name = default
        self.max_models = max_models
        self._lock = threading.Lock()
        self._meta: dict[tuple, Entry | str] = {}  # (path, mtime, size) -> Entry or error message
        self._models: OrderedDict[tuple, RowModel] = OrderedDict()
        self.problems: list[str] = []

    def entries(self) -> list[Entry]:
        """Every readable checkpoint, shipped first, then runs, by name. Unreadable files are
        skipped and listed in ``problems``."""
        found, problems, seen = [], [], set()
        for origin, folder in self.folders.items():
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.safetensors")):
                try:
                    st = path.stat()
                except OSError:
                    continue
                sig = (str(path), st.st_mtime_ns, st.st_size)
                seen.add(sig)
                with self._lock:
                    cached = self._meta.get(sig)
                if cached is None:
                    cached = self._read_entry(origin, path)
                    with self._lock:
                        self._meta[sig] = cached
                if isinstance(cached, Entry):
                    found.append(cached)
                else:
                    problems.append(cached)
        with self._lock:  # forget files that are gone or changed: the cache stays as big as the folders
            self._meta = {sig: v for sig, v in self._meta.items() if sig in seen}
        self.problems = problems
        return found

    @staticmethod
    def _read_entry(origin: str, path: Path) -> Entry | str:
        """The entry for ``path``, or why the explorer cannot use it."""
        try:
            meta = read_metadata(path)
        except CheckpointError as e:
            return str(e)
        problem = explorer_problem(meta["config"], meta["metrics"])
        if problem:
            return f"{path}: {problem}"
        return Entry(f"{origin}/{path.stem}", path.stem, origin, path, meta["config"], meta["metrics"])

    def signature(self) -> tuple:
        return tuple((e.key, e.path.stat().st_mtime_ns if e.path.exists() else 0) for e in self.entries())

    def choices(self) -> list[tuple[str, str]]:
        return [(e.label, e.key) for e in self.entries()]

    def default_key(self) -> str | None:
        """The shipped default (mnist_lstm), else any shipped checkpoint, else any run, else None."""
        entries = self.entries()
        for e in entries:
            if e.origin == "shipped" and e.name == self.default_name:
                return e.key
        return entries[0].key if entries else None

    def get(self, key: str | None) -> Entry:
        for e in self.entries():
            if e.key == key:
                return e
        known = ", ".join(e.key for e in self.entries()) or "none"
        raise inputs.InputError(f"unknown checkpoint {key!r} (available: {known})")

    def model(self, key: str | None) -> tuple[Entry, RowModel]:
        """The entry and its model (eval, CPU), loaded once and kept while recently used."""
        entry = self.get(key)
        try:
            sig = (str(entry.path), entry.path.stat().st_mtime_ns)
        except OSError:
            raise inputs.InputError(f"checkpoint {key!r} is no longer available") from None
        with self._lock:
            model = self._models.get(sig)
            if model is not None:
                self._models.move_to_end(sig)
                return entry, model
        try:
            model = load_checkpoint(entry.path)
        except CheckpointError as e:
            raise inputs.InputError(f"cannot load {entry.name}: {e}") from None
        with self._lock:
            self._models[sig] = model
            while len(self._models) > self.max_models:
                self._models.popitem(last=False)
        return entry, model


# ---- sessions ---------------------------------------------------------------------------------
@dataclass
class ViewState:
    trace: Trace | None = None
    model_name: str = ""
    layer: int = 0
    playing: bool = False  # Play pressed and not paused
    traces: list[Trace] = field(default_factory=list)  # several traces on one slider (LinkedViews)
    extra: dict = field(default_factory=dict)  # what else a view needs per frame (titles, a Comparison)


@dataclass
class Session:
    views: dict[str, ViewState] = field(default_factory=dict)
    completions: list[Trace] = field(default_factory=list)
    completion_model: str = ""
    seen: dict[str, object] = field(default_factory=dict)  # versions this page has been sent

    def view(self, name: str) -> ViewState:
        return self.views.setdefault(name, ViewState())


class Sessions:
    """A bounded LRU of per-visitor state, keyed by Gradio's session hash."""

    def __init__(self, max_sessions: int = 64):
        self.max_sessions = max_sessions
        self._lock = threading.Lock()
        self._data: OrderedDict[str, Session] = OrderedDict()

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
            return self._data.pop(session_hash or "local", None) is not None

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, session_hash) -> bool:
        return session_hash in self._data


# ---- training ---------------------------------------------------------------------------------
class TrainingRefused(RuntimeError):
    """A training request that cannot be honoured now (already running, disabled, not yours)."""


@dataclass
class Run:
    trainer: Trainer
    owner: str
    name: str
    summary: str
    started: str
    out: Path
    dataset: str


# limits of what the page (or the API) may ask for
TRAIN_LIMITS = {"hidden": (8, 1024), "layers": (1, 4), "lr": (1e-5, 0.05), "batch_size": (8, 512),
                "minutes": (0.05, 120.0)}


class TrainingService:
    """At most one background training run per server."""

    def __init__(self, runs_dir: Path, default_dataset: str = "mnist", data_root: str | None = None,
                 enabled: bool = True, disabled_reason: str = "", owner_only: bool = False,
                 threads: int | None = None, max_minutes: float = 120.0, limits: dict | None = None,
                 train_options: dict | None = None):
        self.runs_dir = Path(runs_dir)
        self.default_dataset = default_dataset
        self.data_root = data_root
        self.enabled = enabled
        self.disabled_reason = disabled_reason
        self.owner_only = owner_only
        self.threads = threads or max(1, (os.cpu_count() or 2) - 1)
        self.max_minutes = max_minutes
        # what a visitor may ask for; tests widen "lr" to provoke a diverging run
        self.limits = {**TRAIN_LIMITS, "minutes": (TRAIN_LIMITS["minutes"][0], max_minutes), **(limits or {})}
        self.train_options = dict(train_options or {})  # other TrainConfig fields, e.g. warmup_steps
        self._lock = threading.Lock()
        self._run: Run | None = None
        self._datasets: dict[str, object] = {}  # name -> Dataset or error message

    # datasets
    def dataset_choices(self) -> list[str]:
        out = [self.default_dataset]
        for name in ("mnist", "fashionmnist", "kmnist"):
            if name not in out:
                out.append(name)
        return out

    def _dataset(self, name: str, download: bool):
        with self._lock:
            got = self._datasets.get(name)
        if got is not None and not (isinstance(got, str) and download):
            return got
        try:
            got = load_dataset(name, self.data_root, download=download)
        except (DataNotFoundError, FileNotFoundError, ValueError, OSError) as e:
            got = str(e)
        with self._lock:
            self._datasets[name] = got
        return got

    def dataset_problem(self, name: str | None = None) -> str | None:
        """None if ``name`` is on disk (it is then loaded and kept), else how to get it."""
        got = self._dataset(name or self.default_dataset, download=False)
        return got if isinstance(got, str) else None

    def dataset(self, name: str | None = None):
        """The dataset ``name`` (default: the Train tab's) if it is on disk (loaded once and kept),
        else None. Never downloads (the analysis tabs read test digits from it)."""
        got = self._dataset(name or self.default_dataset, download=False)
        return None if isinstance(got, str) else got

    # runs
    @property
    def run(self) -> Run | None:
        return self._run

    def active(self) -> bool:
        r = self._run
        return r is not None and r.trainer.alive

    def _who(self, owner: str, session: str | None) -> str:
        return "you" if owner == (session or "local") else "another visitor"

    def busy_message(self, session: str | None) -> str:
        r = self._run
        snap = r.trainer.snapshot()
        return (f"A training run is already going ({r.summary}, started {r.started} by "
                f"{self._who(r.owner, session)}, {int(snap['seconds_left'] // 60)} min "
                f"{int(snap['seconds_left'] % 60)} s left). This server trains one model at a time: "
                "stop it or wait for it to finish.")

    def checkpoint_path(self, name: str | None, default: str) -> Path:
        """Where a run called ``name`` (any text a visitor typed) is saved: a new file directly in the
        runs folder, its stem made of letters, digits, '-' and '_' only."""
        stem = inputs.safe_name(name, default)
        path = self.runs_dir / f"{stem}.safetensors"
        k = 2
        while path.exists():
            path = self.runs_dir / f"{stem}_{k}.safetensors"
            k += 1
        return path

    def start(self, session: str | None, cell: str, hidden, layers, lr, batch_size, minutes,
              dataset: str | None, name: str | None = None) -> tuple[str, list[str]]:
        """Start a run; returns (message, notes about clamped values). Raises TrainingRefused or
        inputs.InputError."""
        if not self.enabled:
            raise TrainingRefused(self.disabled_reason or "training is disabled on this server")
        cell = str(cell or "").lower()
        if cell not in ("lstm", "gru", "rnn"):
            raise inputs.InputError(f"cell must be lstm, gru or rnn; got {cell!r}")
        lim = self.limits
        vals = {"hidden": inputs.number("hidden size", hidden, *lim["hidden"], integer=True),
                "layers": inputs.number("layers", layers, *lim["layers"], integer=True),
                "lr": inputs.number("learning rate", lr, *lim["lr"]),
                "batch_size": inputs.number("batch size", batch_size, *lim["batch_size"], integer=True),
                "minutes": inputs.number("minutes", minutes, *lim["minutes"])}
        notes = [v.note for v in vals.values() if v.note]
        v = {k: c.value for k, c in vals.items()}
        dataset = dataset or self.default_dataset
        if dataset not in self.dataset_choices():
            raise inputs.InputError(f"dataset must be one of {self.dataset_choices()}; got {dataset!r}")
        with self._lock:
            if self._run is not None and self._run.trainer.alive:
                raise TrainingRefused(self.busy_message(session))
        data = self._dataset(dataset, download=True)
        if isinstance(data, str):
            raise TrainingRefused(data)
        default_stem = f"{cell}{v['hidden']}x{v['layers']}_{time.strftime('%m%d_%H%M%S')}"
        mc = ModelConfig(cell=cell, hidden=v["hidden"], layers=v["layers"], head_hidden=min(512, 2 * v["hidden"]))
        with self._lock:
            if self._run is not None and self._run.trainer.alive:
                raise TrainingRefused(self.busy_message(session))
            out = self.checkpoint_path(name, default_stem)
            try:  # fail now, with the reason, rather than after the run
                check_writable(str(out))
            except OSError as e:
                raise TrainingRefused(f"Cannot start: {e}. Nothing was started.") from None
            tc = TrainConfig(dataset=dataset, data_root=self.data_root, batch_size=v["batch_size"], lr=v["lr"],
                             minutes=v["minutes"],
                             eval_every_s=float(min(30.0, max(5.0, v["minutes"] * 60 / 8))),
                             eval_images=min(500, len(data.test)),
                             final_eval=False, snapshot_every_s=5.0, snapshot_count=10,
                             checkpoint_every_min=10.0, out=str(out), **self.train_options)
            trainer = Trainer(mc, tc, dataset=data)
            summary = (f"{cell.upper()} {v['layers']}\u00d7{v['hidden']}, lr {v['lr']:g}, batch {v['batch_size']}, "
                       f"{v['minutes']:g} min on {Path(dataset).name}")
            self._run = Run(trainer, session or "local", out.stem, summary, time.strftime("%H:%M:%S"), out, dataset)
            # leave a core for the page: the trainer's intra-op threads are set before its first op
            torch.set_num_threads(self.threads)
            trainer.start()
        return f"Started {summary}; the checkpoint will be saved as {out.name}.", notes

    def control(self, session: str | None, action: str) -> str:
        r = self._run
        if r is None or not r.trainer.alive:
            return "No training run is going."
        if self.owner_only and r.owner != (session or "local"):
            raise TrainingRefused("Only the visitor who started this run can pause, resume or stop it.")
        if action == "pause":
            r.trainer.pause()
            return "Pausing after the current batch."
        if action == "resume":
            r.trainer.resume()
            return "Resumed."
        if action == "stop":
            r.trainer.stop()
            return "Stopping after the current batch; the checkpoint is then saved."
        raise inputs.InputError(f"unknown action {action!r}")

    def snapshot(self, session: str | None = None) -> tuple[dict | None, dict | None]:
        """(trainer snapshot, run info) of the current or last run, or (None, None)."""
        r = self._run
        if r is None:
            return None, None
        info = {"summary": r.summary, "started": r.started, "who": self._who(r.owner, session),
                "name": r.name, "alive": r.trainer.alive}
        return r.trainer.snapshot(), info

    def shutdown(self, timeout: float = 10.0):
        r = self._run
        if r is not None and r.trainer.alive:
            r.trainer.stop()
            r.trainer.join(timeout)


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
                 uploads_dir: str | os.PathLike | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES):
        uploads_dir = Path(uploads_dir) if uploads_dir is not None else Path(runs_dir).parent / "uploads"
        self.uploads = UploadStore(uploads_dir, max_bytes=max_upload_bytes)
        self.registry = Registry({"shipped": Path(checkpoint_dir), "run": Path(runs_dir), "upload": uploads_dir})
        self.sessions = Sessions(max_sessions)
        self.training = training or TrainingService(Path(runs_dir))
        with np.load(GALLERY, allow_pickle=False) as z:
            self.gallery_images = z["images"].astype(np.uint8)
            self.gallery_labels = z["labels"].astype(np.int64)

    # checkpoints
    def model(self, key: str | None) -> tuple[Entry, RowModel]:
        if key is None:
            key = self.registry.default_key()
            if key is None:
                raise inputs.InputError(self.no_checkpoint_message())
        return self.registry.model(key)

    def add_upload(self, path: str | os.PathLike, name: str | None) -> Entry:
        """Check a visitor's checkpoint and add it to the model list; InputError says what is wrong."""
        stored = self.uploads.add(path, name)
        return self.registry.get(f"upload/{stored.stem}")

    def no_checkpoint_message(self) -> str:
        folders = " or ".join(str(p) for p in self.registry.folders.values())
        return (f"No checkpoint found in {folders}. Train one in the Train tab, or from a shell: "
                "python -m rnnviz.train --minutes 10 --out checkpoints/mnist_lstm.safetensors")

    # generation
    def generate(self, key: str | None, digit, temperature, seed, n: int = 1) -> tuple[Entry, list[Trace], list[str]]:
        entry, model = self.model(key)
        y = inputs.digit(digit, model.config.num_classes)
        t = inputs.number("temperature", temperature, 0.0, 3.0, default=1.0)
        s = inputs.number("seed", seed, 0, 2**31 - 1, integer=True, default=0)
        traces = sample_traces(model, n=n, y=y, temperature=float(t.value), seed=int(s.value))
        return entry, traces, [c.note for c in (t, s) if c.note]

    # completion
    def gallery_binary(self, index, seed: int = 0) -> tuple[np.ndarray, int]:
        i = inputs.number("gallery image", index, 0, len(self.gallery_images) - 1, integer=True).value
        img = torch.from_numpy(self.gallery_images[i][None])
        return binarize_fixed(img, seed)[0].numpy().astype(np.uint8), int(self.gallery_labels[i])

    @staticmethod
    def drawing_binary(sketch, seed: int = 0) -> np.ndarray:
        gray = inputs.mnist_like(inputs.ink_mask(sketch))
        return binarize_fixed(torch.from_numpy(gray[None]), seed)[0].numpy().astype(np.uint8)

    @staticmethod
    def class_posterior(model: RowModel, prefix: np.ndarray, keep_rows: int) -> np.ndarray:
        """p(class | the kept rows) under the model with a uniform prior (C,)."""
        C = model.config.num_classes
        traces = trace_images(model, np.repeat(prefix[None].astype(np.float32), C, 0), y=np.arange(C))
        ll = -np.array([tr.row_nll[:keep_rows].sum() for tr in traces], np.float64)
        p = np.exp(ll - ll.max())
        return p / p.sum()

    def complete(self, key: str | None, prefix: np.ndarray, true_label: int | None, keep_rows, n, digit,
                 temperature, seed) -> tuple[Entry, Completion, list[str]]:
        entry, model = self.model(key)
        k = inputs.number("rows to keep", keep_rows, 0, model.config.height - 1, integer=True, default=14)
        m = inputs.number("completions", n, 1, 8, integer=True, default=4)
        t = inputs.number("temperature", temperature, 0.0, 3.0, default=1.0)
        s = inputs.number("seed", seed, 0, 2**31 - 1, integer=True, default=0)
        notes = [c.note for c in (k, m, t, s) if c.note]
        C = model.config.num_classes
        y = inputs.digit(digit, C, allow_auto=True)
        if y == "auto":
            if C == 0 or k.value == 0:
                y, how = (None, "any digit (nothing kept to guess from)") if C else (None, "unconditional")
            else:
                post = self.class_posterior(model, prefix, int(k.value))
                y = int(post.argmax())
                how = f"digit {y}: the model's best guess from the kept rows (p = {post[y]:.2f})"
                if true_label is not None:
                    how += f"; the test image is a {true_label}"
        else:
            how = "any digit (drawn at random per completion)" if y is None else f"digit {y}"
        traces = sample_traces(model, n=int(m.value), y=y, temperature=float(t.value), seed=int(s.value),
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
        t = inputs.number("temperature", temperature, 0.0, 3.0, default=1.0)
        s = inputs.number("seed", seed, 0, 2**31 - 1, integer=True, default=0)
        notes = [c.note for c in (t, s) if c.note]
        loaded = [self.model(k) for k in keys]  # unknown keys fail here, before any sampling
        out = []
        for entry, model in loaded:
            C = model.config.num_classes
            if C == 0 and inputs.digit(digit, 10) is not None:
                notes.append(f"{entry.name} is not class-conditional (it cannot be asked for a digit): skipped. "
                             "Choose digit 'any' to include it.")
                continue
            y = inputs.digit(digit, C)
            (trace,) = sample_traces(model, n=1, y=y, temperature=float(t.value), seed=int(s.value))
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
        t = inputs.number("temperature", temperature, 0.0, 3.0, default=1.0)
        s = inputs.number("seed", seed, 0, 2**31 - 1, integer=True, default=0)
        notes = [x.note for x in (t, s) if x.note]
        t0, t1 = inputs.step_range(first, last, c.height)
        where = f"at step {t0}" if t0 == t1 else f"at steps {t0}-{t1}"
        presets = presets_for(c.cell)
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
            cmp = intervene(model, changes, y=y, temperature=float(t.value), seed=int(s.value))
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
        t = inputs.number("temperature", temperature, 0.0, 3.0, default=1.0)
        s = inputs.number("seed", seed, 0, 2**31 - 1, integer=True, default=0)
        img = np.asarray(image)
        if img.shape != (model.config.height, model.config.width):
            raise inputs.InputError(f"the image is {img.shape}, the model reads "
                                    f"{model.config.height}\u00d7{model.config.width}")
        (trace,) = reconstruct_traces(model, (img > 0).astype(np.float32), temperature=float(t.value),
                                      seed=int(s.value), n=1, use_mean=bool(use_mean))
        return entry, trace, [c.note for c in (t, s) if c.note]

    def sample_prior(self, key: str | None, temperature, seed) -> tuple[Entry, Trace, list[str]]:
        """A VAE draws a new digit from z ~ N(0, I)."""
        entry, model = self.vae_model(key)
        t = inputs.number("temperature", temperature, 0.0, 3.0, default=1.0)
        s = inputs.number("seed", seed, 0, 2**31 - 1, integer=True, default=0)
        (trace,) = sample_traces(model, n=1, temperature=float(t.value), seed=int(s.value), kind="prior sample")
        return entry, trace, [c.note for c in (t, s) if c.note]


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

