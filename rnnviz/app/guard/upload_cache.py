"""Visitors' uploads in Gradio's cache, bounded per client and in all (``UploadCache``,
``trim_uploads``)."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

from .base import (MAX_UPLOAD_CACHE, MAX_UPLOAD_CACHE_PER_CLIENT, MAX_UPLOAD_FILES_PER_CLIENT, MAX_UPLOADS_IN_FLIGHT,
                   UPLOAD_GRACE, Refused, busy)


def cached_files(blocks) -> list[tuple[str, os.stat_result]]:
    """(path, stat) of every visitor upload in Gradio's cache; a file gone from the disk leaves the
    cache's set."""
    out = []
    for name in list(getattr(blocks, "upload_file_set", ())):
        try:
            out.append((name, os.stat(name)))
        except OSError:
            blocks.upload_file_set.discard(name)
    return out


def trim_uploads(blocks, max_bytes: int = MAX_UPLOAD_CACHE, keep=None) -> list[str]:
    """Remove the oldest visitor uploads in Gradio's cache beyond ``max_bytes`` in all (files
    that no handler has taken are otherwise only removed by age, by ``delete_cache``); files for
    which ``keep(path)`` is true stay."""
    files = sorted(((st.st_mtime_ns, st.st_size, name) for name, st in cached_files(blocks)), reverse=True)  # newest first
    total, removed = 0, []
    for _, size, name in files:
        total += size
        if total > max_bytes and not (keep is not None and keep(name)):
            try:
                os.remove(name)
            except OSError:
                pass
            total -= size
            blocks.upload_file_set.discard(name)
            removed.append(name)
    return removed


class UploadCache:
    """Visitors' uploads in Gradio's cache, by client. Before an upload is let through, its
    Content-Length is reserved: the client's files and reservations stay under ``per_client``
    bytes and ``per_client_files`` files (its own oldest files go first), all of them under
    ``total`` (files older than ``grace`` seconds go, oldest first); else it is refused as busy."""

    def __init__(self, total: int | None = None, per_client: int | None = None, per_client_files: int | None = None,
                 grace: float | None = None, in_flight: int | None = None):  # None: the module's limits
        self.total = MAX_UPLOAD_CACHE if total is None else total
        self.per_client = MAX_UPLOAD_CACHE_PER_CLIENT if per_client is None else per_client
        self.per_client_files = MAX_UPLOAD_FILES_PER_CLIENT if per_client_files is None else per_client_files
        self.grace = UPLOAD_GRACE if grace is None else grace
        self.max_in_flight = MAX_UPLOADS_IN_FLIGHT if in_flight is None else in_flight
        self._lock = threading.Lock()
        self._owner: dict[str, tuple[str, float]] = {}  # path -> (client, time uploaded)
        self._reserved: Counter = Counter()  # client -> bytes in flight
        self._uploading: Counter = Counter()  # client -> uploads in flight
        self.peak = 0  # the most bytes held and reserved at once (for the tests)

    def _files(self, blocks) -> list[tuple[float, int, str, str]]:
        """(time, size, path, client) of every upload in the cache, oldest first."""
        out = []
        for path, st in cached_files(blocks):
            client, t = self._owner.get(path, ("unknown", st.st_mtime))
            out.append((t, st.st_size, path, client))
        for path in [p for p in self._owner if p not in getattr(blocks, "upload_file_set", ())]:
            del self._owner[path]
        return sorted(out)

    def _remove(self, blocks, path: str):
        try:
            os.remove(path)
        except OSError:
            pass
        blocks.upload_file_set.discard(path)
        self._owner.pop(path, None)

    def reserve(self, blocks, client: str, size: int):
        """Make room for ``size`` bytes from ``client``, or raise ``Refused``."""
        if size > self.per_client:
            raise Refused(413, f"the upload is too large ({size / 2**20:.0f} MB; at most "
                               f"{self.per_client // 2**20} MB in one request)")
        with self._lock:
            if self._uploading[client] >= self.max_in_flight:
                raise busy(f"this address is already sending {self._uploading[client]} uploads")
            files = self._files(blocks)
            mine = [f for f in files if f[3] == client]
            held = sum(f[1] for f in mine) + self._reserved[client]
            while mine and (held + size > self.per_client or len(mine) + 1 > self.per_client_files):
                _, old_size, path, _ = mine.pop(0)  # the client's own oldest
                self._remove(blocks, path)
                held -= old_size
            if held + size > self.per_client:
                raise busy("this address's uploads in flight fill its share of the server's upload space",
                           "wait for them to finish, then try again")
            files = self._files(blocks)
            used = sum(f[1] for f in files) + sum(self._reserved.values())
            now = time.time()
            for t, old_size, path, _ in files:
                if used + size <= self.total:
                    break
                if now - t > self.grace:
                    self._remove(blocks, path)
                    used -= old_size
            if used + size > self.total:
                raise busy("the server's upload space is full of other visitors' recent uploads", "try again in a minute")
            self._reserved[client] += size
            self._uploading[client] += 1
            self.peak = max(self.peak, used + size)

    def release(self, blocks, client: str, size: int, paths: list[str]):
        """The upload ended: its files (``paths``, those Gradio answered) now count as the client's, of
        which it keeps its newest ``per_client_files``."""
        with self._lock:
            self._reserved[client] -= size
            self._uploading[client] -= 1
            for c in [c for c, n in self._reserved.items() if n <= 0 and self._uploading[c] <= 0]:
                del self._reserved[c], self._uploading[c]
            now = time.time()
            for path in paths:
                if isinstance(path, str):
                    self._owner[path] = (client, now)
            mine = [f for f in self._files(blocks) if f[3] == client]
            for _, _, path, _ in mine[:max(0, len(mine) - self.per_client_files)]:  # one request of many files
                self._remove(blocks, path)
