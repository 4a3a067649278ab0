"""Checkpoints that visitors upload: checked, then kept under a name the server chooses.

An upload is a file in Gradio's temporary folder plus the name the visitor gave it. The name is
only ever used as text: the stored file is ``<letters, digits, - and _ of the name>_<8 hex digits of
its SHA-256>.safetensors`` in the uploads folder, so no part of it can point elsewhere. The file is
validated with ``rnnviz.checkpoint.load_state`` (safetensors only, nothing is unpickled) and with
the explorer's own requirements before it is copied.

Each stored upload is owned by the sessions that uploaded it, and counted against their client (an
address, as ``guard.client_key`` sees it): a client keeps at most ``MAX_UPLOADS_PER_CLIENT``; a
session's new upload replaces that session's own oldest, never another's; the folder holds at most
``MAX_UPLOADS`` in all, and when it is full of other visitors' uploads a new one is refused with a
message. Nothing is evicted to make room for another visitor. The store is trimmed when an upload
arrives; files whose sessions ended are removed by the explorer (``Explorer._session_ended``), and
temporary files a killed copy left behind when the store opens.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..checkpoint import APP_LIMITS, CheckpointError, load_state, remove_files
from ..model import ModelConfig, RowModel
from .inputs import IMAGE_SIZE, InputError, safe_name

SUFFIX = ".safetensors"
MAX_UPLOAD_BYTES = APP_LIMITS.file_bytes  # checkpoint.APP_FILE_BYTES: the explorer's 50 MB, written once
MAX_UPLOADS = 20  # files kept, all visitors together
MAX_UPLOADS_PER_CLIENT = 4  # of them one client (address) keeps
TEMP_PREFIX = ".upload."  # a copy in progress: .upload.<random>.tmp, renamed once complete


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


def check(path: Path, name: str | None, max_bytes: int = MAX_UPLOAD_BYTES) -> tuple[RowModel, dict]:
    """(model, metadata) of ``path`` (called ``name`` by the visitor), read once; ``InputError``
    naming the problem if it is not a checkpoint the explorer can use."""
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
    return model, meta


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


STORED = re.compile(r"^[A-Za-z0-9_-]+_[0-9a-f]{8}\.safetensors$")


@dataclass(frozen=True)
class Accepted:
    """A checked upload, stored: its path, and the model and metadata read while checking it (so
    nothing reads the file again: ``Registry.adopt``)."""

    path: Path
    model: RowModel
    meta: dict


@dataclass(frozen=True)
class Owner:
    """Who uploaded a file: the client (an address) and its session."""

    client: str
    session: str


def current_owner() -> Owner:
    """The visitor of the Gradio request being handled (the in-process "local" one outside a request)."""
    try:
        from gradio.context import LocalContext

        request = LocalContext.request.get(None)
    except Exception:  # no Gradio, or not inside an event
        request = None
    if request is None:
        return Owner("local", "local")
    from .guard import request_client

    return Owner(request_client(request), getattr(request, "session_hash", None) or "local")


def disk_message(e: OSError, what: str) -> str:
    """A short sentence for an OSError while writing ``what`` (no path: visitors read it)."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"{what}: the server's disk is full. Nothing was stored; try again later (or tell its operator)."
    return f"{what}: the server could not store it ({errno.errorcode.get(e.errno, 'error')}). Try again later."


def remove_orphan_temps(folder: Path) -> list[Path]:
    """Delete the partial copies (``.upload.*.tmp``) a killed server left in ``folder``."""
    return remove_files(Path(folder).glob(f"{TEMP_PREFIX}*.tmp") if Path(folder).is_dir() else [])


def remove_stale(folder: Path) -> list[Path]:
    """Delete every stored upload in ``folder`` (and orphan temporary files): a private upload is
    listed only for the sessions that uploaded it, and no session outlives the server, so the files
    a previous server left can never be shown again."""
    removed = remove_orphan_temps(folder)
    for p in Path(folder).iterdir() if Path(folder).is_dir() else []:
        if STORED.match(p.name):
            try:
                p.unlink()
                removed.append(p)
            except OSError:
                pass
    return removed


