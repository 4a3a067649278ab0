"""The ASGI middleware (``RequestGuard``): every request through ``route_of``, the checks of its
kind, then Gradio."""

from __future__ import annotations

import asyncio
import io
import json
import time

import gradio as gr

from .base import (BLOB_FIELDS, BUSY_DELAY, MAX_BLOB_BYTES, MAX_BODY, MAX_ID, MAX_LAYERS, MAX_REQUEST_PIXELS,
                   Refused, busy, scope_client)
from .blobs import BlobStore, read_blob_form
from .checks import Route, check_job, parse_job, parse_json, route_of
from .values import image_pixels
from .fairness import NEW_SESSION_RATE, Pending, check_fairness, install_fair_queue, take_new_session
from .upload_cache import UploadCache


class RequestGuard:
    """ASGI middleware: every request through ``route_of``, the checks of its kind, then Gradio."""

    def __init__(self, app, max_body: int = MAX_BODY, max_pending: int | None = None):
        self.app, self.max_body, self.max_pending = app, max_body, max_pending
        self.pending = Pending()
        self.uploads = UploadCache()
        self.blobs = BlobStore()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root):]
        route = route_of(scope.get("method", ""), path)
        if route.kind == "pass":
            return await self.app(scope, receive, send)
        app = scope.get("app")
        blocks = app.get_blocks() if app is not None and hasattr(app, "get_blocks") else None
        if blocks is None:  # not Gradio's app: nothing to check against
            return await self.app(scope, receive, send)
        install_fair_queue(blocks)
        client = scope_client(scope)
        try:
            if route.kind == "refuse":
                status = 405 if route.name == "method" else 404
                raise Refused(status, "this server does not serve that route")
            if route.kind == "upload":
                return await self._upload(scope, receive, send, blocks, client)
            if route.kind == "login" and getattr(blocks, "auth", None) is None:
                raise Refused(404, "this server has no login")
            limit = MAX_BLOB_BYTES + 16 * 1024 if route.kind in ("blobs", "login") else self.max_body
            body = await self._read(receive, limit, scope)
            if body is None:
                return  # the client went away
            if route.kind == "login":
                return await self._replay(scope, body, receive, send)
            if route.kind == "blobs":
                return await self._blobs(scope, body, receive, send, blocks, client, app)
            parsed = parse_json(body)
            if route.kind in ("cancel", "reset"):
                _check_plain(route, parsed)
                return await self._replay(scope, body, receive, send)
            job = parse_job(blocks, route, parsed)
            state = app.state_holder.session_data.get(job.session) if job.session and hasattr(app, "state_holder") \
                else None
            check_job(blocks, job, self.blobs, state)
            queue = getattr(blocks, "_queue", None)
            check_fairness(queue, job, client, self.pending[client], self.max_pending)
            if job.session is not None and state is None and queue is not None and hasattr(app, "state_holder") \
                    and not take_new_session(queue, client, job.session):  # Gradio builds its state in the join
                raise busy(f"this address opens new sessions faster than {NEW_SESSION_RATE:g} a second while "
                           "others are served", "reuse one (send its session_hash), or try again in a second")
        except Refused as e:
            if e.status == 503 and getattr(blocks, "_queue", None) is not None:  # a client that does not wait
                blocks._queue.__dict__.setdefault("_rnnviz_pushy", {})[client] = time.monotonic()
            return await self._refuse(send, e)
        self.pending.add(client)
        try:
            return await self._replay(scope, body, receive, send, handled_500=route.kind == "run")
        finally:
            self.pending.done(client)

    async def _read(self, receive, limit: int, scope) -> bytes | None:
        length = _content_length(scope)
        if length is not None and length > limit:
            raise Refused(413, f"the request is too large (over {limit // 1024} KB)")
        chunks, size, more = [], 0, True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise Refused(413, f"the request is too large (over {limit // 1024} KB)")
            chunks.append(chunk)
            more = msg.get("more_body", False)
        return b"".join(chunks)

    async def _replay(self, scope, body: bytes, real_receive, send, handled_500: bool = False):
        """Pass the request (``body`` already read) to Gradio. ``handled_500``: answer a handler's
        message (``gr.Error``) with 400 instead of Gradio's 500 (the direct routes)."""
        sent = False

        async def receive():
            nonlocal sent
            if sent:
                return await real_receive()  # the body was read: only a disconnect can follow
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        if not handled_500:
            return await self.app(scope, receive, send)

        def answer(start, payload: bytes):
            if start["status"] == 500 and _has_message(payload):
                start = dict(start, status=400)
            return start

        return await self.app(scope, receive, _buffered(send, answer))

    async def _upload(self, scope, receive, send, blocks, client):
        """``/gradio_api/upload``: room reserved for its Content-Length first (``UploadCache``); the
        files Gradio answers with are then the client's."""
        size = _content_length(scope)
        if size is None:
            raise Refused(411, "an upload must say its size (Content-Length)")
        self.uploads.reserve(blocks, client, size)
        paths: list = []

        def answered(start, payload: bytes):
            if start["status"] == 200:
                try:
                    paths.extend(json.loads(payload))
                except ValueError:
                    pass
            return start

        try:
            return await self.app(scope, receive, _buffered(send, answered))
        except OSError as e:  # Gradio writing the file: a full disk (nothing was answered yet)
            from ..uploads import disk_message

            return await self._refuse(send, Refused(507, disk_message(e, "the upload")))
        finally:
            self.uploads.release(blocks, client, size, paths)

    async def _blobs(self, scope, body: bytes, receive, send, blocks, client, app):
        """The sketchpad's ``accept_blobs``: one image of a drawing, checked before Gradio keeps it."""
        from starlette.datastructures import Headers

        headers = Headers(scope=scope)
        if not headers.get("content-type", "").startswith("multipart/form-data"):
            raise Refused(404, "this server has no such component function")
        fields, files = await read_blob_form(body, headers)
        if set(fields) - BLOB_FIELDS or fields.get("fn_name") != "accept_blobs" or len(files) != 1:
            raise Refused(400, "a drawing's image is sent as one file with its component_id, session_hash, "
                               "fn_name 'accept_blobs', type, index and id")
        try:
            component = int(fields.get("component_id", ""))
        except ValueError:
            component = None
        session = fields.get("session_hash")
        drawing_id = fields.get("id")
        if not (isinstance(session, str) and 0 < len(session) <= MAX_ID and isinstance(drawing_id, str)
                and 0 < len(drawing_id) <= MAX_ID):
            raise Refused(400, "the drawing's session_hash and id must be short strings")
        state = app.state_holder.session_data.get(session) if hasattr(app, "state_holder") else None
        block = blocks.blocks.get(component) if component is not None else None
        if state is not None and component in state.blocks_config.blocks:
            block = state.blocks_config.blocks[component]
        if not isinstance(block, gr.ImageEditor):
            raise Refused(404, "there is no drawing with that component_id")
        kind, index = fields.get("type"), fields.get("index")
        if kind not in ("background", "composite", "layer"):
            raise Refused(400, "the drawing's image type must be background, composite or layer")
        if kind == "layer":
            if not (isinstance(index, str) and index.isdigit() and int(index) < MAX_LAYERS):
                raise Refused(400, f"a layer's index must be a whole number below {MAX_LAYERS}")
        elif index not in (None, "", "null"):
            raise Refused(400, "only a layer has an index")
        data = files[0][1]
        if len(data) > MAX_BLOB_BYTES:
            raise Refused(413, f"the drawing's image is too large (at most {MAX_BLOB_BYTES // 1024} KB)")
        pixels = image_pixels(io.BytesIO(data))
        if pixels > MAX_REQUEST_PIXELS:
            raise Refused(413, f"the drawing is too large: its images hold more than {MAX_REQUEST_PIXELS:,} "
                               "pixels in all")
        key = self.blobs.admit(block, drawing_id, client, len(data))
        try:
            return await self._replay(scope, body, receive, send)
        finally:
            self.blobs.stored(key)

    @staticmethod
    async def _refuse(send, e: Refused):
        if e.status == 503:
            await asyncio.sleep(BUSY_DELAY)
        payload = json.dumps({"detail": e.message, "error": e.message}).encode()
        await send({"type": "http.response.start", "status": e.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(payload)).encode())]})
        await send({"type": "http.response.body", "body": payload})


