"""What every request to the explorer's API passes before Gradio reads it.

Gradio checks a Radio's or Dropdown's choice itself, and its message (and the server's log) then
echoes the whole value sent: a 10 MB string becomes a 10 MB log line. It also fetches a file
field that holds a URL, and takes as many queued jobs from one visitor as the queue holds. So one
ASGI middleware, before any of that, refuses with a short message naming the field:

- a request body over ``MAX_BODY`` bytes (files travel through ``/gradio_api/upload``, not here);
- a string longer than ``MAX_CHOICE`` characters sent to a Radio or Dropdown, or longer than
  ``MAX_TEXT`` to any other field;
- a file field whose path is a URL, a data URL or a server path outside Gradio's upload folder
  (files must be uploaded to this server first), or a value of a type the field cannot take;
- an integer of more than ``MAX_DIGITS`` digits; a select event without its event data;
- a new job from a session that already has ``MAX_PENDING`` jobs waiting or running, or
  ``MAX_PENDING_PER_ENDPOINT`` of the same endpoint ("busy, try again").

Visitors' uploads in Gradio's cache are also kept under ``MAX_UPLOAD_CACHE`` bytes (the oldest go
first, before each new upload), besides the age-based sweep of ``delete_cache``.

Refusals are HTTP 413/400/503 answers with ``{"detail": message, "error": message}``; nothing of
the value is written to the log. ``cache_sweep`` says how often Gradio's cache is swept.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
from pathlib import Path

import gradio as gr

MAX_BODY = 1024 * 1024  # bytes of one API request's JSON body
MAX_CHOICE = 200  # characters of a value sent to a Radio or Dropdown
MAX_TEXT = 4096  # characters of any other string (a unit list is at most 2000)
MAX_DIGITS = 300  # of an integer (a 401-digit one overflows a float)
MAX_PENDING = 8  # jobs one session may have waiting or running (a page sends a few at once)
MAX_PENDING_PER_ENDPOINT = 1  # of one endpoint (a page waits for the answer before it asks again)
BUSY_DELAY = 0.5  # seconds before a "busy" answer: a flooding script's loop slows down to its pace
MAX_UPLOAD_CACHE = 512 * 2**20  # bytes of visitors' uploads in Gradio's cache, the oldest removed first
MAX_QUEUE = 64  # jobs the whole queue holds
CACHE_SWEEP = (60, 600)  # every minute, remove Gradio cache files (uploads included) older than 10 minutes
JOB_ROUTES = ("/gradio_api/queue/join", "/gradio_api/call/", "/gradio_api/run/", "/gradio_api/api/")
URL_PREFIXES = ("http:", "https:", "data:", "ftp:", "file:", "//")
FILE_META = {"_type": "gradio.FileData"}


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


def _in_cache(path: str) -> bool:
    """Whether ``path`` lies in Gradio's upload folder (where every uploaded file is put)."""
    from gradio.utils import get_upload_folder

    try:
        Path(path).resolve().relative_to(Path(get_upload_folder()).resolve())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _check_file(value: dict, name: str):
    path = value.get("path")
    if _is_url(path) or "path" not in value and _is_url(value.get("url")):
        raise Refused(400, f"{name}: files are not fetched from URLs or data URLs; upload the file instead")
    if "path" in value and not (isinstance(path, str) and path and _in_cache(path)):
        raise Refused(400, f"{name}: the file must be uploaded first (through /gradio_api/upload)")