class UploadStore:
    """The uploads folder: at most ``max_files`` checked checkpoints, at most ``per_client`` of them
    from one client; a session's new upload replaces its own oldest once its client's share is full."""

    def __init__(self, folder: Path, max_bytes: int = MAX_UPLOAD_BYTES, max_files: int = MAX_UPLOADS,
                 per_client: int = MAX_UPLOADS_PER_CLIENT):
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.per_client = per_client
        self._lock = threading.Lock()
        self._owners: dict[str, dict[Owner, float]] = {}  # stem -> who uploaded it, when
        remove_orphan_temps(self.folder)

    def owners(self, stem: str) -> set[Owner]:
        with self._lock:
            return set(self._owners.get(stem, ()))

    def add(self, src: str | os.PathLike, name: str | None, owner: Owner | None = None) -> Path:
        """Check ``src`` (a temporary file; ``name`` is what the visitor called it) and copy it in,
        owned by ``owner`` (default: the visitor of the Gradio request being handled). Returns the
        stored path. Raises ``InputError`` with the reason (also when the store or the disk is full)."""
        return self.accept(src, name, owner).path

    def accept(self, src: str | os.PathLike, name: str | None, owner: Owner | None = None) -> Accepted:
        """``add``, returning also the model and metadata read (once) while checking the file."""
        src, shown = Path(src), display_name(name)
        owner = owner or current_owner()
        if not src.is_file():
            raise InputError(f"{shown}: the upload did not arrive (no file)")
        model, meta = check(src, name, self.max_bytes)
        stem = stored_stem(name, sha256(src))
        target = self.folder / f"{stem}{SUFFIX}"
        if target.resolve().parent != self.folder.resolve():  # cannot happen: the stem has no separators
            raise InputError(f"{shown}: refused (the stored name would leave the uploads folder)")
        with self._lock:
            try:
                self.folder.mkdir(parents=True, exist_ok=True)
                if not target.exists():
                    self._make_room(owner, shown)
                    self._copy(src, target)
                os.utime(target)  # uploading it again makes it the newest
            except OSError as e:
                raise InputError(disk_message(e, shown)) from None
            self._owners.setdefault(stem, {})[owner] = time.monotonic()
        return Accepted(target, model, meta)

    def _copy(self, src: Path, target: Path):
        from ..checkpoint import atomic_write  # the one atomic write (a temporary file renamed over target)

        with open(src, "rb") as f:
            atomic_write(target, lambda out: shutil.copyfileobj(f, out), prefix=TEMP_PREFIX, mode=None)

    def _stored(self) -> list[Path]:
        return sorted((p for p in self.folder.iterdir() if STORED.match(p.name)), key=_mtime)

    def _make_room(self, owner: Owner, shown: str):
        """Room for one more file from ``owner`` (the lock is held): files no running server owns go
        first (a public folder's, from earlier servers), then the session's own oldest uploads while
        its client's share or the folder is full; never another visitor's."""
        def held() -> list[tuple[float, str]]:  # (when, stem) the client holds, oldest first
            return sorted((min(t for o, t in owners.items() if o.client == owner.client), stem)
                          for stem, owners in self._owners.items() if any(o.client == owner.client for o in owners))

        stored = self._stored()
        for old in [p for p in stored if p.stem not in self._owners]:
            if len(stored) < self.max_files:
                break
            old.unlink(missing_ok=True)
            stored.remove(old)
        for _, stem in held():
            if len(held()) < self.per_client and len(self._stored()) < self.max_files:
                break
            if owner in self._owners.get(stem, {}):
                self._release(stem, owner)
        if len(held()) >= self.per_client:
            raise InputError(f"{shown}: this address already keeps {self.per_client} uploaded checkpoints on the "
                             "server (from other tabs); close them, or upload again later")
        if len(self._stored()) >= self.max_files:
            raise InputError(f"{shown}: the server keeps at most {self.max_files} uploaded checkpoints and is full "
                             "with other visitors'; try again later (or run the explorer on your own machine)")

    def _release(self, stem: str, owner: Owner):
        """``owner`` lets go of ``stem``; the file goes once nobody owns it."""
        owners = self._owners.get(stem, {})
        owners.pop(owner, None)
        if not owners:
            self._owners.pop(stem, None)
            (self.folder / f"{stem}{SUFFIX}").unlink(missing_ok=True)

    def remove(self, stem: str) -> bool:
        """Delete the stored upload ``stem`` (nobody may list it any more). True if it was there."""
        name = f"{stem}{SUFFIX}"
        if not STORED.match(name):
            return False
        with self._lock:
            self._owners.pop(stem, None)
            path = self.folder / name
            existed = path.exists()
            path.unlink(missing_ok=True)
        return existed


def _mtime(p: Path) -> int:
    try:
        return p.stat().st_mtime_ns
    except OSError:
        return 0
