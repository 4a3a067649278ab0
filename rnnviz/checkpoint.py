"""Checkpoints: weights in safetensors, configuration and metrics as JSON in the file's metadata.

A file holds ``model.*`` tensors (the model's state dict), optionally ``optim.*`` tensors (Adam's
moments, for resuming), and metadata::

    format: "rnnviz", format_version: "1"
    config: the ModelConfig as JSON
    metrics: JSON (dataset, binarization seed, test NLL, steps, training time, hardware, versions)
    optim: JSON of the optimizer's scalar state (step counts, hyper-parameters), when saved

Nothing here unpickles anything: safetensors holds raw tensors and a JSON header, and the header is
checked before any tensor is read. Writes go to a temporary file in the same folder, are flushed
to disk and then renamed over the target, so a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import os
import platform
import struct
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from .model import ModelConfig, RowModel

FORMAT, FORMAT_VERSION = "rnnviz", "1"
MAX_HEADER_BYTES = 10 * 1024 * 1024
MAX_FILE_BYTES = 512 * 1024 * 1024


class CheckpointError(ValueError):
    """A file that is not a usable rnnviz checkpoint; the message says why."""


def environment() -> dict:
    """Library versions and hardware, recorded with every checkpoint."""
    import numpy

    info = {"torch": torch.__version__, "numpy": numpy.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads()}
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
                    optimizer: torch.optim.Optimizer | None = None) -> Path:
    """Write ``model`` (and optionally the optimizer) to ``path`` atomically."""
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "config": json.dumps(model.config.to_dict()),
            "metrics": json.dumps(metrics or {}, default=str)}
    if optimizer is not None:
        opt_tensors, scalars = _optimizer_tensors(optimizer)
        tensors.update(opt_tensors)
        meta["optim"] = json.dumps(scalars)
    data = st_save(tensors, metadata=meta)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a checkpoint is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_header(path: str | os.PathLike) -> dict:
    """The safetensors JSON header of ``path``, checked for size and shape before use."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    if size > MAX_FILE_BYTES:
        raise CheckpointError(f"{path}: {size} bytes is larger than the {MAX_FILE_BYTES} byte limit")
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: too short to be a safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > MAX_HEADER_BYTES or n > size - 8:
            if head[:1] == b"\x80" or head[:2] == b"PK":
                raise CheckpointError(f"{path}: looks like a pickle or torch.save file; only "
                                      "safetensors checkpoints are loaded (a pickle can run code)")
            raise CheckpointError(f"{path}: not a safetensors file (header claims {n} bytes, "
                                  f"file has {size})")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a safetensors file (header is not JSON: {e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (header is not an object)")
    data_len = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offs = info.get("data_offsets") if isinstance(info, dict) else None
        if not (isinstance(offs, list) and len(offs) == 2 and 0 <= offs[0] <= offs[1] <= data_len):
            raise CheckpointError(f"{path}: tensor {name!r} lies outside the file (truncated?)")
    return header


def read_metadata(path: str | os.PathLike) -> dict:
    """Config, metrics and format of a checkpoint, parsed, without reading any tensor."""
    meta = read_header(path).get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an rnnviz checkpoint (metadata format is "
                              f"{meta.get('format')!r}, expected {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {meta.get('format_version')!r} is not supported "
                              f"(this rnnviz reads version {FORMAT_VERSION})")
    out = {}
    for key in ("config", "metrics", "optim"):
        if key in meta:
            try:
                out[key] = json.loads(meta[key])
            except json.JSONDecodeError as e:
                raise CheckpointError(f"{path}: metadata {key!r} is not valid JSON ({e})") from None
    if "config" not in out:
        raise CheckpointError(f"{path}: metadata has no model config")
    if not isinstance(out.get("metrics", {}), dict):
        raise CheckpointError(f"{path}: metadata 'metrics' is not a JSON object")
    try:
        out["config"] = ModelConfig.from_dict(out["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: bad model config: {e}") from None
    out.setdefault("metrics", {})
    return out


def _read_tensors(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k[len(prefix):]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    except Exception as e:  # safetensors raises its own error types for malformed files
        raise CheckpointError(f"{path}: could not read tensors ({e})") from None


def load_state(path: str | os.PathLike) -> tuple[RowModel, dict]:
    """(model on the CPU in eval mode, metadata dict). Raises CheckpointError with the reason."""
    path = Path(path)
    meta = read_metadata(path)
    model = RowModel(meta["config"])
    expected = model.state_dict()
    got = _read_tensors(path, "model.")
    missing = sorted(set(expected) - set(got))
    extra = sorted(set(got) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: tensors do not match the config "
                              f"(missing {missing[:5]}, unexpected {extra[:5]})")
    for k, v in expected.items():
        if got[k].shape != v.shape or got[k].dtype != v.dtype:
            raise CheckpointError(f"{path}: tensor {k!r} is {tuple(got[k].shape)} {got[k].dtype}, "
                                  f"the config needs {tuple(v.shape)} {v.dtype}")
        if not torch.isfinite(got[k]).all():
            raise CheckpointError(f"{path}: tensor {k!r} holds NaN or infinite values")
    model.load_state_dict(got)
    model.eval()
    return model, meta


def load_checkpoint(path: str | os.PathLike) -> RowModel:
    """The model stored at ``path``, on the CPU, in eval mode. Only safetensors files are read."""
    model, meta = load_state(path)
    model.metrics = meta["metrics"]
    return model


def load_optimizer_state(path: str | os.PathLike, optimizer: torch.optim.Optimizer) -> None:
    """Restore Adam's moments and step counts saved by ``save_checkpoint(..., optimizer=...)``."""
    meta = read_metadata(path)
    if "optim" not in meta:
        raise CheckpointError(f"{path}: holds no optimizer state to resume from")
    scalars = meta["optim"]
    tensors = _read_tensors(Path(path), "optim.")
    state = {}
    for idx, st in scalars["state"].items():
        entry = {k: torch.tensor(v) for k, v in st.items()}
        for name, t in tensors.items():
            i, key = name.split(".", 1)
            if i == idx:
                entry[key] = t
        state[int(idx)] = entry
    try:
        optimizer.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{path}: optimizer state does not fit this model ({e})") from None
