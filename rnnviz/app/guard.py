"""What every request to the explorer's API passes before Gradio reads it.

Gradio checks a Radio's or Dropdown's choice itself, and its message (and the server's log) then
echoes the whole value sent: a 10 MB string becomes a 10 MB log line. It also fetches a file
field that holds a URL, and takes as many queued jobs from one visitor as the queue holds. So one
ASGI middleware, before any of that, refuses with a short message naming the field:

- a request body over ``MAX_BODY`` bytes (files travel through ``/gradio_api/upload``, not here);
- a string longer than ``MAX_CHOICE`` characters sent to a Radio or Dropdown, or longer than
  ``MAX_TEXT`` to any other field;
- a file field whose path is a URL or a data URL (files must be uploaded to this server first);
- a new job from a session that already has ``max_pending`` jobs waiting or running ("busy").

Refusals are HTTP 413/400/503 answers with ``{"detail": message, "error": message}``; nothing of
the value is written to the log. ``cache_sweep`` says how often Gradio's cache is swept.
"""

from __future__ import annotations

import json
import os

import gradio as gr

MAX_BODY = 1024 * 1024  # bytes of one API request's JSON body
MAX_CHOICE = 200  # characters of a value sent to a Radio or Dropdown
MAX_TEXT = 4096  # characters of any other string (a unit list is at most 2000)
MAX_PENDING = 4  # jobs one session may have waiting or running
MAX_QUEUE = 64  # jobs the whole queue holds
CACHE_SWEEP = (60, 600)  # every minute, remove Gradio cache files (uploads included) older than 10 minutes
JOB_ROUTES = ("/gradio_api/queue/join", "/gradio_api/call/", "/gradio_api/run/", "/gradio_api/api/")
URL_PREFIXES = ("http:", "https:", "data:", "ftp:", "file:", "//")


def cache_sweep() -> tuple[int, int]:
    """(interval, age) in seconds for ``gr.Blocks(delete_cache=...)``: ``RNNVIZ_CACHE_SWEEP``
    ("interval,age") if set (the tests sweep every second), else ``CACHE_SWEEP``."""
    text = os.environ.get("RNNVIZ_CACHE_SWEEP", "")
    try:
        interval, age = (int(float(x)) for x in text.split(","))
        if interval > 0 and age > 0:
            return interval, age
    except ValueError:
        pass
    return CACHE_SWEEP


class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _field(block, i: int) -> str:
    label = getattr(block, "label", None) or getattr(block, "elem_id", None)
    return f"{label!s:.60}" if label else f"input {i + 1}"


def _is_url(path) -> bool:
    return isinstance(path, str) and path.strip().lower().startswith(URL_PREFIXES)


def _check_value(value, name: str, max_len: int, depth: int = 0):
    """Raise ``Refused`` for an oversized string or a URL-sourced file anywhere in ``value``."""
    if depth > 20:
        raise Refused(400, f"{name}: the value is nested too deeply")
    if isinstance(value, str):
        if len(value) > max_len:
            raise Refused(413, f"{name}: the value is too long ({len(value):,} characters; at most {max_len:,})")
    elif isinstance(value, dict):
        for key in ("path", "url"):
            if key == "path" and _is_url(value.get(key)) or key == "url" and "path" not in value and _is_url(
                    value.get(key)):
                raise Refused(400, f"{name}: files are not fetched from URLs or data URLs; upload the file instead")
        for v in value.values():
            _check_value(v, name, max_len, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_value(v, name, max_len, depth + 1)


def _function(blocks, path: str, body: dict):
    """The BlockFunction a job request names (by fn_index, or by api name in its path)."""
    if path.startswith("/gradio_api/queue/join"):
        idx = body.get("fn_index")
        return blocks.fns.get(idx) if isinstance(idx, int) and not isinstance(idx, bool) else None
    name = path.split("/")[3] if path.count("/") >= 3 else ""
    return next((fn for fn in blocks.fns.values() if fn.api_name == name), None)


def check_request(blocks, path: str, body: dict, max_pending: int = MAX_PENDING):
    """Raise ``Refused`` if this job request must not reach Gradio (see the module docstring)."""
    data = body.get("data")
    fn = _function(blocks, path, body)
    inputs = list(getattr(fn, "inputs", None) or [])
    for i, value in enumerate(data if isinstance(data, list) else [data]):
        block = inputs[i] if i < len(inputs) else None
        choice = isinstance(block, (gr.Radio, gr.Dropdown))
        _check_value(value, _field(block, i), MAX_CHOICE if choice else MAX_TEXT)
    for key, value in body.items():
        if key != "data":
            _check_value(value, key, MAX_TEXT)
    session = body.get("session_hash")
    queue = getattr(blocks, "_queue", None)
    if (path.startswith("/gradio_api/queue/join") and isinstance(session, str) and queue is not None
            and pending_jobs(queue, session) >= max_pending):
        raise Refused(503, f"busy: you already have {max_pending} jobs waiting; wait for them to finish, "
                           "then try again")


def pending_jobs(queue, session: str) -> int:
    """Jobs of ``session`` waiting in Gradio's queue or running."""
    n = 0
    for event_queue in list(queue.event_queue_per_concurrency_id.values()):
        n += sum(1 for e in list(event_queue.queue) if e.session_hash == session)
    for events in list(queue.active_jobs):
        n += sum(1 for e in (events or []) if e.session_hash == session)
    return n


class RequestGuard:
    """ASGI middleware applying ``check_request`` to every job request's JSON body."""

    def __init__(self, app, max_body: int = MAX_BODY, max_pending: int = MAX_PENDING):
        self.app, self.max_body, self.max_pending = app, max_body, max_pending

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] != "http" or scope.get("method") != "POST" or not path.startswith(JOB_ROUTES):
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return await self._refuse(send, Refused(413, f"the request is too large (over "
                                                             f"{self.max_body // 1024} KB)"))
            chunks.append(chunk)
            more = msg.get("more_body", False)
        body = b"".join(chunks)
        try:
            parsed = json.loads(body) if body else {}
            if isinstance(parsed, dict):
                app = scope.get("app")
                blocks = app.get_blocks() if app is not None and hasattr(app, "get_blocks") else None
                if blocks is not None:
                    check_request(blocks, path, parsed, self.max_pending)
        except Refused as e:
            return await self._refuse(send, e)
        except ValueError:
            pass  # not JSON: Gradio answers it

        sent = False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(send, e: Refused):
        payload = json.dumps({"detail": e.message, "error": e.message}).encode()
        await send({"type": "http.response.start", "status": e.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def middleware():
    """The ``middleware`` list for ``demo.launch(app_kwargs=...)``."""
    from starlette.middleware import Middleware

    return [Middleware(RequestGuard)]
