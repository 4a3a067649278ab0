"""``TrainConfig``: every training setting once, with its default, its bounds and its help.

Each field is a ``setting``; ``TrainConfig``'s checks and the command line's flags are both made
from them (``add_train_flags``, ``train_config``), so a default such as the learning rate is
written in one place. The model's flags (``add_model_flags``, ``model_config``) build a
``ModelConfig`` with the model's own defaults and choices (``model.CELLS``, ``model.ORDERS``).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, fields

from ..data import DATASETS, DEFAULT_EVAL_SEED
from ..model import CELLS, ORDERS, ModelConfig


def _num(x) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


@dataclass(frozen=True)
class Bounds:
    """The interval a number must lie in (NaN never does); ``whole``: an integer, not a bool."""

    lo: float
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    whole: bool = False

    def holds(self, v) -> bool:
        if isinstance(v, bool) or not isinstance(v, int if self.whole else (int, float)):
            return False
        above = v > self.lo if self.lo_open else v >= self.lo
        below = v < self.hi if self.hi_open else v <= self.hi
        return above and below

    def __str__(self) -> str:
        if self.hi == math.inf:
            text = f"{'>' if self.lo_open else '>='} {_num(self.lo)}" + (" and finite" if self.hi_open else "")
        else:
            text = f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}{')' if self.hi_open else ']'}"
        return ("an integer " if self.whole else "") + text


POSITIVE = Bounds(0, lo_open=True, hi_open=True)  # > 0 and finite
WHOLE = Bounds(0, whole=True)  # an integer >= 0


def setting(default, help: str, bounds: Bounds | None = None, *, choices: tuple | None = None,
            flag: str | None = "", **cli):
    """A ``TrainConfig`` field: its default, the ``bounds`` or ``choices`` it must keep to, its help,
    and its command-line ``flag`` ("" for ``--field-name``, None for none); ``cli``: more argparse
    options (``metavar``, ``required``)."""
    return field(default=default, metadata={"help": help, "bounds": bounds, "choices": choices, "flag": flag,
                                            "cli": cli})


@dataclass
class TrainConfig:
    """How to train: data, optimization, budget, evaluation, checkpoints, logs, hardware."""

    dataset: str = setting("mnist", f"{', '.join(DATASETS)}, or a .npz file")
    data_root: str | None = setting(None, "folder holding MNIST/ (default: $RNNVIZ_DATA or ./data)")
    batch_size: int = setting(64, "images per step per worker (under torchrun the global batch is this x the "
                                  "world size)", Bounds(1, 8192, whole=True))
    lr: float = setting(2e-3, "peak learning rate (Adam, after a warm-up, with a cosine decay over the budget)",
                        Bounds(0, 10, lo_open=True))
    minutes: float = setting(60.0, "budget of training time (pauses excluded)", POSITIVE)
    max_steps: int = setting(0, "0 = no step limit; else the schedule runs over whichever ends first", WHOLE)
    warmup_steps: int = setting(200, "steps of the learning rate's linear warm-up", flag=None)
    grad_clip: float = setting(1.0, "largest gradient norm", flag=None)
    dropout: float = setting(0.0, "drop this fraction of the recurrent output, of what stacked layers pass on, "
                                  "and of the head's hidden units while training", Bounds(0, 1, hi_open=True))
    weight_decay: float = setting(0.0, "decoupled weight decay (AdamW): every step shrinks each weight by lr x WD, "
                                       "e.g. 0.01", Bounds(0, 1), metavar="WD")
    ema: float = setting(0.0, "score and save a moving average of the weights with this decay per step, e.g. 0.999 "
                              "(lower during the first steps: see ema_decay); 0 = off",
                         Bounds(0, 1, hi_open=True), metavar="DECAY")
    eval_every_s: float = setting(120.0, "seconds of training between periodic evaluations", flag="--eval-every")
    eval_images: int = setting(1000, "test images for the periodic evaluation (0 = all)", flag=None)
    val_images: int = setting(0, "hold out N training images (seeded): the periodic evaluation scores them, "
                                 "not test images", Bounds(0, 10**7, whole=True), metavar="N")
    keep_best: bool = setting(False, "with --val-images: keep the model with the lowest validation NLL in OUT's "
                                     ".best.safetensors (scored on the test set at the end)")
    final_eval: bool = setting(True, "score the whole test set at the end")
    snapshot_every_s: float = setting(10.0, "seconds between sample snapshots, while someone reads them",
                                      flag=None)
    snapshot_count: int = setting(10, "samples in a snapshot", flag=None)
    saturation_images: int = setting(200, "test images for the live gate saturation (0 = off)",
                                     Bounds(0, 10000, whole=True), flag=None)
    checkpoint_every_min: float = setting(10.0, "minutes of training between checkpoints",
                                          flag="--checkpoint-every")
    first_checkpoint_s: float = setting(60.0, "training time before the first checkpoint, unless "
                                              "first_checkpoint_steps come first", Bounds(0), flag=None)
    first_checkpoint_steps: int = setting(200, "steps of this run before the first checkpoint, unless "
                                               "first_checkpoint_s of training time come first (0 = no step rule)",
                                          Bounds(0, 10**9, whole=True))
    out: str | None = setting(None, "checkpoint path (.safetensors), e.g. checkpoints/mnist_lstm.safetensors; "
                                    "the metrics log goes beside it", required=True)
    metrics_log: bool = setting(True, "write <out>.metrics.jsonl", flag=None)
    tensorboard: str | None = setting(None, "also log the metrics to TensorBoard in this folder", metavar="DIR")
    device: str = setting("auto", "auto, cpu or cuda (under torchrun: cuda:LOCAL_RANK)")
    amp: str = setting("off", "bf16: autocast the forward pass in bfloat16 (CUDA, or a CPU)", choices=("off", "bf16"))
    threads: int = setting(0, "CPU threads of the training thread (0 = leave them as they are; torchrun sets 1)",
                           Bounds(0, 1024, whole=True))
    sync_every: int = setting(10, "DDP: steps between the workers' agreements (clock, stop, logging)",
                              Bounds(1, 10**6, whole=True))
    seed: int = setting(0, "seed of the weights, the batches and the held-out images")
    eval_seed: int = setting(DEFAULT_EVAL_SEED, "seed of the evaluation's fixed binarization", flag=None)
    free_bits: float = setting(0.0, "VAE: KL floor per latent dimension, nats (0 = the plain ELBO)", Bounds(0, 10))
    iw_samples: int = setting(100, "VAE: importance samples per image in the final evaluation",
                              Bounds(1, 10000, whole=True))
    init_from: str | None = setting(None, "start from this checkpoint's weights, widened to --hidden/--head-hidden "
                                          "where those are larger (the same function to start with); a fresh "
                                          "optimizer and schedule", metavar="CHECKPOINT")

    def __post_init__(self):
        problems = [p for f in fields(self) if (p := _problem(f.name, getattr(self, f.name), f.metadata))]
        if self.keep_best and not (self.val_images and self.out):
            problems.append("keep_best needs val_images > 0 (a validation set to pick by) and out (where to write)")
        if problems:
            raise ValueError("invalid training config: " + "; ".join(problems))


def _problem(name: str, value, meta) -> str | None:
    bounds, choices = meta.get("bounds"), meta.get("choices")
    if bounds is not None and not bounds.holds(value):
        return f"{name} must be {bounds}, got {value!r}"
    if choices is not None and value not in choices:
        return f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}"
    return None


# ---- the command line -------------------------------------------------------------------------------
def add_train_flags(ap: argparse.ArgumentParser):
    """A flag for every ``TrainConfig`` setting that has one; returns their argument group."""
    group = ap.add_argument_group("training")
    for f in fields(TrainConfig):
        meta = f.metadata
        if meta["flag"] is None:
            continue
        name = meta["flag"] or "--" + f.name.replace("_", "-")
        if f.default is True:  # a switch that turns it off: --no-final-eval
            group.add_argument(meta["flag"] or "--no-" + name[2:], dest=f.name, action="store_false",
                               help=f"do not {meta['help']}")
        elif f.default is False:
            group.add_argument(name, dest=f.name, action="store_true", help=meta["help"])
        else:
            named = {"metavar": name[2:].replace("-", "_").upper()} if meta["flag"] else {}  # --eval-every EVAL_EVERY
            group.add_argument(name, dest=f.name, default=f.default, help=meta["help"], choices=meta["choices"],
                               type=str if f.default is None else type(f.default), **{**named, **meta["cli"]})
    return group


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each flag's default, where it has one to show (not a switch's, not None)."""

    def _get_help_string(self, action):
        if action.default is None or isinstance(action.default, bool):
            return action.help
        return super()._get_help_string(action)


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The ``TrainConfig`` the parsed flags describe (the other settings at their defaults)."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.metadata["flag"] is not None})


