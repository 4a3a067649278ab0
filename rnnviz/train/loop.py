"""``Trainer``: the training loop, in the foreground (CLI, also under torchrun) or in a background
thread (the app; ``RunStatus`` is what other threads call).

The loop: fresh Bernoulli binarization per batch, Adam with a short warm-up and a cosine decay over
the time (or step) budget, gradient clipping. About once a second it reads the loss (kept on the
device in between, so the loop never waits for a GPU), checks it for divergence and appends a
record to the history and to ``<out>.metrics.jsonl`` (``rnnviz.metrics_log``; TensorBoard with
``--tensorboard``). Every ``eval_every_s`` it scores a fixed-seed subset of the test set (exact
marginal), or with ``val_images`` that many held-out training images, and publishes a detached copy
of the weights; ``keep_best`` keeps the model with the lowest validation NLL beside the checkpoint
(early stopping that never looks at the test set, scored on it once at the end). When someone
reads ``snapshot()``, it draws a grid of samples and measures gate saturation on a fixed batch of
test images (``rnnviz.analysis.gate_saturation``) every ``snapshot_every_s``; a run nobody watches
(the CLI) does neither. The first checkpoint comes after ``first_checkpoint_s`` of training or
``first_checkpoint_steps`` steps, whichever is first, then one every ``checkpoint_every_min`` and
one at the end. A non-finite or exploding loss stops the run (the last good checkpoint stays).

Under torchrun (``rnnviz.distributed``) every worker runs this same loop on its own share of the
data (``DistributedDataParallel`` averages the gradients, so all hold the same weights); every
``sync_every`` steps they agree on rank 0's clock, a stop and whether to log; rank 0 alone
evaluates, snapshots, logs and writes checkpoints, which are the same files a single process
writes. ``--batch-size`` is per worker: the global batch is ``batch_size * world_size``, recorded
in the checkpoint as ``global_batch`` with ``world_size``.

A run is ``_setup``, then ``_loop`` (wait out a pause, end when asked or when the budget is spent,
``_step``, and at every ``_control_point`` record, ``_evaluate``, checkpoint and snapshot when
due), then ``_finish`` (the final record, evaluation and checkpoint).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn

from .. import checkpoint as ckpt
from ..data import Dataset, Split, hold_out, load_dataset, training_batches
from ..distributed import World
from ..evaluate import evaluate, protocol
from ..metrics_log import MetricsLog
from ..model import ModelConfig, RowModel
from .averaging import ema_decay, start_average, update_average
from .config import TrainConfig
from .files import RunFiles, best_path, check_writable, grow_from, remove_orphan_temps
from .hardware import Objective, Tally, autocast_for, distributed, pick_device, thread_count
from .status import Record, RunStatus


class Stopwatch:
    """Training time: the wall time between laps, less what ``skip`` leaves out (pauses, and the
    time spent evaluating, checkpointing and drawing snapshots)."""

    def __init__(self, seconds: float = 0.0):
        self.seconds = seconds
        self.mark = time.perf_counter()

    def lap(self) -> float:
        """Count the time since the last mark as training; returns now."""
        now = time.perf_counter()
        self.seconds += now - self.mark
        self.mark = now
        return now

    def skip(self):
        """Leave the time since the last mark out of the training time."""
        self.mark = time.perf_counter()


class _Ended(Exception):
    """How the loop ended: "finished", "stopped" or "failed", with a message; ``alone``: a failure of
    this worker only (under DDP the others learn of it when it leaves, so no more collectives)."""

    def __init__(self, state: str, message: str | None = None, alone: bool = False):
        super().__init__(message or state)
        self.state, self.message, self.alone = state, message or state, alone


@dataclass
class _Run:
    """One run's state from ``_setup`` to ``_finish``."""

    device: torch.device
    ds: Dataset  # less the held-out images
    val: Split | None  # held-out training images: scored by the periodic evaluation, never trained on
    eval_images: torch.Tensor  # what the periodic evaluation scores
    model: RowModel  # the training weights
    average: RowModel | None  # their moving average (ema), on the main worker
    opt: torch.optim.Optimizer
    objective: nn.Module  # the loss, wrapped in DDP when distributed
    autocast: torch.autocast
    data: Iterator
    files: RunFiles
    log: MetricsLog | None
    bar: object | None  # tqdm
    tally: Tally
    watch: Stopwatch
    step: int
    images: int
    start_step: int
    start_seconds: float
    best: float  # the lowest validation NLL so far (keep_best)
    clock: float  # the training time all workers agree on
    lr: float
    now: float = 0.0  # when the latest step ended
    t_rec: float = 0.0  # when the latest record was made
    stop: bool = False  # all workers agreed to stop (DDP)
    last_eval: float = 0.0
    last_ckpt: float | None = None
    last_snap: float | None = None
    last_test: tuple | None = None  # (NLL, images) of the latest test-set evaluation

    @property
    def shown(self) -> RowModel:
        """What is scored, sampled and saved: the average with weight averaging, else the model."""
        return self.average if self.average is not None else self.model

    @property
    def seconds(self) -> float:
        return self.watch.seconds


