"""Checkpoints: weights in safetensors, configuration and metrics as JSON in the file's metadata.

A file holds ``model.*`` tensors (the model's state dict), optionally ``optim.*`` tensors (Adam's
moments, for resuming) and ``train.*`` tensors (a run with weight averaging: ``model.*`` is the
average, ``train.*`` the weights the optimizer was moving, which a resumed run continues), and
metadata::

    format: "rnnviz", format_version: "1"
    config: the ModelConfig as JSON
    metrics: JSON (dataset, binarization seed, test NLL, steps, training time, hardware, versions)
    optim: JSON of the optimizer's scalar state (step counts, hyper-parameters), when saved

Nothing here unpickles anything: safetensors holds raw tensors and a JSON header. Loading reads
the header alone first and checks all of it before any tensor or module is made: every field's
type, every tensor's dtype, shape and place in the file, the config against a set of ``Limits``
(the explorer's are narrow, the command line's are the ModelConfig bounds), and the tensors the
config implies (names, shapes, dtypes: ``expected_tensors``, computed without building the model)
against those the header lists. So a 260-byte file that claims a billion-parameter model is
refused in microseconds instead of making the loader allocate gigabytes, and every malformed
header gets a ``CheckpointError`` naming the field. Those checks and the limits are in
``rnnviz.header``; this module re-exports them.

Writes go to a temporary file in the same folder, are flushed to disk and then renamed over the
target, so a crash mid-write leaves the previous file intact (``atomic_write``, which the explorer's
uploads use too).
"""

from __future__ import annotations

import json
import os
import platform
import struct
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

# The header's checks and the limits, re-exported: ``from rnnviz.checkpoint import ...`` reads them all.
from .header import (APP_FILE_BYTES, APP_LIMITS, CLI_LIMITS, DTYPES, FORMAT, FORMAT_VERSION,  # noqa: F401
                     MAX_FILE_BYTES, MAX_HEADER_BYTES, MAX_INT_DIGITS, CheckpointError, Limits, check_metadata,
                     expected_tensors, parameter_count, parse_json, read_header)
from .model import RowModel


# ---- writing --------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name as the OS reports it (Linux: /proc/cpuinfo), or "" where it does not."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()[:100]
    except OSError:
        pass
    return ""


def environment() -> dict:
    """Library versions and hardware, recorded with every checkpoint."""
    import numpy

    info = {"torch": torch.__version__, "numpy": numpy.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu": cpu_model() or platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        scalars["state"][str(idx)] = {}
        for key, val in st.items():
            if torch.is_tensor(val) and val.dim() > 0:
                tensors[f"optim.{idx}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars["state"][str(idx)][key] = float(val)
    return tensors, scalars


def save_checkpoint(path: str | os.PathLike, model: RowModel, metrics: dict | None = None,
                    optimizer: torch.optim.Optimizer | None = None, training: RowModel | None = None) -> Path:
    """Write ``model`` (and optionally the optimizer, and the ``training`` weights when ``model``
    is their average) to ``path`` atomically."""
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if training is not None:
        tensors.update({f"train.{k}": v.detach().cpu().contiguous() for k, v in training.state_dict().items()})
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "config": json.dumps(model.config.to_dict()),
            "metrics": json.dumps(metrics or {}, default=str)}
    if optimizer is not None:
        opt_tensors, scalars = _optimizer_tensors(optimizer)
        tensors.update(opt_tensors)
        meta["optim"] = json.dumps(scalars)
    return write_safetensors(path, tensors, meta)


def remove_files(paths) -> list[Path]:
    """Delete each of ``paths`` that can be deleted (a partial file a killed writer left, say);
    returns those removed."""
    removed = []
    for p in paths:
        try:
            Path(p).unlink()
            removed.append(Path(p))
        except OSError:
            pass
    return removed


def write_safetensors(path: str | os.PathLike, tensors: dict, meta: dict[str, str]) -> Path:
    """Write ``tensors`` and ``meta`` as a safetensors file at ``path`` atomically (a temporary file in
    the same folder, flushed to disk and renamed over ``path``: a reader never sees half a file);
    refused if the header would be too large to load again."""
    path = Path(path)
    data = st_save(tensors, metadata=meta)
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES:  # it could not be loaded again
        raise CheckpointError(f"{path}: the metadata makes a {n} byte header, over the {MAX_HEADER_BYTES} "
                              "byte limit (are the metrics very large?)")
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda f: f.write(data))


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object], prefix: str | None = None,
                 mode: int | None = 0o644) -> Path:
    """Write ``path`` atomically: ``write(f)`` fills a temporary file (``<prefix><random>.tmp``, by
    default ``.<name>.<random>.tmp``) in the same folder, which is flushed to disk, given ``mode`` (None:
    mkstemp's owner-only) and renamed over ``path``, so a reader never sees half a file and a crash
    leaves the previous one intact; the temporary file is removed if anything fails."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=prefix or f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)  # mkstemp makes it owner-only; a checkpoint is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_metadata(path: str | os.PathLike, limits: Limits = CLI_LIMITS) -> dict:
    """Config, metrics and format of a checkpoint, parsed, without reading any tensor: the header
    is checked throughout, the config against ``limits``, and the tensors it lists against the
    config. {"config": ModelConfig, "metrics": dict, "optim": dict (when saved)}."""
    return check_metadata(path, read_header(path, limits), limits)


# ---- loading --------------------------------------------------------------------------------------
def _read_tensors(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k[len(prefix):]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    except Exception as e:  # safetensors raises its own error types for malformed files
        raise CheckpointError(f"{path}: could not read tensors ({e})") from None


def load_state(path: str | os.PathLike, limits: Limits = CLI_LIMITS) -> tuple[RowModel, dict]:
    """(model on the CPU in eval mode, metadata dict with "config" and "metrics").

    The header is checked against ``limits`` before the model is built (the explorer passes
    APP_LIMITS). Raises CheckpointError with the reason.
    """
    path = Path(path)
    meta = read_metadata(path, limits)
    model = RowModel(meta["config"])
    model.load_state_dict(_checked_weights(path, model, _read_tensors(path, "model."), "model."))
    model.eval()
    return model, meta


def _checked_weights(path, model: RowModel, got: dict, prefix: str) -> dict:
    """``got`` if it is exactly ``model``'s state dict in names, shapes and dtypes, and finite."""
    expected = model.state_dict()
    if set(got) != set(expected):  # for model.* the header said otherwise: the file changed while we read it
        raise CheckpointError(f"{path}: {prefix}* tensors do not match the config"
                              + (" (the file changed while loading?)" if prefix == "model." else ""))
    for k, v in expected.items():
        if got[k].shape != v.shape or got[k].dtype != v.dtype:
            raise CheckpointError(f"{path}: tensor {prefix + k!r} is {tuple(got[k].shape)} {got[k].dtype}, "
                                  f"the config needs {tuple(v.shape)} {v.dtype}")
        if not torch.isfinite(got[k]).all():
            raise CheckpointError(f"{path}: tensor {prefix + k!r} holds NaN or infinite values")
    return got


