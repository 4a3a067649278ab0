"""Training: a ``Trainer`` that runs in the foreground (CLI, also under torchrun) or in a background
thread (the app).

    python -m rnnviz.train --cell lstm --hidden 256 --layers 1 --minutes 60 \
        --out checkpoints/mnist_lstm.safetensors
    torchrun --standalone --nproc-per-node 2 -m rnnviz.train ... --out runs/ddp.safetensors

The loop: fresh Bernoulli binarization per batch, Adam with a short warm-up and a cosine decay over
the time (or step) budget, gradient clipping. About once a second it reads the loss (kept on the
device in between, so the loop never waits for a GPU), checks it for divergence and appends a
record to the history and to ``<out>.metrics.jsonl`` (``rnnviz.metrics_log``; TensorBoard with
``--tensorboard``). Every ``eval_every_s`` it scores a fixed-seed subset of the test set (exact
marginal), or with ``val_images`` that many held-out training images, and publishes a detached copy
of the weights; ``keep_best`` keeps the model with the lowest validation NLL beside the checkpoint
(early stopping that never looks at the test set, scored on it once at the end). When someone
reads ``snapshot()``, it draws a grid of samples and measures gate saturation on a fixed batch of test images
(``rnnviz.analysis.gate_saturation``) every ``snapshot_every_s``; a run nobody watches (the CLI)
does neither. The first checkpoint comes after ``first_checkpoint_s`` of training or
``first_checkpoint_steps`` steps, whichever is first, then one every ``checkpoint_every_min`` and
one at the end. A non-finite or exploding loss stops the run (the last good checkpoint stays).

Under torchrun (``rnnviz.distributed``) every worker runs this same loop on its own share of the
data (``DistributedDataParallel`` averages the gradients, so all hold the same weights); every
``sync_every`` steps they agree on rank 0's clock, a stop and whether to log; rank 0 alone
evaluates, snapshots, logs and writes checkpoints, which are the same files a single process
writes. ``--batch-size`` is per worker: the global batch is ``batch_size * world_size``, recorded
in the checkpoint as ``global_batch`` with ``world_size``.

Thread safety: ``start`` runs the loop in a daemon thread. ``pause``, ``resume`` and ``stop`` set
events that the loop checks between batches (a stop takes effect within one batch). Readers call
``snapshot()`` or ``published_model()``, which copy under a lock. Nothing here knows about Gradio.
"""

from __future__ import annotations

import argparse
import copy
import math
import signal
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checkpoint as ckpt
from .analysis import gate_saturation
from .data import (
    DEFAULT_EVAL_SEED,
    Dataset,
    binarize_fixed,
    hold_out,
    load_dataset,
    training_batches,
)
from .distributed import World, is_peer_failure
from .evaluate import evaluate, protocol
from .metrics_log import MetricsLog, beside, metrics_log_path, read_metrics_log
from .model import CELLS, ORDERS, ModelConfig, RowModel

__all__ = [
    "Record",
    "TrainConfig",
    "Trainer",
    "check_writable",
    "metrics_log_path",
    "read_metrics_log",
    "remove_orphan_temps",
    "thread_count",
]


