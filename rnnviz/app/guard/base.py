"""The guard's shared ground: its bounds, the operator's ``Settings``, the refusal every check
raises (``Refused``, ``busy``) and who a request comes from (``client_key``)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from ..inputs import MAX_DRAWING_PIXELS

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


def scope_client(scope) -> str:
    peer = (scope.get("client") or (None,))[0]
    forwarded = [v.decode("latin-1") for k, v in scope.get("headers") or [] if k.lower() == b"x-forwarded-for"]
    return client_key(peer, forwarded)


def request_client(request) -> str:
    """``client_key`` of a Starlette or Gradio request (what the guard counted it as)."""
    inner = getattr(request, "request", None)  # gr.Request wraps the Starlette request
    scope = getattr(inner if inner is not None else request, "scope", None)
    if isinstance(scope, dict):
        return scope_client(scope)
    client = getattr(request, "client", None)
    headers = getattr(request, "headers", None) or {}
    forwarded = [headers.get("x-forwarded-for")] if hasattr(headers, "get") and headers.get("x-forwarded-for") else []
    return client_key(getattr(client, "host", None), forwarded)


def event_client(event) -> str:
    cached = event.__dict__.get("_rnnviz_client")
    if cached is None:
        request = getattr(event, "request", None)
        cached = request_client(request) if request is not None else "unknown"
        event.__dict__["_rnnviz_client"] = cached
    return cached
