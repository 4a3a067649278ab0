"""The checks of one request's content: its JSON (``json_depth``, ``parse_json``), its route
(``route_of``), the job it names (``parse_job``) and each value against its component
(``check_job``), with the files and drawings it names summed (``FileBudget``)."""

from __future__ import annotations

import inspect
import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr
import numpy as np

from .base import (API, CALL_KEYS, DRAWING_KEYS, FILE_KEYS, FILE_META, JOB_KEYS, MAX_CHOICE, MAX_DEPTH,
                   MAX_DIGITS, MAX_FILES, MAX_ID, MAX_LAYERS, MAX_REQUEST_BYTES, MAX_REQUEST_PIXELS, MAX_TEXT,
                   URL_PREFIXES, Refused)

if TYPE_CHECKING:
    from .blobs import BlobStore


# ---- JSON before it is parsed ----------------------------------------------------------------------
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)


def json_depth(body: bytes) -> int:
    """How deeply ``body`` (JSON text) nests arrays and objects, read without parsing it: strings are
    cut out, then the brackets are counted (a few milliseconds for a megabyte)."""
    structure = np.frombuffer(_JSON_STRING.sub(b"", body), np.uint8)
    if not len(structure):
        return 0
    step = (structure == ord("[")).astype(np.int32) + (structure == ord("{")) \
        - (structure == ord("]")) - (structure == ord("}"))
    return int(np.cumsum(step).max(initial=0))