@dataclass
class TrainConfig:
    dataset: str = "mnist"  # mnist, fashionmnist, kmnist, or a .npz path
    data_root: str | None = None
    batch_size: int = 64  # per worker under torchrun: the global batch is batch_size * world_size
    lr: float = 2e-3
    minutes: float = 60.0  # budget of training time (pauses excluded)
    max_steps: int = 0  # 0 = no step limit; else the schedule runs over whichever ends first
    warmup_steps: int = 200
    grad_clip: float = 1.0
    dropout: float = 0.0  # RowModel.dropout: recurrent output, between stacked layers, head hidden units; training only
    weight_decay: float = 0.0  # decoupled (AdamW-style): each step shrinks every weight by lr * weight_decay
    ema: float = 0.0  # weight averaging: decay of the moving average that is scored and saved (0 = off)
    eval_every_s: float = 120.0
    eval_images: int = 1000  # test images for the periodic evaluation (0 = all)
    val_images: int = 0  # hold out this many training images: the periodic evaluation scores them instead
    keep_best: bool = False  # with val_images: keep the lowest-validation-NLL model in <out>.best.safetensors
    final_eval: bool = True  # score the whole test set at the end
    snapshot_every_s: float = 10.0
    snapshot_count: int = 10
    saturation_images: int = 200  # test images for the live gate saturation (0 = off)
    checkpoint_every_min: float = 10.0
    first_checkpoint_s: float = 60.0  # the first checkpoint after this much training time ...
    first_checkpoint_steps: int = 200  # ... or this many steps of this run (0 = no step rule), whichever first
    out: str | None = None  # checkpoint path (.safetensors); the metrics log goes beside it
    metrics_log: bool = True  # write <out>.metrics.jsonl
    tensorboard: str | None = None  # also log to TensorBoard in this folder
    device: str = "auto"
    amp: str = "off"  # "bf16": autocast the forward pass in bfloat16 (CUDA, or CPU)
    threads: int = 0  # CPU threads for this run's own thread (0 = leave as they are)
    sync_every: int = 10  # DDP: steps between the workers' agreements (clock, stop, logging)
    seed: int = 0
    eval_seed: int = DEFAULT_EVAL_SEED
    free_bits: float = 0.0  # VAE only: KL floor per latent dimension, nats (0 = the plain ELBO)
    iw_samples: int = 100  # VAE only: importance samples per image in the final evaluation
    init_from: str | None = None  # start from this checkpoint's weights, widened to the model; fresh schedule

    def __post_init__(self):
        problems = []

        def whole(name, lo, hi):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi):
                problems.append(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")

        if not (isinstance(self.batch_size, int) and 1 <= self.batch_size <= 8192):
            problems.append(f"batch_size must be in [1, 8192], got {self.batch_size!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= 10):
            problems.append(f"lr must be in (0, 10], got {self.lr!r}")
        if not (isinstance(self.minutes, (int, float)) and math.isfinite(self.minutes) and self.minutes > 0):
            problems.append(f"minutes must be > 0, got {self.minutes!r}")
        if not (isinstance(self.max_steps, int) and self.max_steps >= 0):
            problems.append(f"max_steps must be an integer >= 0, got {self.max_steps!r}")
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            problems.append(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not (isinstance(self.weight_decay, (int, float)) and 0 <= self.weight_decay <= 1):
            problems.append(f"weight_decay must be in [0, 1], got {self.weight_decay!r}")
        if not (isinstance(self.ema, (int, float)) and 0 <= self.ema < 1):
            problems.append(f"ema must be in [0, 1), got {self.ema!r}")
        if not (isinstance(self.free_bits, (int, float)) and 0 <= self.free_bits <= 10):
            problems.append(f"free_bits must be in [0, 10], got {self.free_bits!r}")
        if not (isinstance(self.iw_samples, int) and 1 <= self.iw_samples <= 10000):
            problems.append(f"iw_samples must be an integer in [1, 10000], got {self.iw_samples!r}")
        if not (isinstance(self.saturation_images, int) and 0 <= self.saturation_images <= 10000):
            problems.append(f"saturation_images must be an integer in [0, 10000], got {self.saturation_images!r}")
        if not (isinstance(self.first_checkpoint_s, (int, float)) and self.first_checkpoint_s >= 0):
            problems.append(f"first_checkpoint_s must be >= 0, got {self.first_checkpoint_s!r}")
        whole("first_checkpoint_steps", 0, 10**9)
        whole("threads", 0, 1024)
        whole("sync_every", 1, 10**6)
        whole("val_images", 0, 10**7)
        if self.keep_best and not (self.val_images and self.out):
            problems.append("keep_best needs val_images > 0 (a validation set to pick by) and out (where to write)")
        if self.amp not in ("off", "bf16"):
            problems.append(f"amp must be 'off' or 'bf16', got {self.amp!r}")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))


def ema_decay(decay: float, step: int) -> float:
    """The weight average's decay at ``step`` (0-based): ``decay``, but (1 + step) / (10 + step)
    while that is lower, so that early on, and in a short run, the average follows the recent weights
    instead of holding on to the random start (TensorFlow's ExponentialMovingAverage with
    ``num_updates`` does the same). The average then spans about the last tenth of the steps until
    the full decay takes over (for 0.999 from step 8,990 on)."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * model, parameter by parameter."""
    for a, p in zip(average.parameters(), model.parameters()):
        a.lerp_(p.detach(), 1.0 - decay)


def check_writable(path: str) -> None:
    """Fail before training, not after an hour, when the checkpoint cannot be written."""
    folder = Path(path).resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".rnnviz-write-test-"):
            pass
    except OSError as e:
        raise OSError(f"cannot write checkpoints to {folder}: {e}") from None


def remove_orphan_temps(path: str) -> list[Path]:
    """Delete the temporary files a killed writer of ``path`` left behind (``save_checkpoint``
    writes ``.<name>.<random>.tmp`` in the same folder, then renames it). Only those of this
    checkpoint, only in its folder. Returns what was removed."""
    target = Path(path)
    removed = []
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            tmp.unlink()
            removed.append(tmp)
        except OSError:
            pass
    return removed


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _set_process_default_threads(n: int):
    # A thread reads the process-wide default once, lazily; a short-lived thread that sets it
    # changes only that default, not the count of any thread already running.
    t = threading.Thread(target=torch.set_num_threads, args=(n,), name="rnnviz-threads-default")
    t.start()
    t.join()


@contextmanager
def thread_count(n: int):
    """Run the body with ``n`` CPU threads for the calling thread only (0: change nothing).

    With this PyTorch (OpenMP backend) ``torch.set_num_threads`` sets the calling thread's own
    OpenMP and MKL counts, and also the process-wide default that threads read when they first
    use torch. So the trainer's thread sets its count and then puts the default back; the other
    threads (the app's main and worker threads) keep theirs, and threads started later get the
    default as before. At the end the calling thread gets its previous count back."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    _set_process_default_threads(before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


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
    """What the training thread writes and other threads read, always under ``Trainer._lock``."""

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


class _Objective(nn.Module):
    """The training loss as a module's forward, so that DistributedDataParallel sees each step."""

    def __init__(self, model: RowModel, free_bits: float):
        super().__init__()
        self.model, self.free_bits = model, free_bits

    def forward(self, x, y):
        return self.model.loss(x, y if self.model.config.num_classes else None, self.free_bits)