class Trainer(RunStatus):
    def __init__(self, model_config: ModelConfig, config: TrainConfig, dataset: Dataset | None = None,
                 resume: str | None = None, world: World | None = None):
        super().__init__(model_config, config)
        self.dataset = dataset
        self.resume_path = resume
        self.world = world or World()  # one process unless torchrun started us (see __main__)
        self._origin: dict | None = None  # where the weights started, when they came from --init-from

    def best_path(self) -> Path:
        """``keep_best``'s file beside the checkpoint: ``x.safetensors`` -> ``x.best.safetensors``."""
        return best_path(self.config.out)

    def run(self, progress_bar: bool = False) -> dict:
        """Train until the budget is spent or ``stop()``; returns the final metrics.
        ``config.threads`` applies to the calling thread alone, for the length of the run."""
        with thread_count(self.config.threads):
            r = self._setup(progress_bar)
            return self._finish(r, self._loop(r))

    def _loop(self, r: _Run) -> _Ended:
        """Step until the run ends; a control point after every step (every ``sync_every`` under DDP)."""
        every = self.config.sync_every if self.world.distributed else 1
        try:
            while True:
                self._wait_while_paused(r)
                self._step(r, self._progress(r))
                if r.step % every == 0:
                    self._control_point(r)
        except _Ended as end:
            return end

    # ---- setup --------------------------------------------------------------------------------
    def _setup(self, progress_bar: bool) -> _Run:
        c, w = self.config, self.world
        device = w.device or pick_device(c.device)
        ds = self._data()
        if c.out and w.main:
            check_writable(c.out)
            remove_orphan_temps(c.out)
            if c.keep_best and not self.resume_path:  # a new run: an old run's best is not this one's
                self.best_path().unlink(missing_ok=True)
        model, opt, objective, average, (step, seconds, images) = self._build(device)
        autocast = autocast_for(model, device, c.amp)
        model.train()
        val = None
        if c.val_images:
            train_split, val = hold_out(ds.train, c.val_images, c.seed)
            ds = replace(ds, train=train_split)
        files = RunFiles(self.model_config, c, ds.name, self._origin)
        best = files.best_so_far(bool(self.resume_path)) if c.keep_best and w.main else math.inf
        data = self._batches(ds, step, device)
        log = None
        if w.main:
            self._publish(model)
            self._saturation_batch = self._saturation_inputs(ds, device)
            log = MetricsLog(self.metrics_log, c.tensorboard, resume_step=step if self.resume_path else None)
        eval_images = val.images if val is not None else ds.test.images[:c.eval_images] if c.eval_images else ds.test.images
        uniform = self.model_config.height * self.model_config.width * math.log(2)
        self._set(step=step, seconds=seconds, message="training")
        bar = self._progress_bar(c.minutes * 60, seconds, step) if progress_bar and w.main else None
        watch = Stopwatch(seconds)
        return _Run(device=device, ds=ds, val=val, eval_images=eval_images, model=model, average=average, opt=opt,
                    objective=objective, autocast=autocast, data=data, files=files, log=log, bar=bar,
                    tally=Tally(device, diverged_above=4 * uniform),  # far worse than guessing every pixel
                    watch=watch, step=step, images=images, start_step=step, start_seconds=seconds, best=best,
                    clock=seconds, lr=c.lr, t_rec=watch.mark, last_eval=seconds)

    def _build(self, device: torch.device):
        """The model (fresh, grown from ``init_from`` or resumed), its optimizer, the loss to step on,
        the weight average, and where a resumed run left off: (step, seconds, images)."""
        c, w = self.config, self.world
        torch.manual_seed(c.seed)
        model = RowModel(self.model_config).to(device)
        if c.init_from and not self.resume_path:
            self._origin = grow_from(model, c.init_from, c.seed)
        model.dropout = float(c.dropout)
        opt = torch.optim.Adam(model.parameters(), lr=c.lr, weight_decay=c.weight_decay, decoupled_weight_decay=True)
        step, seconds, images, saved = self._resume(model, opt)
        average = start_average(model, saved) if w.main and c.ema else None
        objective = Objective(model, c.free_bits)
        if w.distributed:
            objective = distributed(objective, device)
            torch.manual_seed(c.seed * 1_000_003 + step + w.rank + 1)  # each worker its own VAE noise
        return model, opt, objective, average, (step, seconds, images)

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

    def _batches(self, ds: Dataset, step: int, device: torch.device):
        w = self.world
        return training_batches(ds.train, self.config.batch_size, self.config.seed, step, w.rank, w.size, device)

    # ---- the loop's phases ------------------------------------------------------------------------
    def _wait_while_paused(self, r: _Run):
        if not self._running.is_set():
            self._set(state="paused", message="paused")
            self._running.wait()
            r.watch.skip()  # a pause is not training time
            self._set(state="running", message="training")

    def _progress(self, r: _Run) -> float:
        """How much of the budget is spent, in [0, 1); ends the run when asked or when it is spent."""
        c = self.config
        if r.stop or (not self.world.distributed and self._stop.is_set()):
            raise _Ended("stopped", "stopped by request")
        progress = max(r.clock / (c.minutes * 60), r.step / c.max_steps if c.max_steps else 0.0)
        if progress >= 1.0:
            raise _Ended("finished")
        return progress

    def _lr(self, step: int, progress: float) -> float:
        c = self.config
        warm = min(1.0, (step + 1) / max(1, c.warmup_steps))
        return c.lr * warm * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))

    def _step(self, r: _Run, progress: float):
        """One optimizer step on the next batch (and the weight average after it)."""
        c = self.config
        r.lr = self._lr(r.step, progress)
        for g in r.opt.param_groups:
            g["lr"] = r.lr
        x, y = next(r.data)
        with r.autocast:
            obj, loss = r.objective(x, y)
        r.opt.zero_grad(set_to_none=True)
        obj.backward()
        torch.nn.utils.clip_grad_norm_(r.model.parameters(), c.grad_clip)
        r.opt.step()
        if r.average is not None:
            update_average(r.average, r.model, ema_decay(c.ema, r.step))
        r.step += 1
        r.images += len(x) * self.world.size
        r.tally.add(loss, len(x))
        r.now = r.watch.lap()

    def _control_point(self, r: _Run):
        """Decide what is due (on the main worker), agree with the others on the clock, a stop and
        whether to record, then record, evaluate, checkpoint and snapshot. Their time is not
        training time."""
        c, w = self.config, self.world
        due_eval = w.main and r.seconds - r.last_eval >= c.eval_every_s
        due_ckpt = w.main and bool(c.out) and self._checkpoint_due(r)
        due_snap = w.main and self._wanted.is_set() and (
            r.last_snap is None or r.seconds - r.last_snap >= c.snapshot_every_s)
        due_record = w.main and (r.now - r.t_rec >= 1.0 or due_eval or due_ckpt)
        clock, stops, records = w.sum_cpu([r.seconds if w.main else 0.0, float(self._stop.is_set()),
                                           float(due_record)])
        r.clock, r.stop = (clock, stops > 0) if w.distributed else (r.seconds, r.stop)
        busy = False  # did rank 0 spend time on something other than training here?
        if records:
            self._record(r, due_eval)
            busy = due_eval
            if due_ckpt:
                self._checkpoint(r)
                busy = True
        if due_snap:
            self._snapshot_samples(r.shown, r.step)
            r.last_snap, busy = r.seconds, True
        if busy:
            r.watch.skip()

    def _checkpoint_due(self, r: _Run) -> bool:
        c = self.config
        if r.last_ckpt is not None:
            return r.seconds - r.last_ckpt >= c.checkpoint_every_min * 60
        return (r.seconds - r.start_seconds >= min(c.first_checkpoint_s, c.checkpoint_every_min * 60)
                or 0 < c.first_checkpoint_steps <= r.step - r.start_step)

    def _record(self, r: _Run, due_eval: bool):
        """Read the loss since the last record from every worker (ends a diverged run); on the main
        worker, evaluate if due and append the record to the history, the log and the bar."""
        mean, diverged, seen = r.tally.read(self.world)
        if diverged:
            raise _Ended("failed", self._diverged_message(r.step, mean))
        if self.world.main:
            rec = Record(r.step, round(r.seconds, 2), mean, seen / max(r.now - r.t_rec, 1e-9), r.lr)
            if due_eval:
                self._evaluate(r, rec)
            self._append(rec, r.log, r.last_test if due_eval else None, r.bar)
            r.t_rec = time.perf_counter()

    def _evaluate(self, r: _Run, rec: Record):
        """Score the periodic evaluation's images (validation or test) into ``rec``, keep the best
        model by validation NLL, and publish the weights."""
        c = self.config
        score = evaluate(r.shown, r.eval_images, c.eval_seed, device=r.device)
        if r.val is None:
            rec.test_nll, r.last_test = score, (round(score, 3), len(r.eval_images))
        else:
            rec.val_nll = score
        if c.keep_best and score < r.best:  # keep_best implies a validation set
            r.best = score
            try:
                r.files.save_best(r.shown, {**self._progress_metrics(r), "val_nll": round(r.best, 3)})
            except OSError as e:
                raise _Ended("failed", f"could not write {self.best_path()}: {e}; stopped",
                             alone=self.world.distributed) from None
        self._publish(r.shown)
        r.last_eval = r.seconds

    def _checkpoint(self, r: _Run):
        try:
            self._save(r, self._progress_metrics(r))
        except OSError as e:  # under DDP the other workers learn of it when this one leaves
            raise _Ended("failed", f"could not write checkpoint {self.config.out}: {e}; stopped",
                         alone=self.world.distributed) from None
        r.last_ckpt = r.seconds

    def _save(self, r: _Run, progress: dict):
        r.files.save(r.model, r.opt, progress, r.average)
        self._set(checkpoint=str(self.config.out))

    # ---- the end ----------------------------------------------------------------------------------
    def _finish(self, r: _Run, end: _Ended) -> dict:
        """The batches since the last record, then on the main worker (unless the run failed) the
        final publish, snapshot, evaluation and checkpoint; returns the final metrics."""
        final = None
        if r.tally.steps and not end.alone:  # the batches since the last record (every worker's)
            mean, diverged, seen = r.tally.read(self.world)
            final = Record(r.step, round(r.seconds, 2), mean, seen / max(time.perf_counter() - r.t_rec, 1e-9), r.lr)
            if diverged and end.state != "failed":
                end = _Ended("failed", self._diverged_message(r.step, mean))
        metrics = self._progress_metrics(r)
        if self.world.main:
            if final is not None:
                with self._lock:
                    self._shared.history.append(final)
            if end.state != "failed":
                end = self._final_outputs(r, metrics) or end
            self._close_log(r, final)
        if r.bar is not None:
            self._show(r.bar, r.step, r.seconds, final)
            r.bar.close()
        self._set(state=end.state, message=end.message, step=r.step, seconds=r.seconds)
        return metrics

    def _final_outputs(self, r: _Run, metrics: dict) -> _Ended | None:
        """Publish, snapshot (if watched), score the test set (``final_eval``) and the best file, and
        write the last checkpoint; a failure to write it, else None."""
        c = self.config
        self._publish(r.shown)
        if self._watched:
            self._snapshot_samples(r.shown, r.step)
        if c.final_eval:
            self._set(message="final evaluation on the test set")
            r.last_test = (round(evaluate(r.shown, r.ds.test.images, c.eval_seed, device=r.device,
                                          samples=c.iw_samples), 3), len(r.ds.test))
            metrics["test_nll_protocol"] = protocol(self.model_config, c.iw_samples)
        if c.keep_best and c.final_eval and self.best_path().exists():
            self._set(message="final evaluation of the best model on the test set")
            r.files.score_best(r.ds, r.device)
        if r.last_test is not None:  # the whole test set if final_eval, else the last periodic subset
            metrics["test_nll"], metrics["test_images"] = r.last_test
            with self._lock:
                if self._shared.history:
                    self._shared.history[-1].test_nll = r.last_test[0]
        if c.out:
            try:
                self._save(r, metrics)
            except OSError as e:
                return _Ended("failed", f"could not write checkpoint {c.out}: {e}")
        return None

    def _close_log(self, r: _Run, final: Record | None):
        if r.log is None:
            return
        if final is None and self.config.final_eval and r.last_test is not None and self._shared.history:
            final = self._shared.history[-1]  # the last record was at the last step: log its final score
        if final is not None:
            self._log(r.log, final, r.last_test if final.test_nll is not None else None)
        r.log.close()

    def _progress_metrics(self, r: _Run) -> dict:
        w = self.world
        return {"step": r.step, "train_seconds": round(r.seconds, 1), "train_images": r.images,
                "world_size": w.size, "global_batch": self.config.batch_size * w.size}

    def _diverged_message(self, step: int, loss: float) -> str:
        c = self.config
        uniform = self.model_config.height * self.model_config.width * math.log(2)
        return (f"diverged at step {step}: loss {loss:.4g} nats/image (a uniform guess is {uniform:.0f}); "
                f"learning rate {c.lr} may be too high. Stopped; "
                + (f"the last good checkpoint {c.out} is kept" if self._shared.checkpoint
                   else "no checkpoint was written"))