def _buffered(send, answer):
    """A ``send`` that holds the response until its body is complete, then sends
    ``answer(start message, body)`` (the start message to send) and the body."""
    start, parts = None, []

    async def capture(message):
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body":
            return await send(message)
        parts.append(message.get("body", b""))
        if message.get("more_body"):
            return
        payload = b"".join(parts)
        await send(answer(start, payload))
        await send({"type": "http.response.body", "body": payload})

    return capture


def _content_length(scope) -> int | None:
    for k, v in scope.get("headers") or []:
        if k.lower() == b"content-length":
            try:
                return int(v)
            except ValueError:
                raise Refused(400, "the Content-Length header is not a number") from None
    return None


def _has_message(payload: bytes) -> bool:
    try:
        parsed = json.loads(payload)
    except ValueError:
        return False
    return isinstance(parsed, dict) and isinstance(parsed.get("error"), str) and bool(parsed["error"])


def _check_plain(route: Route, body: dict):
    """``/cancel`` and ``/reset``: their few fields, of their types."""
    fields = {"cancel": {"session_hash": str, "fn_index": int, "event_id": str}, "reset": {"event_id": str}}[route.kind]
    if set(body) != set(fields):
        raise Refused(400, f"/{route.kind} takes {', '.join(fields)}")
    for key, kind in fields.items():
        v = body[key]
        if not isinstance(v, kind) or isinstance(v, bool) or (len(v) > MAX_ID if isinstance(v, str) else abs(v) > 10**9):
            raise Refused(400, f"/{route.kind}: {key} must be a short {kind.__name__}")


def middleware():
    """The ``middleware`` list for ``demo.launch(app_kwargs=...)``."""
    from starlette.middleware import Middleware

    return [Middleware(RequestGuard)]
