"""What each client has pending (``Pending``, ``pending_jobs``, ``check_fairness``) and the fair
queue picker installed on Gradio's queue (``fair_get_events``, ``take_new_session``)."""

from __future__ import annotations

import math
import random
import time
import types
from collections import Counter, OrderedDict

from .base import MAX_PENDING_PER_ENDPOINT, SETTINGS, busy, event_client
from .checks import Job


def _queued(queue) -> list:
    events = [e for q in list(queue.event_queue_per_concurrency_id.values()) for e in list(q.queue)]
    return events + [e for job in list(queue.active_jobs) for e in (job or [])]


def pending_jobs(queue, session: str | None, fn=None, client: str | None = None) -> tuple[int, int]:
    """(jobs waiting in Gradio's queue or running of ``client`` (or of ``session``), those of
    ``session`` for ``fn``)."""
    events = _queued(queue)
    mine = [e for e in events if (event_client(e) == client if client is not None else e.session_hash == session)]
    same = sum(1 for e in events if fn is not None and e.fn is fn and session is not None and e.session_hash == session)
    return len(mine), same


def _share(limit) -> float:
    """Slots of a concurrency group one client may hold: half of them, at least one."""
    return math.inf if limit is None else max(1, int(limit) // 2)


RECENT = 2.0  # seconds a client counts as present after its last job
QUIET = 0.2  # seconds without a job of anyone else before a client with a backlog may start one
BACKLOG = 3  # jobs waiting: a client sending more than it waits for
NEW_SESSION_RATE = 1.0  # new sessions per second one client may start while others are present
NEW_SESSION_BURST = 4.0  # (a page's first few jobs, sent at once, open one session: one token)


def fair_get_events(queue):
    """``Queue.get_events`` made fair between clients (Gradio's own takes the first job of a group).

    A job may start only if its client holds fewer than ``_share`` of its group's slots; and while
    another client is present (a job waiting, running or ended in the last ``RECENT`` seconds),
    only if its client has no job running, and, for a job that opens a new session (Gradio builds
    a copy of the page's state for each, ~20 ms here), only at ``NEW_SESSION_RATE`` per second.
    A client with ``BACKLOG`` or more jobs waiting, or told "busy" in the last ``RECENT`` seconds
    (a script that does not wait for its answers) starts one only after ``QUIET`` seconds in which
    no other client without such a backlog had a job.
    Among those, the client with the fewest running jobs, then the one served least recently in
    that group, then the oldest job. So a flooding client runs one job at a time beside everyone
    else's, whatever session ids it sends, and another client's job starts at once (or after one
    of the flood's, in a group of one slot)."""
    groups = queue.event_queue_per_concurrency_id
    ids = [cid for cid, eq in list(groups.items()) if eq.queue and (
        eq.concurrency_limit is None or eq.current_concurrency < eq.concurrency_limit)]
    if not ids:  # every waiting job's group is full: the common case while busy (asked every millisecond)
        return None
    state = queue.__dict__
    now = time.monotonic()
    sig = (sum(len(eq.queue) for eq in list(groups.values())), sum(j is not None for j in list(queue.active_jobs)))
    if state.get("_rnnviz_blocked") == sig and now < state.get("_rnnviz_until", 0):
        return None  # nothing changed since every waiting job was held back: ask again in a few ms
    served, seen, tokens = (state.setdefault(k, {}) for k in ("_rnnviz_served", "_rnnviz_seen", "_rnnviz_tokens"))
    running, per_client = Counter(), Counter()
    for job in list(queue.active_jobs):
        for e in job or []:
            running[(event_client(e), e.concurrency_id)] += 1
            per_client[event_client(e)] += 1
    present = _present(queue, now)
    waiting = Counter(event_client(e) for eq in list(groups.values()) for e in list(eq.queue))
    pushy = state.setdefault("_rnnviz_pushy", {})  # client -> when it was last told "busy"

    def backlog(c: str) -> bool:
        return waiting[c] >= BACKLOG or now - pushy.get(c, -math.inf) < RECENT

    light = state.setdefault("_rnnviz_light", {})  # clients without a backlog: when last seen with a job
    for c in set(waiting) | set(per_client):
        if not backlog(c):
            light[c] = now
    sessions = getattr(getattr(queue, "blocks", None), "state_holder", None)
    random.shuffle(ids)
    for cid in ids:
        eq = groups[cid]
        if any(e.fn.batch for e in eq.queue):
            return queue._rnnviz_get_events()  # Gradio's own (this app batches nothing)
        share, best, best_key = _share(eq.concurrency_limit), None, None
        for pos, e in enumerate(eq.queue):
            client = event_client(e)
            if running[(client, cid)] >= share:
                continue
            crowded = len(present - {client}) > 0
            if crowded and per_client[client]:
                continue
            if crowded and backlog(client) and any(now - t < QUIET for c, t in light.items() if c != client):
                continue
            if crowded and sessions is not None and e.session_hash not in sessions and _tokens(tokens, client, now) < 1:
                continue
            key = (per_client[client], served.get((client, cid), 0), pos)
            if best_key is None or key < best_key:
                best, best_key = e, key
        if best is None:
            continue
        eq.queue.remove(best)
        client = event_client(best)
        if sessions is not None and best.session_hash not in sessions and len(present - {client}) > 0:
            tokens[client] = (max(0.0, _tokens(tokens, client, now) - 1), now)
        state["_rnnviz_turn"] = state.get("_rnnviz_turn", 0) + 1
        served[(client, cid)] = state["_rnnviz_turn"]
        if len(served) + len(seen) + len(tokens) > 4096:  # forget clients that left
            for table in (served, seen, tokens, light, pushy):
                for k in [k for k in table if (k[0] if isinstance(k, tuple) else k) not in present]:
                    del table[k]
        state["_rnnviz_blocked"] = None
        return [best], False, cid
    state["_rnnviz_blocked"], state["_rnnviz_until"] = sig, now + 0.005
    return None


def _present(queue, now: float) -> set[str]:
    """The clients with a job waiting or running, or one that ended in the last ``RECENT`` seconds."""
    seen = queue.__dict__.setdefault("_rnnviz_seen", {})
    for e in _queued(queue):
        seen[event_client(e)] = now
    return {c for c, t in seen.items() if now - t < RECENT}


def take_new_session(queue, client: str, session: str | None = None) -> bool:
    """Whether ``client`` may open one more session (``session``) now: always while it is alone,
    else at ``NEW_SESSION_RATE`` per second (a token is taken, once per session)."""
    now = time.monotonic()
    granted = queue.__dict__.setdefault("_rnnviz_granted", OrderedDict())
    if session is not None and session in granted:
        return True
    if not _present(queue, now) - {client}:
        return True
    tokens = queue.__dict__.setdefault("_rnnviz_tokens", {})
    left = _tokens(tokens, client, now)
    if left < 1:
        return False
    tokens[client] = (left - 1, now)
    if session is not None:
        granted[session] = now
        while len(granted) > 1024:
            granted.popitem(last=False)
    return True


def _tokens(tokens: dict, client: str, now: float) -> float:
    """The client's new-session tokens now (a bucket of ``NEW_SESSION_BURST``, ``NEW_SESSION_RATE``/s)."""
    left, then = tokens.get(client, (NEW_SESSION_BURST, now))
    return min(NEW_SESSION_BURST, left + (now - then) * NEW_SESSION_RATE)


def install_fair_queue(blocks):
    """Make ``blocks``' queue pick jobs with ``fair_get_events`` (once)."""
    queue = getattr(blocks, "_queue", None)
    if queue is None or "_rnnviz_get_events" in queue.__dict__:
        return
    queue._rnnviz_get_events = queue.get_events
    queue.get_events = types.MethodType(fair_get_events, queue)


class Pending:
    """Job requests admitted by the guard and not yet answered (on their way into the queue, or
    running on a direct route), per client: with the queue's own, what a client has pending."""

    def __init__(self):
        self._n: Counter = Counter()

    def add(self, client: str):
        self._n[client] += 1

    def done(self, client: str):
        self._n[client] -= 1
        if self._n[client] <= 0:
            del self._n[client]

    def __getitem__(self, client: str) -> int:
        return self._n.get(client, 0)


def check_fairness(queue, job: Job, client: str, in_flight: int = 0, max_pending: int | None = None):
    """Refuse (busy) a job beyond the client's pending bound or its session's per-endpoint bound."""
    max_pending = SETTINGS.max_pending if max_pending is None else max_pending
    total, same = pending_jobs(queue, job.session, job.fn, client=client) if queue is not None else (0, 0)
    total += in_flight
    if total >= max_pending:
        raise busy(f"this address already has {total} jobs waiting or running (at most {max_pending})")
    if same >= MAX_PENDING_PER_ENDPOINT:
        raise busy(f"you already have {same} of these waiting or running")
