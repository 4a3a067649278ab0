"""The sketchpad's images that Gradio holds in memory until a job takes them (``BlobStore``), and
the form they arrive in (``read_blob_form``)."""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict

from .base import (BLOB_FIELDS, BLOB_GRACE, MAX_BLOB_BYTES, MAX_BLOB_MEMORY, MAX_BLOBS, MAX_BLOBS_PER_CLIENT, Refused,
                   busy)
from .values import FileBudget


class BlobStore:
    """What Gradio's ImageEditor keeps in memory between ``accept_blobs`` and the job that takes
    the drawing (its ``blob_storage``, by drawing id), bounded per client and in all: a client's
    own oldest drawings make room for its new ones, others' only once ``grace`` seconds old."""

    def __init__(self, total: int = MAX_BLOBS, memory: int = MAX_BLOB_MEMORY, per_client: int = MAX_BLOBS_PER_CLIENT,
                 grace: float = BLOB_GRACE):
        self.total, self.memory, self.per_client, self.grace = total, memory, per_client, grace
        self._lock = threading.Lock()
        # (id(block), drawing id) -> [block (weak), client, time, images, bytes, requests in flight]
        self._held: OrderedDict[tuple, list] = OrderedDict()

    def _drop(self, key):
        ref = self._held.pop(key)[0]
        block = ref()
        if block is not None:
            getattr(block, "blob_storage", {}).pop(key[1], None)

    def _prune(self, block):
        """Forget drawings their job took (or whose component is gone); drop what Gradio holds
        that passed no ``admit`` (cannot happen through this guard) beyond ``total``."""
        for key, v in list(self._held.items()):
            b = v[0]()
            if b is None or v[5] == 0 and key[1] not in getattr(b, "blob_storage", {}):
                del self._held[key]
        storage = getattr(block, "blob_storage", {})
        unknown = [k for k in list(storage) if (id(block), k) not in self._held]
        for k in unknown[:max(0, len(storage) - self.total)]:
            storage.pop(k, None)

    def _count(self) -> int:
        return sum(v[3] for v in self._held.values())

    def _bytes(self) -> int:
        return sum(v[4] for v in self._held.values())

    def admit(self, block, drawing_id: str, client: str, size: int) -> tuple:
        """Room for one more image of ``size`` bytes from ``client``, or ``Refused``. Returns the
        key to pass to ``stored`` once Gradio has it."""
        with self._lock:
            self._prune(block)
            key = (id(block), drawing_id)
            entry = self._held.get(key)
            if entry is not None and entry[1] != client:
                raise Refused(400, "this drawing id belongs to another visitor")
            mine = [k for k, v in self._held.items() if v[1] == client and k != key and v[5] == 0]
            own = sum(v[3] for v in self._held.values() if v[1] == client)
            while mine and own + 1 > self.per_client:
                own -= self._held[mine[0]][3]
                self._drop(mine.pop(0))  # the client's own oldest drawings
            if own + 1 > self.per_client:
                raise busy("this address is already sending many drawings")
            now = time.time()
            for k in list(self._held):
                if self._count() + 1 <= self.total and self._bytes() + size <= self.memory:
                    break
                if k != key and self._held[k][5] == 0 and now - self._held[k][2] > self.grace:
                    self._drop(k)
            if self._count() + 1 > self.total or self._bytes() + size > self.memory:
                raise busy("the server holds as many drawings as it can", "try again in a minute")
            if entry is None:
                entry = self._held[key] = [weakref.ref(block), client, now, 0, 0, 0]
            entry[2], entry[3], entry[4], entry[5] = now, entry[3] + 1, entry[4] + size, entry[5] + 1
            return key

    def stored(self, key: tuple):
        """The request ``admit`` let through has ended."""
        with self._lock:
            entry = self._held.get(key)
            if entry is not None:
                entry[5] -= 1

    @staticmethod
    def charge(block, state, drawing_id: str, budget: FileBudget, name: str):
        """Count the images a job's drawing ``drawing_id`` will decode against ``budget``."""
        target = block
        if state is not None:
            target = state.blocks_config.blocks.get(block._id, block)
        held = getattr(target, "blob_storage", {}).get(drawing_id)
        if held is None:
            return
        for data in [held.background, held.composite, *(held.layers or [])]:
            if data is not None:
                budget.add_blob(bytes(data), name)


async def read_blob_form(body: bytes, headers) -> tuple[dict, list[tuple[str, bytes]]]:
    """The fields and files of a multipart ``component_server`` request (already read, bounded)."""
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def stream():
        yield body
        yield b""

    try:
        form = await MultiPartParser(headers, stream(), max_files=2, max_fields=len(BLOB_FIELDS) + 2,
                                     max_part_size=MAX_BLOB_BYTES).parse()
    except (MultiPartException, ValueError, KeyError, AssertionError):
        raise Refused(400, "the drawing's upload is not a well-formed form") from None
    fields, files = {}, []
    try:
        for key, value in form.multi_items():
            if hasattr(value, "read"):
                files.append((value.filename, await value.read()))
            else:
                fields[key] = value
    finally:
        await form.close()
    return fields, files
