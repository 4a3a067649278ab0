"""The training log: one JSON object a line beside the checkpoint, and TensorBoard when asked.

    runs/my_lstm.safetensors       the checkpoint
    runs/my_lstm.metrics.jsonl     {"step": 120, "seconds": 14.2, "wall_time": 1764650000.1,
                                    "train_loss": 131.2, "test_nll": null, "test_images": null,
                                    "images_per_s": 580.0, "lr": 0.002}

``train_loss`` is nats per image, the mean over the batches since the previous line (over every
worker under DDP); ``test_nll`` is set on the lines where the run scored the test set
(``test_images`` says on how many images); ``images_per_s`` counts every worker's images;
``seconds`` is training time (pauses, evaluations and snapshots excluded), ``wall_time`` Unix time.
A resumed run keeps the lines up to the step it resumed from and appends; a new run into the same
path starts the file afresh. Each line is flushed as it is written, so a killed run loses at most
its last, torn line, which ``read_metrics_log`` skips.

TensorBoard (``--tensorboard DIR``) gets the same numbers as scalars; ``torch.utils.tensorboard``
is imported only then (it needs the ``tensorboard`` package).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

FIELDS = ("step", "seconds", "wall_time", "train_loss", "test_nll", "test_images", "val_nll", "images_per_s", "lr")


def beside(checkpoint: str | os.PathLike, tail: str) -> Path:
    """A file that goes with ``checkpoint``: ``x.safetensors`` + ``tail`` -> ``x<tail>``."""
    p = Path(checkpoint)
    return p.with_name((p.stem if p.suffix == ".safetensors" else p.name) + tail)


def metrics_log_path(checkpoint: str | os.PathLike) -> Path:
    """Where the run writing ``checkpoint`` logs: ``x.safetensors`` -> ``x.metrics.jsonl``."""
    return beside(checkpoint, ".metrics.jsonl")


def read_metrics_log(path: str | os.PathLike, limit: int | None = None) -> list[dict]:
    """The records of a metrics log (a checkpoint path is taken to mean its log), oldest first;
    the last ``limit`` only if given. Lines that are not JSON objects (a torn last line) are
    skipped; a missing file gives []."""
    path = Path(path)
    if path.suffix == ".safetensors":
        path = metrics_log_path(path)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return []
    out = []
    for line in text.splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("step"), int):
            out.append(rec)
    return out[-limit:] if limit else out


def _finite(v):
    return v if v is None or (isinstance(v, (int, float)) and math.isfinite(v)) else None


class MetricsLog:
    """Writes records to the JSON-lines file (if ``path``) and to TensorBoard (if ``tensorboard``)."""

    def __init__(self, path: str | os.PathLike | None, tensorboard: str | None = None,
                 resume_step: int | None = None):
        self.path = Path(path) if path else None
        self._file = None
        self._tb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:
                raise RuntimeError(f"--tensorboard needs the tensorboard package (pip install tensorboard): {e}") from None
            self._tb = SummaryWriter(log_dir=str(tensorboard))
        if self.path is not None:
            kept = []
            if resume_step is not None:  # drop what the run logged after the checkpoint it resumes from
                kept = [r for r in read_metrics_log(self.path) if r["step"] <= resume_step]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - open for the run, closed by close()
            for r in kept:
                self._file.write(json.dumps(r) + "\n")
            self._file.flush()

    def write(self, record: dict):
        rec = {k: _finite(record.get(k)) for k in FIELDS}
        if self._file is not None:
            self._file.write(json.dumps(rec) + "\n")
            self._file.flush()
        if self._tb is not None:
            step, wall = rec["step"], rec["wall_time"]
            for tag, key in (("train/loss", "train_loss"), ("test/nll", "test_nll"), ("val/nll", "val_nll"),
                             ("train/images_per_s", "images_per_s"), ("train/lr", "lr")):
                if rec[key] is not None:
                    self._tb.add_scalar(tag, rec[key], global_step=step, walltime=wall)
            self._tb.flush()

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tb is not None:
            self._tb.close()
            self._tb = None
