"""The checks of one request's content: its JSON (``json_depth``, ``parse_json``), its route
(``route_of``), the job it names (``parse_job``) and each of its values against its component
(``check_job``, which reads ``values.check_field``; the files and drawings summed in a
``values.FileBudget``)."""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .base import API, CALL_KEYS, JOB_KEYS, MAX_DEPTH, MAX_ID, MAX_TEXT, Refused
from .values import FileBudget, check_field, check_value, field_name

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
        check_value(data, "event_data", MAX_TEXT)
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
        check_field(block, value, field_name(block, i), budget, blobs, state)
    return budget


def check_request(blocks, path: str, body: dict, max_pending: int | None = None) -> Job:
    """``parse_job`` and ``check_job`` of a job request (no queue or fairness checks)."""
    job = parse_job(blocks, route_of("POST", path), body)
    check_job(blocks, job)
    return job