def _constant_buffers() -> dict:
    """DDP options that skip re-sending buffers at every step (the model's only one is constant);
    newer PyTorch names the option ``forward_sync_buffers``."""
    import inspect

    from torch.nn.parallel import DistributedDataParallel

    params = inspect.signature(DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}


_BF16_RNN: dict[str, bool] = {}


def cpu_runs_bf16_rnn(cell: str = "lstm") -> bool:
    """Whether this CPU runs ``cell`` under a bf16 autocast (oneDNN builds one only on CPUs with
    AVX512-BF16 or AMX, and raises elsewhere): a tiny forward and backward, tried once per process."""
    if cell not in _BF16_RNN:
        try:
            rnn = CELLS[cell](4, 4, batch_first=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out, _ = rnn(torch.ones(2, 3, 4))
            out.float().sum().backward()
            _BF16_RNN[cell] = out.dtype == torch.bfloat16 and all(
                p.grad is not None and torch.isfinite(p.grad).all() for p in rnn.parameters())
        except RuntimeError:
            _BF16_RNN[cell] = False
    return _BF16_RNN[cell]


def _recurrent_layer_in_float32(model: RowModel):
    """Keep the recurrent layer out of a CPU bf16 autocast where the CPU has no bf16 version of it
    (``cpu_runs_bf16_rnn``). The head's matmuls still autocast."""
    before = []
    try:  # PyTorch >= 2.4 takes the device type; older ones have the CPU-only names
        torch.is_autocast_enabled("cpu")
        is_on, set_on = (lambda: torch.is_autocast_enabled("cpu")), (lambda on: torch.set_autocast_enabled("cpu", on))
    except TypeError:
        is_on, set_on = torch.is_autocast_cpu_enabled, torch.set_autocast_cpu_enabled

    def enter(module, args):
        before.append(is_on())
        set_on(False)
        return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)

    def leave(module, args, out):
        set_on(before.pop())

    model.rnn.register_forward_pre_hook(enter)
    model.rnn.register_forward_hook(leave)


class _Tally:
    """The loss since the last record, summed on the device so that a step never waits for it."""

    def __init__(self, device: torch.device, diverged_above: float):
        self.device, self.diverged_above = device, diverged_above
        self.reset()

    def reset(self):
        self.sums = torch.zeros(2, dtype=torch.float64, device=self.device)  # loss sum, worst loss
        self.steps = self.images = 0

    def add(self, loss: torch.Tensor, images: int):
        loss = loss.detach().double()
        self.sums[0] += loss
        self.sums[1] = torch.maximum(self.sums[1], loss)  # NaN propagates
        self.steps += 1
        self.images += images

    def read(self, world: World) -> tuple[float, bool, int]:
        """(mean loss per image, diverged?, images) over every worker; one host sync."""
        s = self.sums
        bad = (~torch.isfinite(s[1]) | (s[1] > self.diverged_above) | ~torch.isfinite(s[0])).double()
        v = torch.stack([s[0], bad, torch.tensor(float(self.steps), dtype=torch.float64, device=self.device),
                         torch.tensor(float(self.images), dtype=torch.float64, device=self.device)])
        total, bad, steps, images = world.sum_(v).tolist()
        self.reset()
        return total / max(steps, 1), bad > 0, int(images)


