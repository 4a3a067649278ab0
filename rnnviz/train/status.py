"""What other threads see of a run, and what they may ask of it.

``RunStatus`` is the half of ``Trainer`` that any thread may call: ``start`` (the loop in a daemon
thread), ``pause``, ``resume`` and ``stop`` (events the loop checks between batches, so a stop
takes effect within one batch), and ``snapshot()`` and ``published_model()``, which copy under a
lock. The training thread's side is here too: the records it appends to the history, the metrics
log and the progress bar, the sample snapshots it draws when someone reads them, and the weights it
publishes. Nothing here knows about Gradio.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..analysis import gate_saturation
from ..data import Dataset, binarize_fixed
from ..metrics_log import MetricsLog, metrics_log_path
from ..model import ModelConfig, RowModel
from .config import TrainConfig


@dataclass
class Record:
    step: int
    seconds: float  # training time so far
    train_loss: float  # nats per image, mean over the batches since the last record
    samples_per_s: float
    lr: float
    test_nll: float | None = None
    val_nll: float | None = None  # on the held-out training images (val_images)


@dataclass
class _Shared:
    """What the training thread writes and other threads read, always under ``RunStatus._lock``."""

    state: str = "idle"  # idle, running, paused, finished, stopped, failed
    message: str = ""
    step: int = 0
    seconds: float = 0.0
    history: list = field(default_factory=list)
    samples: np.ndarray | None = None  # (k, H, W) float32 in [0, 1]
    sample_labels: list | None = None
    saturation: dict | None = None  # gate_saturation of the latest snapshot (never mutated, replaced)
    weights: dict | None = None  # detached CPU copy of the latest published state dict
    checkpoint: str | None = None


def _copy_saturation(sat: dict | None) -> dict | None:
    """A copy of a ``gate_saturation`` result that a reader may change freely."""
    if sat is None:
        return None
    return {k: ({g: a.copy() for g, a in v.items()} if isinstance(v, dict) else v) for k, v in sat.items()}


class RunStatus:
    """Control and reading from any thread; the subclass's ``run()`` is the training itself."""

    def __init__(self, model_config: ModelConfig, config: TrainConfig):
        self.model_config = model_config
        self.config = config
        self._lock = threading.Lock()
        self._shared = _Shared()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._wanted = threading.Event()  # a reader asked for a snapshot since the last one
        self._watched = False  # anyone ever read one: then the run ends with a final snapshot
        self._thread: threading.Thread | None = None
        self._saturation_batch: tuple | None = None  # (images, labels) for the live gate saturation

    def run(self, progress_bar: bool = False) -> dict:
        raise NotImplementedError

    # ---- control (any thread) -----------------------------------------------------------------
    def start(self) -> RunStatus:
        if self._thread is not None:
            raise RuntimeError("this trainer has already been started")
        self._set(state="running", message="starting")
        self._thread = threading.Thread(target=self._run_safely, name="rnnviz-trainer", daemon=True)
        self._thread.start()
        return self

    def pause(self):
        self._running.clear()

    def resume(self):
        self._running.set()

    def stop(self):
        self._stop.set()
        self._running.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
            return not self._thread.is_alive()
        return True

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run_safely(self):
        try:
            self.run()
        except Exception as e:  # report, never kill the host process
            self._set(state="failed", message=f"training failed: {type(e).__name__}: {e}")

    # ---- reading (any thread) -----------------------------------------------------------------
    def snapshot(self) -> dict:
        """A consistent copy of the run's state, history and latest samples. Reading one also
        asks the loop for fresh samples at the next ``snapshot_every_s``."""
        self._watched = True
        self._wanted.set()
        with self._lock:
            s = self._shared
            out = {"state": s.state, "message": s.message, "step": s.step, "seconds": s.seconds,
                   "history": [asdict(r) for r in s.history], "checkpoint": s.checkpoint,
                   "samples": None if s.samples is None else s.samples.copy(),
                   "sample_labels": s.sample_labels, "paused": not self._running.is_set(),
                   "saturation": _copy_saturation(s.saturation)}
        out["seconds_left"] = max(0.0, self.config.minutes * 60 - out["seconds"])
        return out

    def published_model(self) -> RowModel | None:
        """An eval-mode CPU copy of the latest published weights (never the live module)."""
        with self._lock:
            weights = self._shared.weights
        if weights is None:
            return None
        model = RowModel(self.model_config)
        model.load_state_dict(weights)
        return model.eval()

    @property
    def metrics_log(self) -> Path | None:
        """The JSON-lines log this run writes (``read_metrics_log`` reads it), or None."""
        c = self.config
        return metrics_log_path(c.out) if c.out and c.metrics_log else None

    # ---- what the training thread tells the others ----------------------------------------------
    def _set(self, **kw):
        with self._lock:
            for k, v in kw.items():
                setattr(self._shared, k, v)

    def _publish(self, model: RowModel):
        weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        with self._lock:
            self._shared.weights = weights

    def _append(self, rec: Record, log: MetricsLog | None, test: tuple | None, bar):
        with self._lock:
            self._shared.history.append(rec)
            self._shared.step, self._shared.seconds = rec.step, rec.seconds
        if log is not None:
            self._log(log, rec, test)
        self._show(bar, rec.step, rec.seconds, rec)

    @staticmethod
    def _log(log: MetricsLog, rec: Record, test: tuple | None):
        log.write({"step": rec.step, "seconds": rec.seconds, "wall_time": round(time.time(), 3),
                   "train_loss": rec.train_loss, "test_nll": rec.test_nll,
                   "test_images": test[1] if test and rec.test_nll is not None else None,
                   "val_nll": rec.val_nll, "images_per_s": rec.samples_per_s, "lr": rec.lr})

    def _progress_bar(self, budget: float, seconds: float, step: int):
        """tqdm over the steps when the run has a step limit, else over the seconds of the budget."""
        from tqdm import tqdm

        if self.config.max_steps:
            return tqdm(total=self.config.max_steps, initial=step, unit="step", desc=self.model_config.cell)
        return tqdm(total=round(budget), initial=round(seconds), unit="s", desc=self.model_config.cell)

    def _show(self, bar, step: int, seconds: float, rec: Record | None = None):
        """Move the progress bar to ``step`` (or ``seconds``), with the record's figures beside it."""
        if bar is None:
            return
        bar.n = min(step if self.config.max_steps else round(seconds), bar.total)
        if rec is None:
            bar.refresh()
            return
        bar.set_postfix(step=rec.step, loss=f"{rec.train_loss:.2f}", img_s=f"{rec.samples_per_s:.0f}",
                        **({"test_nll": f"{rec.test_nll:.2f}"} if rec.test_nll else {}),
                        **({"val_nll": f"{rec.val_nll:.2f}"} if rec.val_nll else {}))

    # ---- sample snapshots --------------------------------------------------------------------------
    @torch.no_grad()
    def _snapshot_samples(self, model: RowModel, step: int):
        self._wanted.clear()
        k = self.config.snapshot_count
        was = model.training
        model.eval()
        labels = torch.arange(k) % max(1, self.model_config.num_classes) if self.model_config.num_classes else None
        s = model.sample(k, y=labels, seed=step)
        saturation = self._saturation(model)
        model.train(was)
        with self._lock:
            self._shared.samples = s.images.float().cpu().numpy()
            self._shared.sample_labels = None if labels is None else labels.tolist()
            if saturation is not None:
                self._shared.saturation = saturation

    def _saturation_inputs(self, ds: Dataset, device: torch.device) -> tuple | None:
        """The fixed batch for the live gate saturation: the first test images, binarized with
        ``eval_seed``, and their true labels (None for an unconditional model or a VAE)."""
        n = min(self.config.saturation_images, len(ds.test))
        if not n:
            return None
        x = binarize_fixed(ds.test.images[:n], self.config.eval_seed).to(device)
        y = ds.test.labels[:n].to(device) if self.model_config.num_classes else None
        return x, y

    def _saturation(self, model: RowModel) -> dict | None:
        """Gate saturation of the top layer on the fixed batch (model in eval mode), or None."""
        if self._saturation_batch is None:
            return None
        x, y = self._saturation_batch
        return gate_saturation(model, x, y=y)
