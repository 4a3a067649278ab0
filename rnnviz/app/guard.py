"""What every request to the explorer passes before Gradio reads it.

Gradio serves one app through many routes: a job can be sent to ``/gradio_api/queue/join`` (by
``fn_index``, as the page does), ``/gradio_api/call/<name>`` (a list of values),
``/gradio_api/call/v2/<name>`` (values by parameter name), or ``/gradio_api/run/<name>`` and
``/gradio_api/api/<name>`` (run directly, and there a ``fn_index`` in the body names the function
whatever the path says). Files arrive through ``/gradio_api/upload``, and the sketchpad's strokes
as images posted to ``/gradio_api/component_server`` (its ``accept_blobs``), kept in memory until a
job names them by ``id``. One ASGI middleware, ``RequestGuard``, sits before all of it:

- every POST is routed here first (``route_of``); a route this app does not use (streaming,
  recordings, the vibe editor, profiling, a login without auth, any path Gradio does not serve)
  is refused, and so is any method but GET/HEAD/OPTIONS/POST;
- a JSON body is read up to ``MAX_BODY`` bytes, its nesting measured before it is parsed
  (``json_depth``: a 5,000-deep array never reaches ``json.loads``), then parsed; anything that
  is not a JSON object is refused;
- a job request is mapped to its function and to one value per input whatever the route
  (``parse_job``): unknown endpoints, unknown keys, a wrong number of values, a queued function
  called past the queue (``/run/``), functions that have no server side (JavaScript only, unload)
  are refused; each value is checked against its component (``_check_field``): a Radio or Dropdown
  string over ``MAX_CHOICE`` characters, any string over ``MAX_TEXT``, an integer of more than
  ``MAX_DIGITS`` digits, a value of a type the component cannot take, a file that is a URL or lies
  outside Gradio's upload folder, or lacks its ``meta``; a select event without its event data;
- the files and drawings a job names are summed (``FileBudget``): at most ``MAX_FILES`` files,
  ``MAX_REQUEST_BYTES`` bytes and ``MAX_REQUEST_PIXELS`` pixels (read from each image's header,
  never decoded) in one request, however many times it lists the same image;
- a client (an address: ``client_key``, the forwarded one only when ``Settings.forwarded_hops``
  says how many proxies to trust) has at most ``Settings.max_pending`` jobs waiting or running,
  whatever session ids and routes it uses, and a session at most ``MAX_PENDING_PER_ENDPOINT`` of
  one endpoint: beyond that a "busy" answer. The queue itself is made fair (``fair_get_events``):
  in each concurrency group the next job is the one of the client served least recently, one client
  runs at most half a group's slots (at least one), and while another client is present, one job
  at a time and new sessions at a slow rate: a flooding client delays another's job by at most the
  rest of one job of its own (in a group of one slot), or shares the CPU with it for that long;
- uploads to Gradio's cache are bounded by ``UploadCache``: each client's share
  (``MAX_UPLOAD_CACHE_PER_CLIENT``) and the total (``MAX_UPLOAD_CACHE``), reserved from the
  request's Content-Length before a byte is written, so parallel uploads cannot pass the cap; the
  room comes from the same client's oldest files, then from files older than ``UPLOAD_GRACE``
  seconds (which a handler has long read), else the upload is refused as busy;
- sketchpad strokes are bounded by ``BlobStore``: one image of at most ``MAX_BLOB_BYTES`` per
  request, a layer index below ``MAX_LAYERS``, and each client's share and the total of what
  Gradio holds in memory.

Refusals are short HTTP 4xx/503 answers, ``{"detail": message, "error": message}``, that name the
field and never repeat the value; nothing of a value reaches the log. On the direct routes
(``/run/``), Gradio answers a handler's message (``gr.Error``) with HTTP 500: the guard turns that
into 400, so a 500 always means a fault of the server. ``cache_sweep`` says how often Gradio's
cache is swept by age.
"""

from __future__ import annotations

import asyncio
import inspect
import io
import ipaddress
import json
import math
import os
import random
import re
import threading
import time
import types
import weakref
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from .inputs import MAX_DRAWING_PIXELS