class Trainer:
    def __init__(self, model_config: ModelConfig, config: TrainConfig, dataset: Dataset | None = None,
                 resume: str | None = None, world: World | None = None):
        self.model_config = model_config
        self.config = config
        self.dataset = dataset
        self.resume_path = resume
        self.world = world or World()  # one process unless torchrun started us (see main)
        self._lock = threading.Lock()
        self._shared = _Shared()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._wanted = threading.Event()  # a reader asked for a snapshot since the last one
        self._watched = False  # anyone ever read one: then the run ends with a final snapshot
        self._thread: threading.Thread | None = None
        self._saturation_batch: tuple | None = None  # (images, labels) for the live gate saturation
        self._origin: dict | None = None  # where the weights started, when they came from --init-from

    # ---- control (any thread) -----------------------------------------------------------------
    def start(self) -> Trainer:
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

    # ---- the loop (training thread) -----------------------------------------------------------
    def _set(self, **kw):
        with self._lock:
            for k, v in kw.items():
                setattr(self._shared, k, v)

    def _publish(self, model: RowModel):
        weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        with self._lock:
            self._shared.weights = weights

    def _run_safely(self):
        try:
            self.run()
        except Exception as e:  # report, never kill the host process
            self._set(state="failed", message=f"training failed: {type(e).__name__}: {e}")

    def _lr(self, step: int, progress: float) -> float:
        c = self.config
        warm = min(1.0, (step + 1) / max(1, c.warmup_steps))
        return c.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    def run(self, progress_bar: bool = False) -> dict:
        """Train until the budget is spent or ``stop()``; returns the final metrics.
        ``config.threads`` applies to the calling thread alone, for the length of the run."""
        with thread_count(self.config.threads):
            return self._train(progress_bar)

    def _data(self) -> Dataset:
        if self.dataset is None:
            self._set(message="loading data")
            self.dataset = load_dataset(self.config.dataset, self.config.data_root)
        ds = self.dataset
        if ds.shape != (self.model_config.height, self.model_config.width):
            raise ValueError(f"dataset images are {ds.shape}, the model expects "
                             f"{(self.model_config.height, self.model_config.width)}")
        return ds

    def _resume(self, model: RowModel, opt) -> tuple[int, float, int, RowModel | None]:
        """Load weights and optimizer from ``resume`` (any world size); (step, seconds, images, the
        file's model: with weight averaging the average, else the training weights)."""
        if not self.resume_path:
            return 0, 0.0, 0, None
        loaded, meta = ckpt.load_state(self.resume_path)
        if loaded.config != self.model_config:
            raise ValueError(f"{self.resume_path} holds a {loaded.config}, not {self.model_config}")
        if not ckpt.load_training_weights(self.resume_path, model):  # else model.* were the training weights
            model.load_state_dict(loaded.state_dict())
        ckpt.load_optimizer_state(self.resume_path, opt)
        for g in opt.param_groups:  # the file's groups carry the saved run's settings: this run's apply
            g.update(weight_decay=float(self.config.weight_decay), decoupled_weight_decay=True)
        m = meta["metrics"]
        self._origin = m.get("init_from") if isinstance(m.get("init_from"), dict) else None
        step = int(m.get("step", 0))
        batch = m.get("global_batch") or (m.get("train_config") or {}).get("batch_size", 0)
        return step, float(m.get("train_seconds", 0.0)), int(m.get("train_images", step * batch)), loaded

    def _init_weights(self, model: RowModel):
        """``init_from``: copy a checkpoint's weights into ``model``, widened where the model has
        more units (``RowModel.widened``: the same function to start with). The optimizer and the
        schedule start fresh; the checkpoint records where the weights came from."""
        c, mc = self.config, self.model_config
        if not c.init_from or self.resume_path:
            return
        source, meta = ckpt.load_state(c.init_from)
        sc = source.config
        fixed = [k for k in mc.to_dict() if k not in ("hidden", "head_hidden") and getattr(mc, k) != getattr(sc, k)]
        if fixed or mc.hidden < sc.hidden or mc.head_hidden < sc.head_hidden:
            raise ValueError(f"cannot start a {mc} from {c.init_from}, a {sc}: only hidden and head_hidden "
                             f"may differ, and only upwards" + (f" (differs in {', '.join(fixed)})" if fixed else ""))
        model.load_state_dict(source.widened(mc.hidden, mc.head_hidden, seed=c.seed).state_dict())
        m = meta["metrics"]
        self._origin = {"file": Path(c.init_from).name, "hidden": sc.hidden, "head_hidden": sc.head_hidden,
                        "step": m.get("step"), "train_seconds": m.get("train_seconds"), "test_nll": m.get("test_nll"),
                        **({"init_from": m["init_from"]} if isinstance(m.get("init_from"), dict) else {})}

    def _batches(self, ds: Dataset, step: int, device: torch.device):
        w = self.world
        return training_batches(ds.train, self.config.batch_size, self.config.seed, step, w.rank, w.size, device)

    def _train(self, progress_bar: bool) -> dict:
        c, mc, w = self.config, self.model_config, self.world
        device = w.device or pick_device(c.device)
        ds = self._data()
        if c.out and w.main:
            check_writable(c.out)
            remove_orphan_temps(c.out)
            if c.keep_best and not self.resume_path:  # a new run: an old run's best is not this one's
                self.best_path().unlink(missing_ok=True)
        torch.manual_seed(c.seed)
        model = RowModel(mc).to(device)
        self._init_weights(model)
        model.dropout = float(c.dropout)
        opt = torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay, decoupled_weight_decay=True)
        step, seconds, images, saved = self._resume(model, opt)
        start_step, start_seconds = step, seconds
        average = self._average(model, saved) if w.main and c.ema else None
        shown = average if average is not None else model  # what is scored, sampled and saved
        objective = _Objective(model, c.free_bits)
        if w.distributed:
            from torch.nn.parallel import DistributedDataParallel

            objective = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None,
                                                **_constant_buffers())
            torch.manual_seed(c.seed * 1_000_003 + step + w.rank + 1)  # each worker its own VAE noise
        if c.amp == "bf16" and device.type == "cpu" and not cpu_runs_bf16_rnn(mc.cell):
            _recurrent_layer_in_float32(model)
        autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=c.amp == "bf16")
        model.train()
        val = None  # the held-out training images: scored by the periodic evaluation, never trained on
        if c.val_images:
            train_split, val = hold_out(ds.train, c.val_images, c.seed)
            ds = replace(ds, train=train_split)
        best = self._best_so_far() if c.keep_best and w.main else math.inf
        data = self._batches(ds, step, device)
        log = None
        if w.main:
            self._publish(model)
            self._saturation_batch = self._saturation_inputs(ds, device)
            log = MetricsLog(self.metrics_log, c.tensorboard, resume_step=step if self.resume_path else None)
        eval_images = val.images if val is not None else ds.test.images[:c.eval_images] if c.eval_images else ds.test.images
        budget = c.minutes * 60
        uniform = mc.height * mc.width * math.log(2)
        tally = _Tally(device, diverged_above=4 * uniform)  # far worse than guessing every pixel
        every = c.sync_every if w.distributed else 1
        last_eval, last_snap, last_ckpt = seconds, None, None
        last_test = None  # (NLL, images) of the latest periodic evaluation
        self._set(step=step, seconds=seconds, message="training")
        bar = self._progress_bar(budget, seconds, step) if progress_bar and w.main else None
        final_state, message = "finished", "finished"
        clock, stop, lr, local_failure = seconds, False, c.lr, False  # clock: the time all workers agree on
        t_rec = t_last = time.perf_counter()
        while True:
            if not self._running.is_set():
                self._set(state="paused", message="paused")
                self._running.wait()
                t_last = time.perf_counter()
                self._set(state="running", message="training")
            if stop or (not w.distributed and self._stop.is_set()):
                final_state, message = "stopped", "stopped by request"
                break
            progress = max(clock / budget, step / c.max_steps if c.max_steps else 0.0)
            if progress >= 1.0:
                break
            lr = self._lr(step, progress)
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = next(data)
            with autocast:
                obj, loss = objective(x, y)
            opt.zero_grad(set_to_none=True)
            obj.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
            opt.step()
            if average is not None:
                update_average(average, model, ema_decay(c.ema, step))
            step += 1
            images += len(x) * w.size
            tally.add(loss, len(x))
            now = time.perf_counter()
            seconds += now - t_last
            t_last = now
            if step % every:
                continue

            # ---- a control point: every step in one process, every sync_every steps under DDP --
            due_eval = w.main and seconds - last_eval >= c.eval_every_s
            due_ckpt = w.main and bool(c.out) and (
                seconds - last_ckpt >= c.checkpoint_every_min * 60 if last_ckpt is not None else
                seconds - start_seconds >= min(c.first_checkpoint_s, c.checkpoint_every_min * 60)
                or 0 < c.first_checkpoint_steps <= step - start_step)
            due_snap = w.main and self._wanted.is_set() and (
                last_snap is None or seconds - last_snap >= c.snapshot_every_s)
            due_record = w.main and (now - t_rec >= 1.0 or due_eval or due_ckpt)
            clock, stops, records = w.sum_cpu([seconds if w.main else 0.0, float(self._stop.is_set()),
                                               float(due_record)])
            clock, stop = (clock, stops > 0) if w.distributed else (seconds, stop)
            busy = False  # did rank 0 spend time on something other than training here?
            if records:
                mean, diverged, seen = tally.read(w)
                if diverged:
                    final_state, message = "failed", self._diverged_message(step, mean, uniform)
                    break
                if w.main:
                    rec = Record(step, round(seconds, 2), mean, seen / max(now - t_rec, 1e-9), lr)
                    if due_eval:
                        score = evaluate(shown, eval_images, c.eval_seed, device=device)
                        if val is None:
                            rec.test_nll, last_test = score, (round(score, 3), len(eval_images))
                        else:
                            rec.val_nll = score
                        if c.keep_best and score < best:  # keep_best implies a validation set
                            best = score
                            try:
                                self._save_best(shown, {**self._progress(step, seconds, images),
                                                        "val_nll": round(best, 3)})
                            except OSError as e:
                                final_state, message = "failed", f"could not write {self.best_path()}: {e}; stopped"
                                local_failure = w.distributed
                                break
                        self._publish(shown)
                        last_eval, busy = seconds, True
                    self._append(rec, log, last_test if due_eval else None, bar)
                    t_rec = time.perf_counter()
                if due_ckpt:
                    try:
                        self._save(model, opt, self._progress(step, seconds, images), average)
                    except OSError as e:
                        final_state, message = "failed", f"could not write checkpoint {c.out}: {e}; stopped"
                        local_failure = w.distributed  # the other workers learn of it when this one leaves
                        break
                    last_ckpt, busy = seconds, True
            if due_snap:
                self._snapshot_samples(shown, device, step)
                last_snap, busy = seconds, True
            if busy:
                t_last = time.perf_counter()  # evaluation, checkpoint and snapshot time is not training time

        final = None
        if tally.steps and not local_failure:  # the batches since the last record (every worker's)
            mean, diverged, seen = tally.read(w)
            final = Record(step, round(seconds, 2), mean, seen / max(time.perf_counter() - t_rec, 1e-9), lr)
            if diverged and final_state != "failed":
                final_state, message = "failed", self._diverged_message(step, mean, uniform)
        metrics = self._progress(step, seconds, images)
        if w.main:
            if final is not None:
                with self._lock:
                    self._shared.history.append(final)
            if final_state != "failed":
                self._publish(shown)
                if self._watched:
                    self._snapshot_samples(shown, device, step)
                if c.final_eval:
                    self._set(message="final evaluation on the test set")
                    last_test = (round(evaluate(shown, ds.test.images, c.eval_seed, device=device,
                                                samples=c.iw_samples), 3), len(ds.test))
                    metrics["test_nll_protocol"] = protocol(mc, c.iw_samples)
                if c.keep_best and c.final_eval and self.best_path().exists():
                    self._score_best(ds, device)
                if last_test is not None:  # the whole test set if final_eval, else the last periodic subset
                    metrics["test_nll"], metrics["test_images"] = last_test
                    with self._lock:
                        if self._shared.history:
                            self._shared.history[-1].test_nll = last_test[0]
                if c.out:
                    try:
                        self._save(model, opt, metrics, average)
                    except OSError as e:
                        final_state, message = "failed", f"could not write checkpoint {c.out}: {e}"
            if log is not None:
                if final is None and c.final_eval and last_test is not None and self._shared.history:
                    final = self._shared.history[-1]  # the last record was at the last step: log its final score
                if final is not None:
                    self._log(log, final, last_test if final.test_nll is not None else None)
                log.close()
        if bar is not None:
            bar.close()
        self._set(state=final_state, message=message, step=step, seconds=seconds)
        return metrics

    # ---- pieces of the loop -------------------------------------------------------------------
    def _progress(self, step: int, seconds: float, images: int) -> dict:
        w = self.world
        return {"step": step, "train_seconds": round(seconds, 1), "train_images": images,
                "world_size": w.size, "global_batch": self.config.batch_size * w.size}

    def _diverged_message(self, step: int, loss: float, uniform: float) -> str:
        c = self.config
        return (f"diverged at step {step}: loss {loss:.4g} nats/image (a uniform guess is {uniform:.0f}); "
                f"learning rate {c.lr} may be too high. Stopped; "
                + (f"the last good checkpoint {c.out} is kept" if self._shared.checkpoint
                   else "no checkpoint was written"))

    def _progress_bar(self, budget: float, seconds: float, step: int):
        """tqdm over the steps when the run has a step limit, else over the seconds of the budget."""
        from tqdm import tqdm

        if self.config.max_steps:
            return tqdm(total=self.config.max_steps, initial=step, unit="step", desc=self.model_config.cell)
        return tqdm(total=round(budget), initial=round(seconds), unit="s", desc=self.model_config.cell)

    def _append(self, rec: Record, log: MetricsLog | None, test: tuple | None, bar):
        with self._lock:
            self._shared.history.append(rec)
            self._shared.step, self._shared.seconds = rec.step, rec.seconds
        if log is not None:
            self._log(log, rec, test)
        if bar is not None:
            bar.n = min(rec.step if self.config.max_steps else round(rec.seconds), bar.total)
            bar.set_postfix(step=rec.step, loss=f"{rec.train_loss:.2f}", img_s=f"{rec.samples_per_s:.0f}",
                            **({"test_nll": f"{rec.test_nll:.2f}"} if rec.test_nll else {}),
                            **({"val_nll": f"{rec.val_nll:.2f}"} if rec.val_nll else {}))

    @staticmethod
    def _log(log: MetricsLog, rec: Record, test: tuple | None):
        log.write({"step": rec.step, "seconds": rec.seconds, "wall_time": round(time.time(), 3),
                   "train_loss": rec.train_loss, "test_nll": rec.test_nll,
                   "test_images": test[1] if test and rec.test_nll is not None else None,
                   "val_nll": rec.val_nll, "images_per_s": rec.samples_per_s, "lr": rec.lr})

    # ---- early stopping on held-out training images ------------------------------------------
    def best_path(self) -> Path:
        """``keep_best``'s file beside the checkpoint: ``x.safetensors`` -> ``x.best.safetensors``."""
        return beside(self.config.out, ".best.safetensors")

    def _best_so_far(self) -> float:
        """The validation NLL to beat: a resumed run's best file's, else infinity."""
        if not (self.resume_path and self.best_path().exists()):
            return math.inf
        try:
            v = ckpt.read_metadata(self.best_path())["metrics"].get("val_nll")
        except ckpt.CheckpointError:
            return math.inf
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.inf

    def _save_best(self, model: RowModel, progress: dict):
        """The model with the lowest validation NLL so far, alone (nothing to resume from): the run
        stopped early at its best, without looking at the test set."""
        metrics = self._metrics(model, {"val_images": self.config.val_images,
                                        "selected_by": "lowest validation NLL of the run's periodic evaluations",
                                        **progress})
        ckpt.save_checkpoint(self.best_path(), model, metrics)

    def _score_best(self, ds: Dataset, device):
        """The final evaluation of the best file: the whole test set, recorded in the file."""
        c = self.config
        self._set(message="final evaluation of the best model on the test set")
        model, meta = ckpt.load_state(self.best_path())
        metrics = meta["metrics"]
        metrics["test_nll"] = round(evaluate(model.to(device), ds.test.images, c.eval_seed, device=device,
                                             samples=c.iw_samples), 3)
        metrics["test_images"] = len(ds.test)
        metrics["test_nll_protocol"] = protocol(self.model_config, c.iw_samples)
        ckpt.save_checkpoint(self.best_path(), model.cpu(), metrics)

    def _average(self, model: RowModel, saved: RowModel | None) -> RowModel:
        """Polyak averaging (``ema``): an exponential moving average of the weights, updated after
        every step on the main worker. Late in a run the weights jitter around a minimum; their
        average sits nearer to it. The average is what is scored, sampled and saved as the model;
        the training weights go beside it in the checkpoint, so ``--resume`` continues both
        (``saved``: the resumed file's model, where the average goes on from). Its decay per step is
        ``ema_decay``."""
        average = copy.deepcopy(model).requires_grad_(False)
        if saved is not None:  # go on averaging from the saved average, not from a copy
            average.load_state_dict(saved.state_dict())
        return average

    def _metrics(self, model: RowModel, progress: dict) -> dict:
        """What every checkpoint of this run records, with ``progress`` (step, time, scores) last."""
        c = self.config
        return {"dataset": self.dataset.name, "binarization": "dynamic (fresh Bernoulli per batch)",
                "eval_binarization_seed": c.eval_seed, "test_nll": None,
                "test_nll_protocol": protocol(self.model_config),
                "train_config": asdict(c), "hardware": ckpt.environment(),
                "parameters": model.num_parameters(), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                **({"init_from": self._origin} if self._origin else {}), **progress}

    def _save(self, model, opt, progress: dict, average: RowModel | None = None):
        """Checkpoint with ``progress`` (step, train_seconds, test_nll and test_images if known).
        With weight averaging the file's model is the average and ``model`` goes beside it."""
        c = self.config
        metrics = self._metrics(model, progress)
        if average is None:
            ckpt.save_checkpoint(c.out, model, metrics, optimizer=opt)
        else:
            ckpt.save_checkpoint(c.out, average, metrics, optimizer=opt, training=model)
        self._set(checkpoint=str(c.out))

    @torch.no_grad()
    def _snapshot_samples(self, model, device, step):
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

    def _saturation_inputs(self, ds: Dataset, device) -> tuple | None:
        """The fixed batch for the live gate saturation: the first test images, binarized with
        ``eval_seed``, and their true labels (None for an unconditional model or a VAE)."""
        n = min(self.config.saturation_images, len(ds.test))
        if not n:
            return None
        x = binarize_fixed(ds.test.images[:n], self.config.eval_seed).to(device)
        y = ds.test.labels[:n].to(device) if self.model_config.num_classes else None
        return x, y

    def _saturation(self, model) -> dict | None:
        """Gate saturation of the top layer on the fixed batch (model in eval mode), or None."""
        if self._saturation_batch is None:
            return None
        x, y = self._saturation_batch
        return gate_saturation(model, x, y=y)