# ModelConfig's fields on the command line; their defaults are ModelConfig's, the choices the model's
MODEL_FLAGS = {
    "cell": "the recurrent cell",
    "hidden": "units per recurrent layer",
    "layers": "stacked recurrent layers",
    "head_hidden": "hidden units of the masked row head",
    "order": "scan order: rows top-down left-right (rows), bottom-up (_bu), right-left (_rl), or by columns",
    "latent": "train a VAE: a CNN encoder gives a z of this size to the decoder (implies --unconditional)",
}
MODEL_CHOICES = {"cell": list(CELLS), "order": list(ORDERS)}
MODEL_DEFAULTS = {f.name: f.default for f in fields(ModelConfig)}


def add_model_flags(ap: argparse.ArgumentParser):
    """--cell, --hidden, ... (a ``ModelConfig``) and --unconditional; returns their argument group."""
    group = ap.add_argument_group("model")
    for name, help in MODEL_FLAGS.items():
        default = MODEL_DEFAULTS[name]
        group.add_argument("--" + name.replace("_", "-"), type=type(default), default=default,
                           choices=MODEL_CHOICES.get(name), help=help)
    group.add_argument("--unconditional", action="store_true", help="no class conditioning")
    return group


def model_config(args: argparse.Namespace) -> ModelConfig:
    """The ``ModelConfig`` the parsed flags describe: conditioned on the class unless --unconditional
    or --latent."""
    conditional = not (args.unconditional or args.latent)
    return ModelConfig(**{name: getattr(args, name) for name in MODEL_FLAGS},
                       num_classes=MODEL_DEFAULTS["num_classes"] if conditional else 0)
