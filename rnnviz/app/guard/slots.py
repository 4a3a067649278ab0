"""Fair slots for the listeners that answer without Gradio's queue (``queue=False``).

Generate is the explorer's most frequent, shortest job (one trace of a few tens of milliseconds),
and the queue's round trips (join, then the event stream) cost it about as much again. So Generate
runs as a direct request, and ``FairSlots`` does for it what the fair queue picker
(``fairness.fair_get_events``) does for queued jobs: at most ``slots`` run at once, one client runs
at most half of them (at least one), and when calls wait, the next to run is the one of the client
served least recently (arrival order among equals). A client flooding Generate therefore never
holds every slot: another client's call starts at once, or after at most one call of the flood,
and then shares the CPU with at most one of its calls; the request guard still bounds what each
client may have in flight
(``Settings.max_pending``) and refuses the rest as busy. A call that waits longer than
``MAX_WAIT_S`` is answered busy instead of holding its thread.
"""

from __future__ import annotations

import itertools
import threading
import time
from contextlib import contextmanager

from .base import Refused, busy

MAX_WAIT_S = 20.0  # a direct call waiting longer than this for a slot is answered "busy"


class FairSlots:
    """At most ``slots`` calls at once, at most ``per_client`` of one client (default: half the
    slots, at least one); waiting calls start least-recently-served client first."""

    def __init__(self, slots: int = 2, max_wait_s: float = MAX_WAIT_S, per_client: int | None = None):
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self.slots, self.max_wait_s = slots, max_wait_s
        self.per_client = max(1, slots // 2) if per_client is None else max(1, min(per_client, slots))
        self._cond = threading.Condition()
        self._running = 0
        self._by_client: dict[str, int] = {}  # client -> its calls running
        self._waiting: list[tuple[str, int]] = []  # (client, ticket) in arrival order
        self._served: dict[str, float] = {}  # client -> when its last call started
        self._tickets = itertools.count()

    def _next(self) -> int | None:
        """The ticket that runs next: among the clients under their share, the one served least
        recently (never: first), then arrival."""
        ready = [w for w in self._waiting if self._by_client.get(w[0], 0) < self.per_client]
        if not ready:
            return None
        return min(ready, key=lambda w: (self._served.get(w[0], -1.0), w[1]))[1]

    @contextmanager
    def slot(self, client: str):
        """Hold one slot for ``client`` while the block runs (waits fairly; Refused 503 past the wait)."""
        with self._cond:
            ticket = next(self._tickets)
            self._waiting.append((client, ticket))
            deadline = time.monotonic() + self.max_wait_s
            try:
                while not (self._running < self.slots and self._next() == ticket):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise busy(f"the server is busy: {len(self._waiting)} calls wait for {self.slots} slots",
                                   "try again in a moment")
                    self._cond.wait(left)
            except Refused:
                self._waiting.remove((client, ticket))
                self._cond.notify_all()
                raise
            self._waiting.remove((client, ticket))
            self._running += 1
            self._by_client[client] = self._by_client.get(client, 0) + 1
            self._served[client] = time.monotonic()
            if len(self._served) > 4096:  # forget the clients served longest ago
                for old in sorted(self._served, key=self._served.get)[:2048]:
                    del self._served[old]
        try:
            yield
        finally:
            with self._cond:
                self._running -= 1
                left = self._by_client[client] - 1
                if left:
                    self._by_client[client] = left
                else:
                    del self._by_client[client]
                self._cond.notify_all()