# ---- command line ---------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description="Train a row-by-row recurrent image model "
                                             "(under torchrun: one model on every worker, with DDP).")
    ap.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--head-hidden", type=int, default=512)
    ap.add_argument("--order", choices=list(ORDERS), default="rows",
                    help="scan order: rows top-down left-right (rows), bottom-up (_bu), right-left (_rl), or by columns")
    ap.add_argument("--unconditional", action="store_true", help="no class conditioning")
    ap.add_argument("--latent", type=int, default=0,
                    help="train a VAE: a CNN encoder gives a z of this size to the decoder (implies --unconditional)")
    ap.add_argument("--free-bits", type=float, default=0.0, help="VAE: KL floor per latent dimension, nats")
    ap.add_argument("--iw-samples", type=int, default=100, help="VAE: importance samples in the final evaluation")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-root", default=None, help="folder holding MNIST/ (default: $RNNVIZ_DATA or ./data)")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64,
                    help="images per step per worker (under torchrun the global batch is this x the world size)")
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--ema", type=float, default=0.0, metavar="DECAY",
                    help="score and save a moving average of the weights with this decay per step, e.g. 0.999 "
                         "(lower during the first steps: see ema_decay)")
    ap.add_argument("--weight-decay", type=float, default=0.0, metavar="WD",
                    help="decoupled weight decay (AdamW): every step shrinks each weight by lr x WD, e.g. 0.01")
    ap.add_argument("--dropout", type=float, default=0.0,
                    help="drop this fraction of the recurrent output, of what stacked layers pass on, and of the head's "
                         "hidden units while training")
    ap.add_argument("--eval-every", type=float, default=120.0, help="seconds")
    ap.add_argument("--val-images", type=int, default=0, metavar="N",
                    help="hold out N training images (seeded): the periodic evaluation scores them, not test images")
    ap.add_argument("--keep-best", action="store_true",
                    help="with --val-images: keep the model with the lowest validation NLL in OUT's .best.safetensors "
                         "(scored on the test set at the end)")
    ap.add_argument("--checkpoint-every", type=float, default=10.0, help="minutes")
    ap.add_argument("--first-checkpoint-steps", type=int, default=200,
                    help="the first checkpoint after this many steps or one minute, whichever is first")
    ap.add_argument("--no-final-eval", action="store_true", help="skip scoring the whole test set at the end")
    ap.add_argument("--out", required=True, help="checkpoint path, e.g. checkpoints/mnist_lstm.safetensors")
    ap.add_argument("--resume", default=None, help="checkpoint to continue from (weights, optimizer, step; "
                                                   "any world size)")
    ap.add_argument("--init-from", default=None, metavar="CHECKPOINT",
                    help="start from this checkpoint's weights, widened to --hidden/--head-hidden where those are "
                         "larger (the same function to start with); a fresh optimizer and schedule")
    ap.add_argument("--device", default="auto", help="auto, cpu or cuda (under torchrun: cuda:LOCAL_RANK)")
    ap.add_argument("--amp", choices=["off", "bf16"], default="off", help="bf16 autocast of the forward pass")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = PyTorch's default; torchrun sets 1)")
    ap.add_argument("--tensorboard", default=None, metavar="DIR", help="also log the metrics to TensorBoard here")
    ap.add_argument("--sync-every", type=int, default=10, help="DDP: steps between the workers' agreements")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def _last_checkpoint(out: str) -> str:
    """'<out> (step N)' if a loadable checkpoint is there, else a sentence saying there is none."""
    try:
        step = ckpt.read_metadata(out)["metrics"].get("step")
        return f"the last checkpoint, {out} (step {step}), is kept and loads; continue with --resume {out}"
    except (ckpt.CheckpointError, OSError):
        return f"no checkpoint was written to {out}"