def load_training_weights(path: str | os.PathLike, model: RowModel) -> bool:
    """Load the ``train.*`` weights of a run with weight averaging into ``model`` (built from the
    file's config); False, and ``model`` untouched, if the file has none (its ``model.*`` are then
    the training weights)."""
    got = _read_tensors(Path(path), "train.")
    if not got:
        return False
    model.load_state_dict(_checked_weights(path, model, got, "train."))
    return True


def load_checkpoint(path: str | os.PathLike, limits: Limits = CLI_LIMITS) -> RowModel:
    """The model stored at ``path``, on the CPU, in eval mode. Only safetensors files are read.
    Its metrics: ``load_state(path)[1]["metrics"]`` or ``read_metadata(path)["metrics"]``."""
    return load_state(path, limits)[0]


def load_optimizer_state(path: str | os.PathLike, optimizer: torch.optim.Optimizer) -> None:
    """Restore Adam's moments and step counts saved by ``save_checkpoint(..., optimizer=...)``."""
    meta = read_metadata(path)
    if "optim" not in meta:
        raise CheckpointError(f"{path}: holds no optimizer state to resume from")
    scalars = meta["optim"]
    if not (isinstance(scalars.get("state"), dict) and isinstance(scalars.get("param_groups"), list)
            and all(isinstance(st, dict) for st in scalars["state"].values())):
        raise CheckpointError(f"{path}: metadata 'optim' should hold a 'state' object of objects and a "
                              "'param_groups' list")
    tensors = _read_tensors(Path(path), "optim.")
    try:
        state = {}
        for idx, st in scalars["state"].items():
            entry = {k: torch.tensor(v) for k, v in st.items()}
            for name, t in tensors.items():
                i, key = name.split(".", 1)
                if i == idx:
                    entry[key] = t
            state[int(idx)] = entry
        optimizer.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
        raise CheckpointError(f"{path}: optimizer state does not fit this model ({str(e)[:200]})") from None


# ---- publishing -----------------------------------------------------------------------------------
def publish(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write ``src``'s model weights, config and metrics alone to ``dst``: no optimizer state and no
    training weights (with weight averaging the file's model is the average, and that is what it
    keeps). The file to ship: a third of a resumable one's size, loaded and scored the same, but it
    cannot be ``--resume``d (``--init-from`` still can start a run from it)."""
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise CheckpointError(f"{dst}: write the published copy to a new path, not over its source")
    model, meta = load_state(src)
    metrics = dict(meta["metrics"])
    names = read_header(src)  # the tensor names, without reading the tensors themselves
    dropped = [what for what, prefix in (("optimizer state", "optim."), ("training weights", "train."))
               if any(n.startswith(prefix) for n in names)]
    metrics["published_from"] = {"file": src.name, "dropped": dropped}
    return save_checkpoint(dst, model, metrics)