def parse_json(body: bytes, max_depth: int = MAX_DEPTH) -> dict:
    """The JSON object in ``body``; ``Refused`` if it nests deeper than ``max_depth``, is not JSON or
    not an object."""
    if json_depth(body) > max_depth:
        raise Refused(400, f"the request nests its values too deeply (at most {max_depth} levels)")
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # ValueError: bad JSON, or an integer of over 4300 digits
        raise Refused(400, "the request body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise Refused(400, "the request body must be a JSON object")
    return parsed


# ---- routes ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    kind: str  # pass, join, call, call_v2, run, upload, blobs, cancel, reset, login, refuse
    name: str | None = None


def route_of(method: str, path: str) -> Route:
    """What a request to ``path`` is, for every route Gradio 6 serves (``gradio/routes.py``)."""
    if method in ("GET", "HEAD", "OPTIONS"):
        return Route("pass")  # these read no body
    if method != "POST":
        return Route("refuse", "method")
    if path in ("/login", "/login/"):
        return Route("login")
    if not path.startswith(API + "/"):
        return Route("refuse")
    parts = path[len(API) + 1:].split("/")
    if len(parts) > 1 and parts[-1] == "":  # Gradio serves each route with and without a trailing "/"
        parts = parts[:-1]
    match parts:
        case ["queue", "join"]:
            return Route("join")
        case ["call", "v2", name] if name:
            return Route("call_v2", name)
        case ["call", name] if name:
            return Route("call", name)
        case ["run" | "api", name] if name:
            return Route("run", name)
        case ["upload"]:
            return Route("upload")
        case ["component_server"]:
            return Route("blobs")
        case ["cancel"]:
            return Route("cancel")
        case ["reset"]:
            return Route("reset")
    return Route("refuse")  # stream/..., process_recording, run-history, vibe-*, profiling, anything else


# ---- values ----------------------------------------------------------------------------------------
def _field(block, i: int) -> str:
    label = getattr(block, "label", None) or getattr(block, "elem_id", None)
    return f"{label!s:.60}" if label else f"input {i + 1}"


def _is_url(path) -> bool:
    return isinstance(path, str) and path.strip().lower().startswith(URL_PREFIXES)


def upload_folder() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def _in_cache(path: str) -> bool:
    """Whether ``path`` lies in Gradio's upload folder (where every uploaded file is put)."""
    try:
        Path(path).resolve().relative_to(upload_folder())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _is_file(value) -> bool:
    return isinstance(value, dict) and ("path" in value or "url" in value or value.get("meta") == FILE_META)


def _check_file(value, name: str, budget: FileBudget | None = None, image: bool = False):
    """A file a visitor uploaded to this server first: never a URL, a data URL or a server path."""
    if not isinstance(value, dict):
        raise Refused(400, f"{name}: expected an uploaded file, got a {type(value).__name__}")
    path = value.get("path")
    if _is_url(path) or _is_url(value.get("url")) and "path" not in value:
        raise Refused(400, f"{name}: files are not fetched from URLs or data URLs; upload the file instead")
    if not (isinstance(path, str) and path and len(path) <= MAX_TEXT and _in_cache(path)):
        raise Refused(400, f"{name}: the file must be uploaded first (through /gradio_api/upload)")
    if value.get("meta") != FILE_META or set(value) - FILE_KEYS:
        raise Refused(400, f"{name}: a file is {{'path': ..., 'meta': {{'_type': 'gradio.FileData'}}}} "
                           "as /gradio_api/upload answered it")
    for key in ("url", "orig_name", "mime_type"):
        if not isinstance(value.get(key), (str, type(None))) or len(value.get(key) or "") > MAX_TEXT:
            raise Refused(400, f"{name}: the file's {key} must be a short string")
    if not isinstance(value.get("size"), (int, type(None))) or not isinstance(value.get("is_stream", False), bool):
        raise Refused(400, f"{name}: the file's size must be a number and is_stream true or false")
    if budget is not None:
        budget.add_file(path, name, image)


def _check_value(value, name: str, max_len: int, depth: int = 0, budget: FileBudget | None = None):
    """Raise ``Refused`` for an oversized string or number, or a file that was not uploaded (a URL,
    a data URL, a server path), anywhere in ``value``."""
    if depth > MAX_DEPTH:
        raise Refused(400, f"{name}: the value is nested too deeply")
    if isinstance(value, str):
        if len(value) > max_len:
            raise Refused(413, f"{name}: the value is too long ({len(value):,} characters; at most {max_len:,})")
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= 10**MAX_DIGITS:
            raise Refused(400, f"{name}: the number is too large (more than {MAX_DIGITS} digits)")
    elif isinstance(value, dict):
        if _is_file(value):
            _check_file(value, name, budget)
        for k, v in value.items():
            _check_value(k, name, MAX_CHOICE, depth + 1)
            _check_value(v, name, max_len, depth + 1, budget)
    elif isinstance(value, list):
        for v in value:
            _check_value(v, name, max_len, depth + 1, budget)


SCALAR = (str, int, float, type(None))


def _check_field(block, value, name: str, budget: FileBudget, blobs: BlobStore | None = None, state=None):
    """Refuse a value of a type the component cannot take, before Gradio's own parsing raises."""
    choice = isinstance(block, (gr.Radio, gr.Dropdown))
    if isinstance(block, gr.ImageEditor):  # the sketchpad: {"background", "layers", "composite", "id"}
        if value is None:
            return
        if not isinstance(value, dict) or set(value) - DRAWING_KEYS:
            raise Refused(400, f"{name}: a drawing is {{'background', 'layers', 'composite'}} of uploaded images")
        for key in ("background", "composite"):
            if value.get(key) is not None:
                _check_file(value[key], f"{name} ({key})", budget, image=True)
        layers = value.get("layers")
        if layers is not None and not (isinstance(layers, list) and len(layers) <= MAX_LAYERS):
            raise Refused(400, f"{name}: the drawing's layers must be a list of at most {MAX_LAYERS} images")
        for layer in layers or []:
            _check_file(layer, f"{name} (a layer)", budget, image=True)
        drawing_id = value.get("id")
        if drawing_id is not None:
            if not isinstance(drawing_id, str) or len(drawing_id) > MAX_ID:
                raise Refused(400, f"{name}: the drawing's id must be a short string")
            if blobs is not None:
                blobs.charge(block, state, drawing_id, budget, name)
        return
    if isinstance(block, (gr.UploadButton, gr.File, gr.Image)):
        many = getattr(block, "file_count", "single") != "single"
        items = value if many and isinstance(value, list) else [value]
        for item in items:
            if item is not None:
                _check_file(item, name, budget, image=isinstance(block, gr.Image))
        return
    if choice:
        if getattr(block, "multiselect", False):
            if not (isinstance(value, (str, type(None))) or isinstance(value, list) and all(
                    isinstance(v, SCALAR) and not isinstance(v, bool) for v in value)):
                raise Refused(400, f"{name}: choose from the list (a list of choices)")
        elif not isinstance(value, SCALAR) or isinstance(value, bool):
            raise Refused(400, f"{name}: choose one of the choices (got a {type(value).__name__})")
    elif isinstance(block, gr.Checkbox):
        if not isinstance(value, (bool, type(None))):
            raise Refused(400, f"{name}: must be true or false (got a {type(value).__name__})")
    elif isinstance(block, (gr.Slider, gr.Number)):
        if not isinstance(value, SCALAR):
            raise Refused(400, f"{name}: must be a number (got a {type(value).__name__})")
    elif isinstance(block, gr.Textbox):
        if not isinstance(value, SCALAR) or isinstance(value, bool):
            raise Refused(400, f"{name}: must be text (got a {type(value).__name__})")
    _check_value(value, name, MAX_CHOICE if choice else MAX_TEXT, budget=budget)


class FileBudget:
    """The files and images one request names, summed: at most ``MAX_FILES`` references,
    ``MAX_REQUEST_BYTES`` bytes, ``MAX_REQUEST_PIXELS`` pixels (read from the image headers only)."""

    def __init__(self, max_files: int = MAX_FILES, max_bytes: int = MAX_REQUEST_BYTES,
                 max_pixels: int = MAX_REQUEST_PIXELS):
        self.max_files, self.max_bytes, self.max_pixels = max_files, max_bytes, max_pixels
        self.files = self.bytes = self.pixels = 0
        self._sizes: dict[str, tuple[int, int]] = {}  # path -> (bytes, pixels), read once

    def add_file(self, path: str, name: str, image: bool):
        if path not in self._sizes:
            try:
                size = os.stat(path).st_size
            except OSError:
                size = 0  # gone: Gradio's own reading says so
            self._sizes[path] = (size, image_pixels(path) if image else 0)
        size, pixels = self._sizes[path]
        self.add(size, pixels, name)

    def add_blob(self, data: bytes, name: str):
        self.add(len(data), image_pixels(io.BytesIO(data)), name)

    def add(self, size: int, pixels: int, name: str):
        self.files += 1
        self.bytes += size
        self.pixels += pixels
        if self.files > self.max_files:
            raise Refused(413, f"{name}: the request names too many files (at most {self.max_files})")
        if self.bytes > self.max_bytes:
            raise Refused(413, f"{name}: the files of this request are too large together "
                               f"(at most {self.max_bytes // 2**20} MB)")
        if self.pixels > self.max_pixels:
            raise Refused(413, f"{name}: the drawing is too large: its images hold more than "
                               f"{self.max_pixels:,} pixels in all")


def image_pixels(source) -> int:
    """Width x height from an image's header (nothing is decoded); 0 if it is not an image."""
    from PIL import Image

    try:
        with Image.open(source) as im:
            w, h = im.size
    except Exception:  # not an image, or an unreadable one: Gradio's reading gives the message
        return 0
    return int(w) * int(h)


# ---- jobs ------------------------------------------------------------------------------------------
@dataclass
class Job:
    fn: object
    data: list
    session: str | None


def _api_info(blocks) -> dict:
    info = getattr(blocks, "_rnnviz_api_info", None)
    if info is None:
        info = blocks.get_api_info(all_endpoints=True)["named_endpoints"]
        blocks._rnnviz_api_info = info
    return info


def _by_name(blocks, name: str):
    return next((fn for fn in blocks.fns.values() if fn.api_name == name and fn.api_visibility != "private"), None)


def _unload_only(fn) -> bool:
    targets = getattr(fn, "targets", None) or []
    return bool(targets) and all(t[1] == "unload" for t in targets)


def _short(text: str, n: int = 40) -> str:
    text = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return text if len(text) <= n else text[:n] + "\u2026"


def _session(body: dict, required: bool) -> str | None:
    session = body.get("session_hash")
    if session is None and not required or isinstance(session, str) and 0 < len(session) <= MAX_ID:
        return session
    raise Refused(400, f"session_hash must be a string of at most {MAX_ID} characters")


def parse_job(blocks, route: Route, body: dict) -> Job:
    """The function and the values (one per input, by position) a job request names, whatever the
    route; ``Refused`` for anything this app does not serve."""
    name = route.name
    if route.kind == "call_v2":
        fn = _by_name(blocks, name)
        params = _api_info(blocks).get(f"/{name}", {}).get("parameters") if fn is not None else None
        if params is None:
            raise Refused(404, f"there is no endpoint {_short(name)!r}")
        values = dict(body)
        values.pop("oauth_token", None)
        names = [p.get("parameter_name") for p in params]
        unknown = [k for k in values if k not in names]
        if unknown:
            raise Refused(400, f"/{name} has no parameter {_short(unknown[0])!r} (its parameters: "
                               f"{', '.join(map(str, names)) or 'none'})")
        data = []
        for p in params:
            if p.get("parameter_name") in values:
                data.append(values[p["parameter_name"]])
            elif p.get("parameter_has_default"):
                data.append(p.get("parameter_default"))
            else:
                raise Refused(400, f"/{name}: no value for {p.get('parameter_name')!r}")
        return _job(fn, data, None, body, route, name)
    allowed = CALL_KEYS if route.kind == "call" else JOB_KEYS
    unknown = [k for k in body if k not in allowed]
    if unknown:
        raise Refused(400, f"unknown key {_short(unknown[0])!r} in the request (expected {', '.join(sorted(allowed))})")
    session = _session(body, required=route.kind == "join")
    if body.get("batched") or not isinstance(body.get("simple_format", False), bool):
        raise Refused(400, "batched requests are not served")
    for key in ("event_id", "oauth_token"):
        if not isinstance(body.get(key), (str, type(None))) or len(body.get(key) or "") > MAX_ID:
            raise Refused(400, f"{key} must be a short string")
    for key in ("fn_index", "trigger_id"):
        v = body.get(key)
        if v is not None and (not isinstance(v, int) or isinstance(v, bool) or abs(v) > 10**9):
            raise Refused(400, f"{key} must be a whole number")
    index = body.get("fn_index")
    if route.kind == "join" or route.kind == "run" and index is not None:  # Gradio prefers fn_index
        fn = blocks.fns.get(index) if index is not None else None
        if fn is None:
            raise Refused(404 if index is not None else 400, f"there is no function {index!r}" if index is not None
                          else "fn_index is missing")
    else:
        fn = _by_name(blocks, name)
        if fn is None:
            raise Refused(404, f"there is no endpoint {_short(name)!r}")
    data = body.get("data")
    if not isinstance(data, list):
        raise Refused(400, "data must be a list of the endpoint's values")
    return _job(fn, data, session, body, route, name)


def _job(fn, data: list, session, body: dict, route: Route, name) -> Job:
    if getattr(fn, "fn", None) is None or _unload_only(fn):
        raise Refused(404, "this function has no server side")
    if route.kind == "run" and getattr(fn, "queue", True):
        raise Refused(404, f"/{_short(fn.api_name or name)} runs through the queue: "
                           f"POST {API}/call/{_short(fn.api_name or name)} (or {API}/queue/join) instead")
    inputs = list(fn.inputs or [])
    api_inputs = [b for b in inputs if not getattr(b, "skip_api", False)]
    if len(data) == len(inputs):
        blocks_for = inputs
    elif route.kind in ("call", "call_v2") and len(data) == len(api_inputs):
        blocks_for = api_inputs
    else:
        raise Refused(400, f"/{_short(fn.api_name or name)} takes {len(api_inputs)} values, got {len(data)}")
    _check_event(fn, body.get("event_data"))
    return Job(fn, list(zip(blocks_for, data)), session)


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


def _check_event(fn, data):
    """Event data is small; a select handler reads which item was chosen: refuse a call without it."""
    if data is not None:
        _check_value(data, "event_data", MAX_TEXT)
    if not _reads_selection(fn):
        return
    index = data.get("index") if isinstance(data, dict) else None
    whole = isinstance(index, int) and not isinstance(index, bool)
    pair = isinstance(index, list) and 0 < len(index) <= 2 and all(
        isinstance(i, int) and not isinstance(i, bool) for i in index)
    if not (isinstance(data, dict) and "value" in data and (whole or pair)):
        raise Refused(400, "this event needs its event data ({'index': a whole number, 'value': ...}: "
                           "the item selected)")


def check_job(blocks, job: Job, blobs: BlobStore | None = None, state=None) -> FileBudget:
    """Check each value against its component, and the files of the whole request together."""
    budget = FileBudget()
    for i, (block, value) in enumerate(job.data):
        _check_field(block, value, _field(block, i), budget, blobs, state)
    return budget


def check_request(blocks, path: str, body: dict, max_pending: int | None = None) -> Job:
    """``parse_job`` and ``check_job`` of a job request (no queue or fairness checks)."""
    job = parse_job(blocks, route_of("POST", path), body)
    check_job(blocks, job)
    return job