MAX_BODY = 1024 * 1024  # bytes of one API request's JSON body
MAX_DEPTH = 16  # nesting of a JSON body (a drawing is 5 deep, its event data 4)
MAX_CHOICE = 200  # characters of a value sent to a Radio or Dropdown
MAX_TEXT = 4096  # characters of any other string (a unit list is at most 2000)
MAX_DIGITS = 300  # of an integer (a 401-digit one overflows a float)
MAX_ID = 128  # characters of a session hash, event id or drawing id
MAX_FILES = 16  # file references in one request
MAX_REQUEST_BYTES = 64 * 2**20  # bytes of every file one request names, summed (a checkpoint is <= 50 MB)
MAX_REQUEST_PIXELS = MAX_DRAWING_PIXELS  # pixels of every image one request names, summed (one 5000 x 5000)
MAX_LAYERS = 8  # layers of one drawing
MAX_PENDING = 8  # jobs one client may have waiting or running (a page sends a few at once)
MAX_PENDING_PER_ENDPOINT = 1  # of one endpoint, per session (a page waits for the answer before it asks again)
BUSY_DELAY = 0.5  # seconds before a "busy" answer: a flooding script's loop slows down to its pace
MAX_QUEUE = 64  # jobs the whole queue holds
MAX_UPLOAD_CACHE = 512 * 2**20  # bytes of visitors' uploads in Gradio's cache (in flight included)
MAX_UPLOAD_CACHE_PER_CLIENT = 128 * 2**20  # of one client's
MAX_UPLOAD_FILES_PER_CLIENT = 64  # files one client keeps in the cache (its oldest go first)
MAX_UPLOADS_IN_FLIGHT = 8  # uploads one client sends at once (a drawing sends 3 images, a page two drawings)
UPLOAD_GRACE = 120.0  # seconds an upload is kept for its job whoever else uploads
MAX_BLOB_BYTES = 512 * 1024  # one sketchpad image (a 280 x 280 canvas: at most ~320 KB as PNG)
MAX_BLOBS = 256  # sketchpad images held in memory, all visitors together
MAX_BLOB_MEMORY = 32 * 2**20  # their bytes
MAX_BLOBS_PER_CLIENT = 32  # of one client (a drawing is 3 images; its job takes them at once)
BLOB_GRACE = 30.0  # seconds a drawing's images are kept for its job whoever else draws
CACHE_SWEEP = (60, 600)  # every minute, remove Gradio cache files (uploads included) older than 10 minutes
API = "/gradio_api"
URL_PREFIXES = ("http:", "https:", "data:", "ftp:", "file:", "//")
FILE_META = {"_type": "gradio.FileData"}
FILE_KEYS = {"path", "url", "size", "orig_name", "mime_type", "is_stream", "meta"}
DRAWING_KEYS = {"background", "layers", "composite", "id"}
JOB_KEYS = {"session_hash", "event_id", "data", "oauth_token", "event_data", "fn_index", "trigger_id",
            "simple_format", "batched"}  # Gradio's PredictBody
CALL_KEYS = {"data", "session_hash", "oauth_token"}  # SimplePredictBody
BLOB_FIELDS = {"component_id", "session_hash", "fn_name", "type", "index", "id"}


# ---- settings ---------------------------------------------------------------------------------------
@dataclass
class Settings:
    """What the operator decides (``rnnviz-explorer`` options, or environment variables).

    ``forwarded_hops``: how many proxies in front of the server to trust. 0 (the default): a client
    is the address that connected. N: the N-th address from the right of ``X-Forwarded-For`` (the
    one the outermost trusted proxy saw), so a client cannot choose it by sending the header itself.
    On a Hugging Face Space (``SYSTEM=spaces``), whose proxy always sets it, the default is 1.
    ``max_pending``: jobs one client may have waiting or running."""

    forwarded_hops: int = 0
    max_pending: int = MAX_PENDING

    @classmethod
    def from_env(cls, env=os.environ) -> Settings:
        def whole(name: str, default: int) -> int:
            try:
                return max(0, int(env.get(name, "")))
            except ValueError:
                return default

        hops = whole("RNNVIZ_FORWARDED_HOPS", 1 if env.get("SYSTEM") == "spaces" else 0)
        return cls(forwarded_hops=hops, max_pending=max(1, whole("RNNVIZ_MAX_PENDING", MAX_PENDING)))


SETTINGS = Settings.from_env()


def configure(forwarded_hops: int | None = None, max_pending: int | None = None) -> Settings:
    """Set the guard's ``Settings`` (the explorer's options call this before the app is built)."""
    if forwarded_hops is not None:
        SETTINGS.forwarded_hops = max(0, int(forwarded_hops))
    if max_pending is not None:
        SETTINGS.max_pending = max(1, int(max_pending))
    return SETTINGS


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


