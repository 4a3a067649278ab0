"""The checkpoints the explorer can use: the shipped folder, the server's runs folder and visitors'
uploads, read lazily (metadata only) and validated, with the loaded models kept in a small LRU.

A key from the page ("<origin>/<stem>") is looked up among the files found on disk, so it can never
name another path. The metrics shown beside a model come from its ``Entry`` (the checkpoint's
metadata), never from the model object. Every file is read within ``checkpoint.APP_LIMITS`` (the
model its header describes is checked before anything is allocated).

Uploads are private: an upload is listed only for the sessions that uploaded it (``claim``), until
they end (``release``), unless the registry is ``public_uploads`` (``--public-uploads``). No session
outlives the server, so a private registry removes the uploads an earlier server left when it opens.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from .. import CheckpointError, ModelConfig, RowModel, load_checkpoint
from ..checkpoint import APP_LIMITS, read_metadata
from . import inputs
from .uploads import explorer_problem, remove_stale

DEFAULT_CHECKPOINT = "mnist_lstm"


@dataclass(frozen=True)
class Entry:
    key: str  # "<origin>/<stem>": what the page and the API send
    name: str  # file stem
    origin: str  # "shipped", "run" or "upload"
    path: Path
    config: ModelConfig
    metrics: dict

    @property
    def label(self) -> str:
        c = self.config
        nll = self.metrics.get("test_nll")
        extra = f", NLL {float(nll):.1f}" if nll is not None else ""
        where = {"run": " (trained here)", "upload": " (uploaded)"}.get(self.origin, "")
        order = "" if c.order == "rows" else f", {c.order}"
        return f"{self.name}{where}: {c.cell.upper()} {c.layers}\u00d7{c.hidden}{order}{extra}"


class Registry:
    """Checkpoints found in a few folders. Keys are validated against what is on disk, so a key
    from the page can never name another path. Files the explorer cannot show (unreadable, another
    image size, bad metadata) are skipped and listed in ``problems``."""

    def __init__(self, folders: dict[str, Path], default: str = DEFAULT_CHECKPOINT, max_models: int = 6,
                 public_uploads: bool = False):
        self.folders = {origin: Path(p) for origin, p in folders.items()}
        self.default_name = default
        self.max_models = max_models
        self.public_uploads = public_uploads
        self._owners: dict[str, set[str]] = {}  # upload stem -> sessions that may see it
        self._lock = threading.Lock()
        self._meta: dict[tuple, Entry | str] = {}  # (path, mtime, size) -> Entry or error message
        self._models: OrderedDict[tuple, RowModel] = OrderedDict()
        self.problems: list[str] = []
        if "upload" in self.folders and not public_uploads:
            remove_stale(self.folders["upload"])  # nobody can be shown them any more

    # who sees which upload
    def claim(self, stem: str, session: str | None):
        """List the upload ``stem`` for ``session`` (None: the in-process "local" session)."""
        with self._lock:
            self._owners.setdefault(stem, set()).add(session or "local")

    def release(self, session: str | None) -> list[str]:
        """``session`` ended: its uploads are no longer listed for it. Returns the stems nobody
        holds any more."""
        key, orphans = session or "local", []
        with self._lock:
            for stem, owners in list(self._owners.items()):
                if key in owners:
                    owners.discard(key)
                    if not owners:
                        del self._owners[stem]
                        orphans.append(stem)
        return orphans

    def visible(self, entry: Entry, session: str | None) -> bool:
        if entry.origin != "upload" or self.public_uploads:
            return True
        with self._lock:
            return session is not None and session in self._owners.get(entry.name, ())

    def entries(self, session: str | None = None) -> list[Entry]:
        """The checkpoints ``session`` may list: shipped first, then runs, then its uploads (all
        uploads with ``public_uploads``; none for ``session`` None), by name."""
        return [e for e in self.all_entries() if self.visible(e, session)]

    def all_entries(self) -> list[Entry]:
        """Every readable checkpoint, shipped first, then runs, by name. Unreadable files are
        skipped and listed in ``problems``."""
        found, problems, seen = [], [], set()
        for origin, folder in self.folders.items():
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.safetensors")):
                try:
                    st = path.stat()
                except OSError:
                    continue
                sig = (str(path), st.st_mtime_ns, st.st_size)
                seen.add(sig)
                with self._lock:
                    cached = self._meta.get(sig)
                if cached is None:
                    cached = self._read_entry(origin, path)
                    with self._lock:
                        self._meta[sig] = cached
                if isinstance(cached, Entry):
                    found.append(cached)
                else:
                    problems.append(cached)
        with self._lock:  # forget files that are gone or changed: the cache stays as big as the folders
            self._meta = {sig: v for sig, v in self._meta.items() if sig in seen}
        self.problems = problems
        return found

    @staticmethod
    def _read_entry(origin: str, path: Path) -> Entry | str:
        """The entry for ``path``, or why the explorer cannot use it."""
        try:
            meta = read_metadata(path, limits=APP_LIMITS)
        except CheckpointError as e:
            return str(e).replace(str(path.parent), path.parent.name)
        problem = explorer_problem(meta["config"], meta["metrics"])
        if problem:
            return f"{path.parent.name}/{path.name}: {problem}"
        return _entry(origin, path, meta)

    def adopt(self, origin: str, path: Path, model: RowModel, meta: dict) -> Entry:
        """The entry of ``path`` (a file in ``origin``'s folder, already checked and loaded: an upload)
        with its ``model`` and metadata ``meta`` as read: listed and served without reading the file
        again."""
        path = self.folders[origin] / Path(path).name
        try:
            st = path.stat()
        except OSError:
            raise inputs.InputError(f"checkpoint {path.stem!r} is no longer available") from None
        entry = _entry(origin, path, meta)
        with self._lock:
            self._meta[(str(path), st.st_mtime_ns, st.st_size)] = entry
            self._remember(str(path), st.st_mtime_ns, model)
        return entry

    def clear_cache(self):
        """Forget every header read and model loaded: each file is read anew when next asked for
        (for tests and diagnostics)."""
        with self._lock:
            self._meta.clear()
            self._models.clear()

    def signature(self, session: str | None = None) -> tuple:
        return tuple((e.key, e.path.stat().st_mtime_ns if e.path.exists() else 0) for e in self.entries(session))

    def choices(self, session: str | None = None) -> list[tuple[str, str]]:
        return [(e.label, e.key) for e in self.entries(session)]

    def default_key(self) -> str | None:
        """The shipped default (mnist_lstm), else any shipped checkpoint, else any run, else None."""
        entries = self.entries()
        for e in entries:
            if e.origin == "shipped" and e.name == self.default_name:
                return e.key
        return entries[0].key if entries else None

    def get(self, key: str | None) -> Entry:
        """The entry of ``key`` (an upload's key works for whoever holds it; it is listed only for
        its session)."""
        for e in self.all_entries():
            if e.key == key:
                return e
        known = ", ".join(e.key for e in self.entries()) or "none"  # uploads are not named
        raise inputs.InputError(f"unknown checkpoint {key!r} (available: {known})")

    def model(self, key: str | None) -> tuple[Entry, RowModel]:
        """The entry and its model (eval, CPU), loaded once and kept while recently used."""
        entry = self.get(key)
        try:
            sig = (str(entry.path), entry.path.stat().st_mtime_ns)
        except OSError:
            raise inputs.InputError(f"checkpoint {key!r} is no longer available") from None
        with self._lock:
            model = self._models.get(sig)
            if model is not None:
                self._models.move_to_end(sig)
                return entry, model
        try:
            model = load_checkpoint(entry.path, limits=APP_LIMITS)
        except CheckpointError as e:
            raise inputs.InputError(f"cannot load {entry.name}: {str(e).replace(str(entry.path), entry.path.name)}"
                                    ) from None
        with self._lock:
            self._remember(*sig, model)
        return entry, model

    def _remember(self, path: str, mtime_ns: int, model: RowModel):
        """Keep ``model`` as the file's (the lock is held), the least recently used beyond ``max_models`` going."""
        self._models[(path, mtime_ns)] = model
        self._models.move_to_end((path, mtime_ns))
        while len(self._models) > self.max_models:
            self._models.popitem(last=False)


def _entry(origin: str, path: Path, meta: dict) -> Entry:
    return Entry(f"{origin}/{path.stem}", path.stem, origin, path, meta["config"], meta["metrics"])