def _leave(text: str):
    """End a torchrun worker with ``text``, printed at once: torchrun's SIGTERM may follow within
    a fraction of a second, and a message left for the interpreter's exit would be lost."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print("\n" + text, file=sys.stderr, flush=True)  # after the progress bar's line
    raise SystemExit(1)


def _stop_on_sigterm(world: World, out: str):
    """torchrun ends every worker with SIGTERM when one of them fails: say so, and leave cleanly
    (a checkpoint being written is abandoned, the previous file stays)."""
    def handler(signum, frame):
        _leave(f"rank {world.rank}/{world.size}: stopped by torchrun (another worker failed or the job "
               f"was cancelled); {_last_checkpoint(out)}")

    signal.signal(signal.SIGTERM, handler)


def main(argv=None):
    args = _parser().parse_args(argv)
    world = World()
    try:
        world = World.from_env()
        mc = ModelConfig(cell=args.cell, hidden=args.hidden, layers=args.layers, head_hidden=args.head_hidden,
                         num_classes=0 if args.unconditional or args.latent else 10, latent=args.latent,
                         order=args.order)
        tc = TrainConfig(dataset=args.dataset, data_root=args.data_root, batch_size=args.batch_size, lr=args.lr,
                         minutes=args.minutes, max_steps=args.max_steps, eval_every_s=args.eval_every,
                         checkpoint_every_min=args.checkpoint_every, first_checkpoint_steps=args.first_checkpoint_steps,
                         final_eval=not args.no_final_eval, out=args.out, device=args.device, amp=args.amp,
                         threads=args.threads, tensorboard=args.tensorboard, sync_every=args.sync_every,
                         seed=args.seed, free_bits=args.free_bits, iw_samples=args.iw_samples,
                         init_from=args.init_from, dropout=args.dropout, weight_decay=args.weight_decay, ema=args.ema,
                         val_images=args.val_images, keep_best=args.keep_best)
        if args.init_from and args.resume:
            raise ValueError("give --resume (continue a run) or --init-from (start a new one from its weights), not both")
        if world.distributed:
            _stop_on_sigterm(world, args.out)
            world.start(args.device)
        trainer = Trainer(mc, tc, resume=args.resume, world=world)
        try:
            metrics = trainer.run(progress_bar=True)
        finally:
            world.close()
    except (ValueError, OSError, RuntimeError) as e:
        if world.distributed and is_peer_failure(e):
            _leave(f"rank {world.rank}/{world.size}: another worker stopped, so the run ends here "
                   f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); {_last_checkpoint(args.out)}")
        raise SystemExit(f"error: {e}")
    snap = trainer.snapshot()
    if world.main:
        print(f"{snap['state']}: {snap['message']}; step {metrics['step']}, "
              f"{metrics['train_seconds']:.0f} s, test NLL {metrics.get('test_nll')}"
              + (f", {world.size} workers, global batch {metrics['global_batch']}" if world.distributed else ""))
        best = trainer.best_path() if tc.keep_best else None
        if best is not None and best.exists():
            m = ckpt.read_metadata(best)["metrics"]
            print(f"best: {best} (step {m.get('step')}, validation NLL {m.get('val_nll')}, test NLL {m.get('test_nll')})")
    if snap["state"] == "failed":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
