"""Training: a ``Trainer`` that runs in the foreground (CLI) or in a background thread (the app).

    python -m rnnviz.train --cell lstm --hidden 256 --layers 1 --minutes 60 \
        --out checkpoints/mnist_lstm.safetensors

The loop: fresh Bernoulli binarization per batch, Adam with a short warm-up and a cosine decay over
the time (or step) budget, gradient clipping. Every ``eval_every_s`` it scores a fixed-seed subset of
the test set (exact marginal) and publishes a detached copy of the weights; every
``snapshot_every_s`` it draws a grid of samples and measures gate saturation on a fixed batch of
test images (``rnnviz.analysis.gate_saturation``, in ``snapshot()["saturation"]``); every
``checkpoint_every_min`` and at the end it writes a checkpoint. A non-finite loss stops the run
(the last good checkpoint stays).

Thread safety: ``start`` runs the loop in a daemon thread. ``pause``, ``resume`` and ``stop`` set
events that the loop checks between batches (a stop takes effect within one batch). Readers call
``snapshot()`` or ``published_model()``, which copy under a lock. Nothing here knows about Gradio.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import checkpoint as ckpt
from .analysis import gate_saturation
from .data import DEFAULT_EVAL_SEED, Dataset, batches, binarize_fixed, load_dataset
from .evaluate import evaluate, protocol
from .model import ModelConfig, RowModel


@dataclass
class TrainConfig:
    dataset: str = "mnist"  # mnist, fashionmnist, kmnist, or a .npz path
    data_root: str | None = None
    batch_size: int = 64
    lr: float = 2e-3
    minutes: float = 60.0  # budget of training time (pauses excluded)
    max_steps: int = 0  # 0 = no step limit; else the schedule runs over whichever ends first
    warmup_steps: int = 200
    grad_clip: float = 1.0
    eval_every_s: float = 120.0
    eval_images: int = 1000  # test images for the periodic evaluation (0 = all)
    final_eval: bool = True  # score the whole test set at the end
    snapshot_every_s: float = 10.0
    snapshot_count: int = 10
    saturation_images: int = 200  # test images for the live gate saturation (0 = off)
    checkpoint_every_min: float = 10.0
    out: str | None = None  # checkpoint path (.safetensors)
    device: str = "auto"
    seed: int = 0
    eval_seed: int = DEFAULT_EVAL_SEED
    free_bits: float = 0.0  # VAE only: KL floor per latent dimension, nats (0 = the plain ELBO)
    iw_samples: int = 100  # VAE only: importance samples per image in the final evaluation

    def __post_init__(self):
        problems = []
        if not (isinstance(self.batch_size, int) and 1 <= self.batch_size <= 8192):
            problems.append(f"batch_size must be in [1, 8192], got {self.batch_size!r}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and 0 < self.lr <= 10):
            problems.append(f"lr must be in (0, 10], got {self.lr!r}")
        if not (isinstance(self.minutes, (int, float)) and math.isfinite(self.minutes) and self.minutes > 0):
            problems.append(f"minutes must be > 0, got {self.minutes!r}")
        if not (isinstance(self.max_steps, int) and self.max_steps >= 0):
            problems.append(f"max_steps must be an integer >= 0, got {self.max_steps!r}")
        if not (isinstance(self.free_bits, (int, float)) and 0 <= self.free_bits <= 10):
            problems.append(f"free_bits must be in [0, 10], got {self.free_bits!r}")
        if not (isinstance(self.iw_samples, int) and 1 <= self.iw_samples <= 10000):
            problems.append(f"iw_samples must be an integer in [1, 10000], got {self.iw_samples!r}")
        if not (isinstance(self.saturation_images, int) and 0 <= self.saturation_images <= 10000):
            problems.append(f"saturation_images must be an integer in [0, 10000], got {self.saturation_images!r}")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))


def check_writable(path: str) -> None:
    """Fail before training, not after an hour, when the checkpoint cannot be written."""
    folder = Path(path).resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".rnnviz-write-test-"):
            pass
    except OSError as e:
        raise OSError(f"cannot write checkpoints to {folder}: {e}") from None


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


@dataclass
class Record:
    step: int
    seconds: float  # training time so far
    train_loss: float  # nats per image, mean over the batches since the last record
    samples_per_s: float
    lr: float
    test_nll: float | None = None


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


class Trainer:
    def __init__(self, model_config: ModelConfig, config: TrainConfig, dataset: Dataset | None = None,
                 resume: str | None = None):
        self.model_config = model_config
        self.config = config
        self.dataset = dataset
        self.resume_path = resume
        self._lock = threading.Lock()
        self._shared = _Shared()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._thread: threading.Thread | None = None
        self._saturation_batch: tuple | None = None  # (images, labels) for the live gate saturation

    # ---- control (any thread) -----------------------------------------------------------------
    def start(self) -> "Trainer":
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
        """A consistent copy of the run's state, history and latest samples."""
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
        """Train until the budget is spent or ``stop()``; returns the final metrics."""
        c = self.config
        device = pick_device(c.device)
        if self.dataset is None:
            self._set(message="loading data")
            self.dataset = load_dataset(c.dataset, c.data_root)
        ds = self.dataset
        if ds.shape != (self.model_config.height, self.model_config.width):
            raise ValueError(f"dataset images are {ds.shape}, the model expects "
                             f"{(self.model_config.height, self.model_config.width)}")
        if c.out:
            check_writable(c.out)
        torch.manual_seed(c.seed)
        model = RowModel(self.model_config).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=c.lr)
        step, seconds = 0, 0.0
        if self.resume_path:
            loaded, meta = ckpt.load_state(self.resume_path)
            if loaded.config != self.model_config:
                raise ValueError(f"{self.resume_path} holds a {loaded.config}, not {self.model_config}")
            model.load_state_dict(loaded.state_dict())
            ckpt.load_optimizer_state(self.resume_path, opt)
            step = int(meta["metrics"].get("step", 0))
            seconds = float(meta["metrics"].get("train_seconds", 0.0))
        model.train()
        self._publish(model)
        gen = torch.Generator().manual_seed(c.seed * 1_000_003 + step)
        data = batches(ds.train, c.batch_size, gen)
        eval_images = ds.test.images[:c.eval_images] if c.eval_images else ds.test.images
        self._saturation_batch = self._saturation_inputs(ds, device)
        budget = c.minutes * 60
        uniform = self.model_config.height * self.model_config.width * math.log(2)
        diverged_above = 4 * uniform  # far worse than guessing every pixel: the run has blown up
        last_eval = last_snap = last_ckpt = seconds
        last_test = None  # (NLL, images) of the latest periodic evaluation
        loss_sum, loss_n, seen, t_rec = 0.0, 0, 0, time.perf_counter()
        self._set(step=step, seconds=seconds, message="training")
        self._snapshot_samples(model, device, step)
        bar = None
        if progress_bar:
            from tqdm import tqdm
            bar = tqdm(total=round(budget), initial=round(seconds), unit="s", desc=f"{self.model_config.cell}")
        final_state, message = "finished", "finished"
        t_last = time.perf_counter()
        while True:
            if not self._running.is_set():
                self._set(state="paused", message="paused")
                self._running.wait()
                t_last = time.perf_counter()
                self._set(state="running", message="training")
            if self._stop.is_set():
                final_state, message = "stopped", "stopped by request"
                break
            progress = max(seconds / budget, step / c.max_steps if c.max_steps else 0.0)
            if progress >= 1.0:
                break
            lr = self._lr(step, progress)
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = next(data)
            x, y = x.to(device), y.to(device)
            objective, loss = model.loss(x, y if self.model_config.num_classes else None, c.free_bits)
            if not torch.isfinite(loss) or loss.item() > diverged_above:
                final_state = "failed"
                message = (f"diverged at step {step}: loss {loss.item():.4g} nats/image (a uniform guess is "
                           f"{uniform:.0f}); learning rate {c.lr} may be too high. Stopped; "
                           + (f"the last good checkpoint {c.out} is kept" if self._shared.checkpoint
                              else "no checkpoint was written"))
                break
            opt.zero_grad(set_to_none=True)
            objective.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
            opt.step()
            step += 1
            now = time.perf_counter()
            seconds += now - t_last
            t_last = now
            loss_sum, loss_n, seen = loss_sum + loss.item(), loss_n + 1, seen + len(x)

            due_eval = seconds - last_eval >= c.eval_every_s
            if due_eval or now - t_rec >= 1.0:
                rec = Record(step, round(seconds, 2), loss_sum / loss_n, seen / max(now - t_rec, 1e-9), lr)
                if due_eval:
                    rec.test_nll = evaluate(model, eval_images, c.eval_seed, device=device)
                    last_test = (round(rec.test_nll, 3), len(eval_images))
                    self._publish(model)
                    last_eval = seconds
                    t_last = time.perf_counter()  # evaluation time is not training time
                with self._lock:
                    self._shared.history.append(rec)
                    self._shared.step, self._shared.seconds = step, seconds
                loss_sum, loss_n, seen, t_rec = 0.0, 0, 0, time.perf_counter()
                if bar is not None:
                    bar.n = min(round(seconds), bar.total)
                    bar.set_postfix(step=step, loss=f"{rec.train_loss:.2f}", img_s=f"{rec.samples_per_s:.0f}",
                                    **({"test_nll": f"{rec.test_nll:.2f}"} if rec.test_nll else {}))
            if seconds - last_snap >= c.snapshot_every_s:
                self._snapshot_samples(model, device, step)
                last_snap = seconds
                t_last = time.perf_counter()
            if c.out and seconds - last_ckpt >= c.checkpoint_every_min * 60:
                try:
                    self._save(model, opt, {"step": step, "train_seconds": round(seconds, 1)})
                except OSError as e:
                    final_state, message = "failed", f"could not write checkpoint {c.out}: {e}; stopped"
                    break
                last_ckpt = seconds
                t_last = time.perf_counter()

        if loss_n:
            with self._lock:
                self._shared.history.append(Record(step, round(seconds, 2), loss_sum / loss_n,
                                                   seen / max(time.perf_counter() - t_rec, 1e-9), lr))
        metrics = {"step": step, "train_seconds": round(seconds, 1)}
        if final_state != "failed":
            self._publish(model)
            self._snapshot_samples(model, device, step)
            if c.final_eval:
                self._set(message="final evaluation on the test set")
                last_test = (round(evaluate(model, ds.test.images, c.eval_seed, device=device,
                                            samples=c.iw_samples), 3), len(ds.test))
                metrics["test_nll_protocol"] = protocol(self.model_config, c.iw_samples)
            if last_test is not None:  # the whole test set if final_eval, else the last periodic subset
                metrics["test_nll"], metrics["test_images"] = last_test
                with self._lock:
                    if self._shared.history:
                        self._shared.history[-1].test_nll = last_test[0]
            if c.out:
                try:
                    self._save(model, opt, metrics)
                except OSError as e:
                    final_state, message = "failed", f"could not write checkpoint {c.out}: {e}"
        if bar is not None:
            bar.close()
        self._set(state=final_state, message=message, step=step, seconds=seconds)
        return metrics

    def _save(self, model, opt, progress: dict):
        """Checkpoint with ``progress`` (step, train_seconds, test_nll and test_images if known)."""
        c = self.config
        metrics = {"dataset": self.dataset.name, "binarization": "dynamic (fresh Bernoulli per batch)",
                   "eval_binarization_seed": c.eval_seed, "test_nll": None,
                   "test_nll_protocol": protocol(self.model_config),
                   "train_config": asdict(c), "hardware": ckpt.environment(),
                   "parameters": model.num_parameters(), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                   **progress}
        ckpt.save_checkpoint(c.out, model, metrics, optimizer=opt)
        self._set(checkpoint=str(c.out))

    @torch.no_grad()
    def _snapshot_samples(self, model, device, step):
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


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train a row-by-row recurrent image model.")
    ap.add_argument("--cell", choices=["lstm", "gru", "rnn"], default="lstm")
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--head-hidden", type=int, default=512)
    ap.add_argument("--unconditional", action="store_true", help="no class conditioning")
    ap.add_argument("--latent", type=int, default=0,
                    help="train a VAE: a CNN encoder gives a z of this size to the decoder (implies --unconditional)")
    ap.add_argument("--free-bits", type=float, default=0.0, help="VAE: KL floor per latent dimension, nats")
    ap.add_argument("--iw-samples", type=int, default=100, help="VAE: importance samples in the final evaluation")
    ap.add_argument("--dataset", default="mnist")
    ap.add_argument("--data-root", default=None, help="folder holding MNIST/ (default: $RNNVIZ_DATA or ./data)")
    ap.add_argument("--minutes", type=float, default=60.0)
    ap.add_argument("--max-steps", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=float, default=120.0, help="seconds")
    ap.add_argument("--checkpoint-every", type=float, default=10.0, help="minutes")
    ap.add_argument("--out", required=True, help="checkpoint path, e.g. checkpoints/mnist_lstm.safetensors")
    ap.add_argument("--resume", default=None, help="checkpoint to continue from (weights, optimizer, step)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0 = PyTorch's default)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        mc = ModelConfig(cell=args.cell, hidden=args.hidden, layers=args.layers, head_hidden=args.head_hidden,
                         num_classes=0 if args.unconditional or args.latent else 10, latent=args.latent)
        tc = TrainConfig(dataset=args.dataset, data_root=args.data_root, batch_size=args.batch_size, lr=args.lr,
                         minutes=args.minutes, max_steps=args.max_steps, eval_every_s=args.eval_every,
                         checkpoint_every_min=args.checkpoint_every, out=args.out, device=args.device,
                         seed=args.seed, free_bits=args.free_bits, iw_samples=args.iw_samples)
        trainer = Trainer(mc, tc, resume=args.resume)
        metrics = trainer.run(progress_bar=True)
    except (ValueError, OSError, RuntimeError) as e:
        raise SystemExit(f"error: {e}")
    snap = trainer.snapshot()
    print(f"{snap['state']}: {snap['message']}; step {metrics['step']}, "
          f"{metrics['train_seconds']:.0f} s, test NLL {metrics.get('test_nll')}")
    if snap["state"] == "failed":
        raise SystemExit(1)


if __name__ == "__main__":
    main()