def _check_value(value, name: str, max_len: int, depth: int = 0):
    """Raise ``Refused`` for an oversized string or number, or a file that was not uploaded (a URL,
    a data URL, a server path), anywhere in ``value``."""
    if depth > 20:
        raise Refused(400, f"{name}: the value is nested too deeply")
    if isinstance(value, str):
        if len(value) > max_len:
            raise Refused(413, f"{name}: the value is too long ({len(value):,} characters; at most {max_len:,})")
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= 10**MAX_DIGITS:
            raise Refused(400, f"{name}: the number is too large (more than {MAX_DIGITS} digits)")
    elif isinstance(value, dict):
        if "path" in value or "url" in value or value.get("meta") == FILE_META:
            _check_file(value, name)
        for v in value.values():
            _check_value(v, name, max_len, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_value(v, name, max_len, depth + 1)


def _file_or_none(value, name: str, what: str):
    if value is not None and not (isinstance(value, dict) and "path" in value):
        raise Refused(400, f"{name}: expected {what} (an uploaded file) or nothing")


def _check_shape(block, value, name: str):
    """Refuse a value of a type the component cannot take, before Gradio's own parsing raises."""
    if isinstance(block, gr.ImageEditor):  # the sketchpad: {"background", "layers", "composite"}
        if value is None:
            return
        if not isinstance(value, dict):
            raise Refused(400, f"{name}: a drawing is {{'background', 'layers', 'composite'}} of uploaded images")
        for key in ("background", "composite"):
            _file_or_none(value.get(key), name, f"its {key} as an image")
        layers = value.get("layers")
        if layers is not None and not isinstance(layers, list):
            raise Refused(400, f"{name}: the drawing's layers must be a list of images")
        for layer in layers or []:
            _file_or_none(layer, name, "each layer as an image")
    elif isinstance(block, (gr.UploadButton, gr.File, gr.Image)):
        for item in value if isinstance(value, list) and getattr(block, "file_count", "single") != "single" \
                else [value]:
            _file_or_none(item, name, "a file")
    elif isinstance(block, (gr.Radio, gr.Dropdown)):
        scalar = (str, int, float, type(None))
        if getattr(block, "multiselect", False):
            if not (isinstance(value, (str, type(None))) or isinstance(value, list) and all(
                    isinstance(v, scalar) for v in value)):
                raise Refused(400, f"{name}: choose from the list (a list of choices)")
        elif not isinstance(value, scalar) or isinstance(value, bool):
            raise Refused(400, f"{name}: choose one of the choices (got a {type(value).__name__})")


def _reads_selection(fn) -> bool:
    """Whether the handler takes a ``gr.SelectData`` (which item was selected)."""
    try:
        params = inspect.signature(fn.fn).parameters.values()
    except (TypeError, ValueError):
        return False
    for p in params:
        ann = p.annotation
        name = ann if isinstance(ann, str) else getattr(ann, "__name__", "")
        if "SelectData" in str(name):
            return True
    return False


def _check_event(fn, body: dict):
    """A select handler reads which item was chosen: refuse a call without it."""
    data = body.get("event_data")
    if not (isinstance(data, dict) and "index" in data and "value" in data) and _reads_selection(fn):
        raise Refused(400, "this event needs its event data ({'index': ..., 'value': ...}: the item selected)")


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
        _check_shape(block, value, _field(block, i))
    if fn is not None:
        _check_event(fn, body)
    for key, value in body.items():
        if key != "data":
            _check_value(value, key, MAX_TEXT)
    session = body.get("session_hash")
    queue = getattr(blocks, "_queue", None)
    if path.startswith("/gradio_api/queue/join") and isinstance(session, str) and queue is not None:
        total, same = pending_jobs(queue, session, fn)
        if total >= max_pending or same >= MAX_PENDING_PER_ENDPOINT:
            raise Refused(503, f"busy: you already have {total} jobs waiting ({same} of this one); wait for "
                               "them to finish, then try again")


def pending_jobs(queue, session: str, fn=None) -> tuple[int, int]:
    """(jobs of ``session`` waiting in Gradio's queue or running, those of them for ``fn``)."""
    events = [e for q in list(queue.event_queue_per_concurrency_id.values()) for e in list(q.queue)]
    events += [e for job in list(queue.active_jobs) for e in (job or [])]
    mine = [e for e in events if e.session_hash == session]
    return len(mine), sum(1 for e in mine if fn is not None and e.fn is fn)


def trim_uploads(blocks, max_bytes: int = MAX_UPLOAD_CACHE) -> list[str]:
    """Remove the oldest visitor uploads in Gradio's cache beyond ``max_bytes`` in all (files
    that no handler has taken are otherwise only removed by age, by ``delete_cache``)."""
    files = []
    for name in list(getattr(blocks, "upload_file_set", ())):
        try:
            st = os.stat(name)
        except OSError:
            blocks.upload_file_set.discard(name)
            continue
        files.append((st.st_mtime_ns, st.st_size, name))
    files.sort(reverse=True)  # newest first
    total, removed = 0, []
    for _, size, name in files:
        total += size
        if total > max_bytes:
            try:
                os.remove(name)
            except OSError:
                pass
            blocks.upload_file_set.discard(name)
            removed.append(name)
    return removed


class RequestGuard:
    """ASGI middleware applying ``check_request`` to every job request's JSON body."""

    def __init__(self, app, max_body: int = MAX_BODY, max_pending: int = MAX_PENDING):
        self.app, self.max_body, self.max_pending = app, max_body, max_pending

    async def __call__(self, scope, receive, send):
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope["type"] == "http" and scope.get("method") == "POST" and path.startswith("/gradio_api/upload"):
            app = scope.get("app")
            if app is not None and hasattr(app, "get_blocks"):
                trim_uploads(app.get_blocks())  # room for this one: the cache stays bounded in bytes
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
        if e.status == 503:
            await asyncio.sleep(BUSY_DELAY)
        payload = json.dumps({"detail": e.message, "error": e.message}).encode()
        await send({"type": "http.response.start", "status": e.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def middleware():
    """The ``middleware`` list for ``demo.launch(app_kwargs=...)``."""
    from starlette.middleware import Middleware

    return [Middleware(RequestGuard)]
