"""The files a run reads and writes besides its data: the checkpoint it resumes or grows from, the
resumable checkpoint, the best model by validation NLL (``keep_best``), and what each records.

``check_writable``, ``remove_orphan_temps`` and ``remove_orphans_in`` concern any checkpoint writer,
not training alone: they belong with ``rnnviz.checkpoint`` (which names the temporary files), once
nothing else is being changed there."""

from __future__ import annotations

import math
import os
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from .. import checkpoint as ckpt
from ..data import Dataset
from ..evaluate import evaluate, protocol
from ..metrics_log import beside
from ..model import ModelConfig, RowModel
from .config import TrainConfig


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
    return ckpt.remove_files(target.parent.glob(f".{target.name}.*.tmp"))


def orphan_temps(folder: str | os.PathLike, keep: tuple = ()) -> list[Path]:
    """The temporary files of checkpoint writers in ``folder`` (``.<name>.safetensors.<random>.tmp``,
    and ``check_writable``'s probes), except those of the checkpoints in ``keep`` (still being
    written). Call it when no other writer of that folder is running: then they are orphans."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    kept = {f".{Path(k).name.removesuffix('.safetensors')}." for k in keep}  # x.safetensors, x.best.safetensors
    found = list(folder.glob(".*.safetensors.*.tmp")) + list(folder.glob(".rnnviz-write-test-*"))
    return [p for p in found if not any(p.name.startswith(k) for k in kept)]


def remove_orphans_in(folder: str | os.PathLike, keep: tuple = ()) -> list[Path]:
    """Delete ``orphan_temps(folder, keep)`` (a killed writer's partial checkpoints); returns them."""
    return ckpt.remove_files(orphan_temps(folder, keep))


def best_path(out: str) -> Path:
    """``keep_best``'s file beside the checkpoint: ``x.safetensors`` -> ``x.best.safetensors``."""
    return beside(out, ".best.safetensors")


def grow_from(model: RowModel, path: str, seed: int) -> dict:
    """``init_from``: copy a checkpoint's weights into ``model``, widened where the model has more
    units (``RowModel.widened``: the same function to start with). Returns where the weights came
    from, which the run's checkpoints record."""
    mc = model.config
    source, meta = ckpt.load_state(path)
    sc = source.config
    fixed = [k for k in mc.to_dict() if k not in ("hidden", "head_hidden") and getattr(mc, k) != getattr(sc, k)]
    if fixed or mc.hidden < sc.hidden or mc.head_hidden < sc.head_hidden:
        raise ValueError(f"cannot start a {mc} from {path}, a {sc}: only hidden and head_hidden "
                         f"may differ, and only upwards" + (f" (differs in {', '.join(fixed)})" if fixed else ""))
    model.load_state_dict(source.widened(mc.hidden, mc.head_hidden, seed=seed).state_dict())
    m = meta["metrics"]
    return {"file": Path(path).name, "hidden": sc.hidden, "head_hidden": sc.head_hidden,
            "step": m.get("step"), "train_seconds": m.get("train_seconds"), "test_nll": m.get("test_nll"),
            **({"init_from": m["init_from"]} if isinstance(m.get("init_from"), dict) else {})}


class RunFiles:
    """The checkpoints one run writes (to ``config.out``, and beside it with ``keep_best``), each
    recording the same description of the run with its progress last."""

    def __init__(self, model_config: ModelConfig, config: TrainConfig, dataset: str, origin: dict | None):
        self.model_config, self.config, self.dataset, self.origin = model_config, config, dataset, origin

    def metrics(self, model: RowModel, progress: dict) -> dict:
        """What every checkpoint of this run records, with ``progress`` (step, time, scores) last."""
        c = self.config
        return {"dataset": self.dataset, "binarization": "dynamic (fresh Bernoulli per batch)",
                "eval_binarization_seed": c.eval_seed, "test_nll": None,
                "test_nll_protocol": protocol(self.model_config),
                "train_config": asdict(c), "hardware": ckpt.environment(),
                "parameters": model.num_parameters(), "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                **({"init_from": self.origin} if self.origin else {}), **progress}

    def save(self, model: RowModel, opt: torch.optim.Optimizer, progress: dict, average: RowModel | None = None):
        """Checkpoint with ``progress`` (step, train_seconds, test_nll and test_images if known).
        With weight averaging the file's model is the average and ``model`` goes beside it."""
        c = self.config
        metrics = self.metrics(model, progress)
        if average is None:
            ckpt.save_checkpoint(c.out, model, metrics, optimizer=opt)
        else:
            ckpt.save_checkpoint(c.out, average, metrics, optimizer=opt, training=model)

    # ---- early stopping on held-out training images ------------------------------------------
    @property
    def best(self) -> Path:
        return best_path(self.config.out)

    def best_so_far(self, resumed: bool) -> float:
        """The validation NLL to beat: a resumed run's best file's, else infinity."""
        if not (resumed and self.best.exists()):
            return math.inf
        try:
            v = ckpt.read_metadata(self.best)["metrics"].get("val_nll")
        except ckpt.CheckpointError:
            return math.inf
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else math.inf

    def save_best(self, model: RowModel, progress: dict):
        """The model with the lowest validation NLL so far, alone (nothing to resume from): the run
        stopped early at its best, without looking at the test set."""
        metrics = self.metrics(model, {"val_images": self.config.val_images,
                                       "selected_by": "lowest validation NLL of the run's periodic evaluations",
                                       **progress})
        ckpt.save_checkpoint(self.best, model, metrics)

    def score_best(self, ds: Dataset, device: torch.device):
        """The final evaluation of the best file: the whole test set, recorded in the file."""
        c = self.config
        model, meta = ckpt.load_state(self.best)
        metrics = meta["metrics"]
        metrics["test_nll"] = round(evaluate(model.to(device), ds.test.images, c.eval_seed, device=device,
                                             samples=c.iw_samples), 3)
        metrics["test_images"] = len(ds.test)
        metrics["test_nll_protocol"] = protocol(self.model_config, c.iw_samples)
        ckpt.save_checkpoint(self.best, model.cpu(), metrics)
