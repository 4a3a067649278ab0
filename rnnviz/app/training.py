"""The one background training run of an explorer server (the Train tab), and what a visitor may ask
of it. The run itself is ``rnnviz.train.Trainer`` (which knows nothing about Gradio); a finished or
stopped run's checkpoint lands in the runs folder, where ``registry.Registry`` finds it.

The runs folder is the service's own: the partial checkpoints a killed server left there are
removed when the service starts, and counted (then removed) with the runs when the folder is
trimmed. What the Train tab shows (``snapshot``, refusals) names files without the server's
folders, and says "the disk is full" rather than the writer's raw error.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .. import ModelConfig
from ..model import CELLS
from ..checkpoint import APP_LIMITS, parameter_count
from ..data import DATASETS, DataNotFoundError, cls_dir, data_root, load_dataset
from ..metrics_log import metrics_log_path, read_metrics_log
from ..train import TrainConfig, Trainer, check_writable
from ..train.files import orphan_temps, remove_orphans_in
from . import inputs


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


# limits of what the page (or the API) may ask for, name -> (lo, hi): the Train tab's widgets take their
# ranges from here (TrainingService.limits). The model must also fit APP_LIMITS (the explorer's own
# loading budget, whose hidden and layer caps these read), so that every run can be shown once it is saved
TRAIN_LIMITS = {"hidden": (8, APP_LIMITS.hidden), "layers": (1, APP_LIMITS.layers), "lr": (1e-5, 0.05),
                "batch_size": (8, 512), "minutes": (0.05, 120.0), "dropout": (0.0, 0.6)}
HEAD_HIDDEN = ModelConfig.head_hidden  # a run's row head: 2 units per hidden unit, at most the model's default
EMA_DECAY = 0.999  # the weight averaging the Train tab's checkbox turns on (TrainConfig.ema)
MAX_RUNS = 8  # finished or stopped runs kept in the runs folder, the oldest removed first
MAX_RUN_BYTES = 400 * 2**20  # their checkpoints and logs together


class TrainingService:
    """At most one background training run per server."""

    def __init__(self, runs_dir: Path, default_dataset: str = "mnist", data_root: str | None = None,
                 enabled: bool = True, disabled_reason: str = "", owner_only: bool = False,
                 threads: int | None = None, max_minutes: float = 120.0, limits: dict | None = None,
                 train_options: dict | None = None, max_runs: int = MAX_RUNS, max_run_bytes: int = MAX_RUN_BYTES):
        self.runs_dir = Path(runs_dir)
        self.max_runs, self.max_run_bytes = max_runs, max_run_bytes
        self.reserved_names = lambda: set()  # stems a run may not take (the Explorer: its shipped checkpoints)
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
        self._history: tuple[tuple | None, list[dict]] = (None, [])  # (log file signature, its records)
        self._datasets: dict[str, object] = {}  # name -> Dataset or error message
        remove_orphans_in(self.runs_dir)  # a killed server's partial checkpoints: no run of ours is writing

    # datasets
    def dataset_choices(self) -> list[str]:
        out = [self.default_dataset]
        for name in DATASETS:
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
            if download:  # the whole story (torchvision's, with server paths) for the server's log only
                logging.getLogger(__name__).warning("training data: %s", got)
        with self._lock:
            self._datasets[name] = got
        return got

    def dataset_problem(self, name: str | None = None) -> str | None:
        """None if ``name`` is on disk (it is then loaded and kept), else one sentence on how to get it."""
        name = name or self.default_dataset
        got = self._dataset(name, download=False)
        return self.missing_dataset(name, tried_download=False) if isinstance(got, str) else None

    def missing_dataset(self, name: str, tried_download: bool = True) -> str:
        """One sentence for a visitor on where the dataset ``name`` goes (no server path, none of
        torchvision's text; the server's log has the whole error)."""
        key = str(name).lower().replace("-", "").replace("_", "")
        if key not in DATASETS:  # a .npz file the server was started with
            with self._lock:
                why = self._datasets.get(name)
            if isinstance(why, str) and Path(str(name)).is_file():  # there, but not a dataset: load_npz's sentence
                return self.public(why.replace(str(name), Path(str(name)).name))
            return (f"The dataset file {Path(str(name)).name} is not on this machine (or cannot be read): start "
                    "the explorer with --train-dataset naming one that is.")
        folder = cls_dir(key)
        root = data_root(self.data_root)
        if str(root) == "data":
            where = "data/ (in the folder the explorer was started from)"
        else:  # a folder the server was given: its name only
            where = f"{root.name}/" if root.name else "the data folder"
        todo = (f"put torchvision's {folder}/ folder into {where}, or start the explorer with --data-root set "
                f"to the folder that holds {folder}/.")
        if os.environ.get("RNNVIZ_NO_DOWNLOAD"):  # load_dataset never downloads then
            return f"{folder} is not on this machine: {todo}"
        if tried_download:
            return f"{folder} could not be downloaded: {todo}"
        return f"{folder} is not on this machine: Start downloads it when the machine is online; offline, {todo}"

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
        if stem.lower() in self.reserved_names():  # a shipped model's name stays unambiguous
            stem = f"{stem}_run"
        path = self.runs_dir / f"{stem}.safetensors"
        k = 2
        while path.exists():
            path = self.runs_dir / f"{stem}_{k}.safetensors"
            k += 1
        return path

    def start(self, session: str | None, cell: str, hidden, layers, lr, batch_size, minutes,
              dataset: str | None, name: str | None = None, dropout=0.0, ema=False) -> tuple[str, list[str]]:
        """Start a run; returns (message, notes about clamped values). ``dropout`` and ``ema`` (average
        the weights with decay ``EMA_DECAY``) are the trainer's regularizers. Raises TrainingRefused or
        inputs.InputError."""
        if not self.enabled:
            raise TrainingRefused(self.disabled_reason or "training is disabled on this server")
        if not isinstance(cell, (str, type(None))) or str(cell or "").lower() not in CELLS:
            raise inputs.InputError(f"cell must be {', '.join(CELLS)}; got {inputs.short(cell)}")
        cell = str(cell).lower()
        lim = self.limits
        vals = {"hidden": inputs.number("hidden size", hidden, *lim["hidden"], integer=True),
                "layers": inputs.number("layers", layers, *lim["layers"], integer=True),
                "lr": inputs.number("learning rate", lr, *lim["lr"]),
                "batch_size": inputs.number("batch size", batch_size, *lim["batch_size"], integer=True),
                "minutes": inputs.number("minutes", minutes, *lim["minutes"]),
                "dropout": inputs.number("dropout", dropout, *lim["dropout"], default=0.0)}
        if not isinstance(ema, (bool, type(None))):
            raise inputs.InputError(f"weight averaging must be true or false; got {inputs.short(ema)}")
        notes = [v.note for v in vals.values() if v.note]
        v = {k: c.value for k, c in vals.items()}
        mc = ModelConfig(cell=cell, hidden=v["hidden"], layers=v["layers"],
                         head_hidden=min(HEAD_HIDDEN, 2 * v["hidden"]))
        n = parameter_count(mc)
        if n > APP_LIMITS.parameters:
            raise inputs.InputError(
                f"a {cell.upper()} {v['layers']}\u00d7{v['hidden']} has {n:,} parameters, over the explorer's "
                f"limit of {APP_LIMITS.parameters:,} (it could not be shown here): choose fewer hidden units or layers")
        dataset = dataset or self.default_dataset
        if not isinstance(dataset, str) or dataset not in self.dataset_choices():
            names = [Path(c).name for c in self.dataset_choices()]
            raise inputs.InputError(f"dataset must be one of {names}; got {inputs.short(dataset)}")
        with self._lock:
            if self._run is not None and self._run.trainer.alive:
                raise TrainingRefused(self.busy_message(session))
        data = self._dataset(dataset, download=True)
        if isinstance(data, str):
            raise TrainingRefused(self.missing_dataset(dataset))
        problem = self.dataset_fit(data, mc, Path(dataset).name)
        if problem:
            raise TrainingRefused(problem)
        default_stem = f"{cell}{v['hidden']}x{v['layers']}_{time.strftime('%m%d_%H%M%S')}"
        with self._lock:
            if self._run is not None and self._run.trainer.alive:
                raise TrainingRefused(self.busy_message(session))
            out = self.checkpoint_path(name, default_stem)
            try:  # fail now, with the reason, rather than after the run
                check_writable(str(out))
            except OSError as e:
                raise TrainingRefused(f"Cannot start: {self.public(str(e))}. Nothing was started.") from None
            removed = self.prune_runs(keep=self.max_runs - 1, keep_bytes=self.max_run_bytes)
            if removed:
                notes.append(f"The runs folder keeps {self.max_runs} runs ({self.max_run_bytes // 2**20} MB): "
                             f"removed the oldest, {', '.join(removed)}.")
            tc = TrainConfig(dataset=dataset, data_root=self.data_root, batch_size=v["batch_size"], lr=v["lr"],
                             minutes=v["minutes"],
                             eval_every_s=float(min(30.0, max(5.0, v["minutes"] * 60 / 8))),
                             eval_images=min(500, len(data.test)),
                             final_eval=False, snapshot_every_s=5.0, snapshot_count=10,
                             checkpoint_every_min=10.0, out=str(out), threads=self.threads,
                             dropout=v["dropout"], ema=EMA_DECAY if ema else 0.0, **self.train_options)
            trainer = Trainer(mc, tc, dataset=data)
            summary = (f"{cell.upper()} {v['layers']}\u00d7{v['hidden']}, lr {v['lr']:g}, batch {v['batch_size']}, "
                       f"{v['minutes']:g} min on {Path(dataset).name}"
                       + (f", dropout {v['dropout']:g}" if v["dropout"] else "") + (", weights averaged" if ema else ""))
            self._run = Run(trainer, session or "local", out.stem, summary, time.strftime("%H:%M:%S"), out, dataset)
            trainer.start()  # with its own thread count (a core left for the page); the page's is unchanged
        return f"Started {summary}; the checkpoint will be saved as {out.name}.", notes

    def runs_folder(self) -> str:
        """The runs folder as a visitor may read it: relative to the folder the server was started
        from (``runs/explorer/``), else its last two folders; never the server's absolute path."""
        folder = self.runs_dir.resolve()
        try:
            return folder.relative_to(Path.cwd().resolve()).as_posix().rstrip("/") + "/"
        except ValueError:
            return "\u2026/" + "/".join(folder.parts[-2:]) + "/"

    @staticmethod
    def dataset_fit(data, mc: ModelConfig, shown: str) -> str | None:
        """Why the model ``mc`` (the Train tab's) cannot train on ``data``, in one sentence; None if it can."""
        if tuple(data.shape) != (mc.height, mc.width):
            h, w = data.shape
            return (f"{shown}: its images are {h}\u00d7{w}; the explorer trains and shows {mc.height}\u00d7{mc.width} "
                    "(MNIST-size) images only. Train other sizes with rnnviz-train.")
        top = max(int(data.train.labels.max()), int(data.test.labels.max()))
        if mc.num_classes and top >= mc.num_classes:
            return (f"{shown}: it has a label {top}, but the model draws {mc.num_classes} classes (labels 0 to "
                    f"{mc.num_classes - 1}).")
        return None

    def public(self, text: str | None) -> str | None:
        """``text`` as a visitor may read it: the server's folders named relatively (``relative``),
        any other absolute path shortened to its file name, and a full disk said so in words."""
        if not text:
            return text
        for form in {str(self.runs_dir.resolve()), str(self.runs_dir.absolute()), str(self.runs_dir)}:
            if len(form) > 1:
                text = text.replace(form + os.sep, "")  # a run's file: its name
        text = self.relative(text)
        text = re.sub(r"\[Errno (28|122)\] [^:;\n]*(: '[^']*')?",
                      "No space left on the device (the disk is full): free some space, then start a new run", text)
        text = re.sub(r"\[Errno \d+\] ([^:;\n]*)(: '[^']*')?", r"\1", text)  # the reason, without the file again
        return re.sub(r"(?<![\w.~])/(?:[^\s'\":;,/]+/)+([^\s'\":;,/]+)", r"\1", text)

    def relative(self, text: str) -> str:
        """``text`` with the server's folders named relative to the app's (runs folder, data folder)."""
        names = [(self.runs_dir, f"{self.runs_dir.name}/ (the runs folder)")]
        if self.data_root:
            names.append((Path(self.data_root), f"{Path(self.data_root).name}/ (the data folder)"))
        for folder, shown in names:
            for form in {str(folder.resolve()), str(folder.absolute()), str(folder)}:
                if len(form) > 1:
                    text = text.replace(form, shown)
        return text

    def prune_runs(self, keep: int | None = None, keep_bytes: int | None = None) -> list[str]:
        """Remove the oldest finished runs (checkpoint and metrics log) beyond ``keep`` runs or
        ``keep_bytes`` in all; the run that is training is never removed. Returns their names."""
        keep = self.max_runs if keep is None else keep
        keep_bytes = self.max_run_bytes if keep_bytes is None else keep_bytes
        r = self._run
        live = r.out.resolve() if r is not None and r.trainer.alive else None
        for tmp in orphan_temps(self.runs_dir, keep=(live,) if live else ()):  # a killed writer's: they count too
            tmp.unlink(missing_ok=True)
        runs = []
        for p in self.runs_dir.glob("*.safetensors") if self.runs_dir.is_dir() else []:
            try:
                if p.resolve() == live:
                    continue
                log = metrics_log_path(p)
                size = p.stat().st_size + (log.stat().st_size if log.exists() else 0)
                runs.append((p.stat().st_mtime_ns, p, log, size))
            except OSError:
                continue
        runs.sort(key=lambda t: t[0], reverse=True)  # newest first
        removed, total = [], 0
        for i, (_, p, log, size) in enumerate(runs):
            total += size
            if i >= max(0, keep) or total > keep_bytes:
                p.unlink(missing_ok=True)
                log.unlink(missing_ok=True)
                removed.append(p.stem)
        return removed

    def control(self, session: str | None, action: str) -> str:
        r = self._run
        if r is None or not r.trainer.alive:
            return "No training run is going."
        if self.owner_only and r.owner != (session or "local"):
            raise TrainingRefused("Only the visitor who started this run can pause, resume or stop it.")
        if not isinstance(action, str):
            raise inputs.InputError(f"unknown action {inputs.short(action)}")
        if action == "pause":
            r.trainer.pause()
            return "Pausing after the current batch."
        if action == "resume":
            r.trainer.resume()
            return "Resumed."
        if action == "stop":
            r.trainer.stop()
            return "Stopping after the current batch; the checkpoint is then saved."
        raise inputs.InputError(f"unknown action {inputs.short(action)}")

    def snapshot(self, session: str | None = None) -> tuple[dict | None, dict | None]:
        """(trainer snapshot, run info) of the current or last run, or (None, None)."""
        r = self._run
        if r is None:
            return None, None
        info = {"summary": r.summary, "started": r.started, "who": self._who(r.owner, session),
                "name": r.name, "alive": r.trainer.alive}
        snap = r.trainer.snapshot()
        return dict(snap, message=self.public(snap.get("message"))), info

    def history(self) -> list[dict]:
        """The current or last run's metrics, read from the JSON-lines log it writes beside its
        checkpoint (the stream ``rnnviz.train.read_metrics_log`` and TensorBoard users read); the
        trainer's in-memory history when it keeps no log. Re-read only when the file changed."""
        r = self._run
        if r is None:
            return []
        path = r.trainer.metrics_log
        try:
            st = path.stat() if path is not None else None
        except OSError:
            st = None
        if st is None:
            return r.trainer.snapshot()["history"]
        sig = (str(path), st.st_mtime_ns, st.st_size)
        with self._lock:
            if self._history[0] == sig:
                return self._history[1]
        records = read_metrics_log(path)
        with self._lock:
            self._history = (sig, records)
        return records

    def shutdown(self, timeout: float = 10.0):
        r = self._run
        if r is not None and r.trainer.alive:
            r.trainer.stop()
            r.trainer.join(timeout)