def busy(message: str, advice: str = "wait for them to finish, then try again") -> Refused:
    return Refused(503, f"busy: {message}; {advice}")


# ---- who is asking ---------------------------------------------------------------------------------
def _address(text: str | None) -> str | None:
    """A client address as a key: IPv4 as is, IPv6 by its /64 network (one machine's share); None if
    ``text`` is not an address."""
    try:
        ip = ipaddress.ip_address((text or "").strip().strip("[]"))
    except ValueError:
        return None
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def client_key(peer: str | None, forwarded: list[str] | None = None, hops: int | None = None) -> str:
    """The client a request comes from: ``peer`` (the address that connected), or with ``hops``
    trusted proxies the address they saw (``forwarded``: the ``X-Forwarded-For`` header values)."""
    hops = SETTINGS.forwarded_hops if hops is None else hops
    chosen = peer
    if hops > 0 and forwarded:
        chain = [a.strip() for value in forwarded for a in value.split(",") if a.strip()]
        if chain:
            chosen = chain[-hops] if len(chain) >= hops else chain[0]
    return _address(chosen) or _address(peer) or "unknown"


def _scope_client(scope) -> str:
    peer = (scope.get("client") or (None,))[0]
    forwarded = [v.decode("latin-1") for k, v in scope.get("headers") or [] if k.lower() == b"x-forwarded-for"]
    return client_key(peer, forwarded)


def request_client(request) -> str:
    """``client_key`` of a Starlette or Gradio request (what the guard counted it as)."""
    inner = getattr(request, "request", None)  # gr.Request wraps the Starlette request
    scope = getattr(inner if inner is not None else request, "scope", None)
    if isinstance(scope, dict):
        return _scope_client(scope)
    client = getattr(request, "client", None)
    headers = getattr(request, "headers", None) or {}
    forwarded = [headers.get("x-forwarded-for")] if hasattr(headers, "get") and headers.get("x-forwarded-for") else []
    return client_key(getattr(client, "host", None), forwarded)


def _event_client(event) -> str:
    cached = event.__dict__.get("_rnnviz_client")
    if cached is None:
        request = getattr(event, "request", None)
        cached = request_client(request) if request is not None else "unknown"
        event.__dict__["_rnnviz_client"] = cached
    return cached


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
            self._sizes[path] = (size, _pixels(path) if image else 0)
        size, pixels = self._sizes[path]
        self.add(size, pixels, name)

    def add_blob(self, data: bytes, name: str):
        self.add(len(data), _pixels(io.BytesIO(data)), name)

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


def _pixels(source) -> int:
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


# ---- fairness --------------------------------------------------------------------------------------
def _queued(queue) -> list:
    events = [e for q in list(queue.event_queue_per_concurrency_id.values()) for e in list(q.queue)]
    return events + [e for job in list(queue.active_jobs) for e in (job or [])]


def pending_jobs(queue, session: str | None, fn=None, client: str | None = None) -> tuple[int, int]:
    """(jobs waiting in Gradio's queue or running of ``client`` (or of ``session``), those of
    ``session`` for ``fn``)."""
    events = _queued(queue)
    mine = [e for e in events if (_event_client(e) == client if client is not None else e.session_hash == session)]
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
            running[(_event_client(e), e.concurrency_id)] += 1
            per_client[_event_client(e)] += 1
    present = _present(queue, now)
    waiting = Counter(_event_client(e) for eq in list(groups.values()) for e in list(eq.queue))
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
            client = _event_client(e)
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
        client = _event_client(best)
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
        seen[_event_client(e)] = now
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


# ---- uploads in Gradio's cache ------------------------------------------------------------------------
def trim_uploads(blocks, max_bytes: int = MAX_UPLOAD_CACHE, keep=None) -> list[str]:
    """Remove the oldest visitor uploads in Gradio's cache beyond ``max_bytes`` in all (files
    that no handler has taken are otherwise only removed by age, by ``delete_cache``); files for
    which ``keep(path)`` is true stay."""
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
        for path in list(getattr(blocks, "upload_file_set", ())):
            try:
                st = os.stat(path)
            except OSError:
                blocks.upload_file_set.discard(path)
                self._owner.pop(path, None)
                continue
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


# ---- the sketchpad's images held in memory ---------------------------------------------------------------
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


# ---- the middleware ----------------------------------------------------------------------------------
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
        client = _scope_client(scope)
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
            from .uploads import disk_message

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
        pixels = _pixels(io.BytesIO(data))
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
