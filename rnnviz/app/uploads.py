"""Checkpoints that visitors upload: checked, then kept under a name the server chooses.

An upload is a file in Gradio's temporary folder plus the name the visitor gave it. The name is
only ever used as text: the stored file is ``<letters, digits, - and _ of the name>_<8 hex digits of
its SHA-256>.safetensors`` in the uploads folder, so no part of it can point elsewhere. The file is
validated with ``rnnviz.checkpoint.load_state`` (safetensors only, nothing is unpickled) and with
the explorer's own requirements before it is copied.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path, PurePosixPath

from ..checkpoint import APP_LIMITS, CheckpointError, load_state
from ..model import ModelConfig
from .inputs import IMAGE_SIZE, InputError, safe_name

SUFFIX = ".safetensors"
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_UPLOADS = 20  # files kept; the oldest are removed first


def display_name(name: str | None) -> str:
    """What to call an upload in messages: the last part of the visitor's name, printable, short."""
    text = (name or "").replace("\\", "/")
    last = PurePosixPath(text).name if text else ""
    last = "".join(ch if ch.isprintable() else "?" for ch in last)
    return (last[:40] + "\u2026" + last[-20:]) if len(last) > 60 else (last or "the file")


def stored_stem(name: str | None, digest: str) -> str:
    """The file stem an upload is stored under: sanitized name + content hash (never a path)."""
    stem = display_name(name)
    if stem.lower().endswith(SUFFIX):
        stem = stem[:-len(SUFFIX)]
    return f"{safe_name(stem, 'upload', max_len=40)}_{digest[:8]}"


def explorer_problem(config: ModelConfig, metrics: dict) -> str | None:
    """Why the explorer cannot show this checkpoint (None if it can)."""
    if (config.height, config.width) != IMAGE_SIZE:
        return (f"the model draws {config.height}\u00d7{config.width} images (another dataset size); the "
                f"explorer shows {IMAGE_SIZE[0]}\u00d7{IMAGE_SIZE[1]} (MNIST-size) models only")
    for key in ("test_nll", "train_seconds", "parameters", "step"):
        v = metrics.get(key)
        if v is not None and not _count(v):
            return f"metadata {key!r} should be a finite number >= 0, got {str(v)[:40]!r}"
    return None


def _count(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v) and v >= 0


def contradictions(model, meta: dict) -> str | None:
    """Metadata that disagrees with the tensors it describes."""
    claimed = meta.get("metrics", {}).get("parameters")
    if claimed is not None and int(claimed) != model.num_parameters():
        return (f"metadata says {int(claimed)} parameters but the tensors hold {model.num_parameters()} "
                "(contradictory metadata)")
    return None


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n} bytes"


def check(path: Path, name: str | None, max_bytes: int = MAX_UPLOAD_BYTES) -> None:
    """Raise ``InputError`` naming the problem if ``path`` (called ``name`` by the visitor) is not a
    checkpoint the explorer can use."""
    shown = display_name(name)
    if not (name or "").lower().endswith(SUFFIX):
        raise InputError(f"{shown}: only {SUFFIX} checkpoints are accepted (pickled .pt/.pth/.ckpt files "
                         "can run code when loaded, so they are never opened)")
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(f"{shown}: {_size(size)} is over the {_size(max_bytes)} upload limit")
    try:
        model, meta = load_state(path, limits=APP_LIMITS)  # the header is checked before the model is built
    except CheckpointError as e:
        raise InputError(str(e).replace(str(path), shown)) from None
    problem = explorer_problem(model.config, meta.get("metrics")) or contradictions(model, meta)
    if problem:
        raise InputError(f"{shown}: {problem}")


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


STORED = re.compile(r"^[A-Za-z0-9_-]+_[0-9a-f]{8}\.safetensors$")


class UploadStore:
    """The uploads folder: at most ``max_files`` checked checkpoints, the oldest removed first."""

    def __init__(self, folder: Path, max_bytes: int = MAX_UPLOAD_BYTES, max_files: int = MAX_UPLOADS):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.max_files = max_files
        self._lock = threading.Lock()

    def add(self, src: str | os.PathLike, name: str | None) -> Path:
        """Check ``src`` (a temporary file; ``name`` is what the visitor called it) and copy it in.
        Returns the stored path. Raises ``InputError`` with the reason."""
        src, shown = Path(src), display_name(name)
        if not src.is_file():
            raise InputError(f"{shown}: the upload did not arrive (no file)")
        check(src, name, self.max_bytes)
        target = self.folder / f"{stored_stem(name, sha256(src))}{SUFFIX}"
        if target.resolve().parent != self.folder.resolve():  # cannot happen: the stem has no separators
            raise InputError(f"{shown}: refused (the stored name would leave the uploads folder)")
        with self._lock:
            self.folder.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                fd, tmp = tempfile.mkstemp(prefix=".upload.", suffix=".tmp", dir=self.folder)
                try:
                    with os.fdopen(fd, "wb") as out, open(src, "rb") as f:
                        shutil.copyfileobj(f, out)
                    os.replace(tmp, target)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
            os.utime(target)  # uploading it again makes it the newest
            self._prune()
        return target

    def remove(self, stem: str) -> bool:
        """Delete the stored upload ``stem`` (nobody may list it any more). True if it was there."""
        name = f"{stem}{SUFFIX}"
        if not STORED.match(name):
            return False
        with self._lock:
            path = self.folder / name
            existed = path.exists()
            path.unlink(missing_ok=True)
        return existed

    def _prune(self):
        files = sorted((p for p in self.folder.iterdir() if STORED.match(p.name)), key=lambda p: p.stat().st_mtime_ns)
        for old in files[:max(0, len(files) - self.max_files)]:
            old.unlink(missing_ok=True)
