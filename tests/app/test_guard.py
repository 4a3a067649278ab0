"""Every route Gradio serves, through ``rnnviz.app.guard``.

The fuzz test sends each named endpoint's values by every route form a script can use (``/call/``,
``/call/v2/`` by parameter name, ``/run/predict`` by fn_index, ``/run/<name>``, ``/queue/join``),
with hostile values and hostile bodies (a 5,000-deep array, wrong types, unknown keys), and the
other POST routes with junk. It fails on an unhandled exception (an error without a message), an
HTTP 500, an answer that echoes the input, or a log line over 300 characters. Then: the sum of a
request's drawings, uploads in Gradio's cache under their caps, and fairness between clients
(attacker and victim as two loopback addresses, 127.0.0.2 and 127.0.0.3).
"""

from __future__ import annotations

import json
import os
import struct
import threading
import time
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import httpx
import numpy as np
import pytest
from PIL import Image

from rnnviz import ModelConfig
from rnnviz.app import guard
from rnnviz.app.operations import Explorer
from tests import ROOT
from tests.app import App, call_result, launched, tiny_checkpoints, unhandled

FORMS = ("call", "call_v2", "run_predict", "run_named", "queue_join")
FILE_META = {"_type": "gradio.FileData"}
LONG = "Q" * 4096
HUGE = "9" * 401
DEEP = "[" * 5000 + "]" * 5000
HOSTILE = [("None", "null"), ("huge int", HUGE), ("list", "[1, 2]"), ("dict", '{"a": 1}'), ("NaN", "NaN"),
           ("bool", "true"), ("4096 characters", json.dumps(LONG)), ("-1", "-1"), ("empty string", '""'),
           ("data URL", json.dumps("data:image/png;base64,iVBORw0KGgo")),
           ("file at a server path", json.dumps({"path": "/etc/passwd", "meta": FILE_META})),
           ("file without meta", None),  # an uploaded file's path, without its meta (filled in per run)
           ("file at a URL", json.dumps({"path": "https://example.com/x.png", "meta": FILE_META})),
           ("5000 deep", DEEP), ("Infinity", "-Infinity")]
MAX_ECHO = 4096
MAX_LOG_LINE = 300


def _local(address: str, timeout: float = 60) -> httpx.Client:
    """An HTTP client whose connections come from ``address`` (any of 127.0.0.0/8 is this machine)."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=timeout)


# what the shared ``served`` fixture (tests/app/conftest.py) serves here
CHECKPOINTS = {"mnist_lstm": ModelConfig(hidden=32, head_hidden=64), "mnist_gru": ModelConfig(cell="gru", hidden=16, head_hidden=32)}
TRAINING = "blocked"  # Start always refuses: no run outlives the test
UPLOADS = True


@pytest.fixture(scope="module")
def served_app(served):
    """(explorer, url), the explorer's Blocks as ``ex.demo``."""
    served.ex.demo = served.demo
    return served.ex, served.url


# ---- sending one request by each route form ---------------------------------------------------------
class Endpoint:
    def __init__(self, name: str, spec: dict, fn_index: int):
        self.name, self.fn_index = name.strip("/"), fn_index
        self.params = spec["parameters"]

    def defaults(self) -> list[str]:
        out = []
        for p in self.params:
            if p.get("component") in ("Imageeditor", "File", "Uploadbutton", "Image"):
                out.append("null")
            else:
                out.append(json.dumps(p.get("parameter_default") if p.get("parameter_has_default")
                                      else p.get("example_input")))
        return out


def body_for(form: str, ep: Endpoint, args: list[str], session: str, extra: str = "") -> tuple[str, str]:
    """(path, JSON text) of a request for ``ep`` with ``args`` (JSON texts) by route ``form``."""
    data = "[" + ", ".join(args) + "]"
    event = '{"index": 0, "value": "x"}'
    if form == "call":
        return f"gradio_api/call/{ep.name}", '{"data": ' + data + extra + "}"
    if form == "call_v2":
        pairs = ", ".join(f"{json.dumps(p.get('parameter_name'))}: {a}" for p, a in zip(ep.params, args))
        return f"gradio_api/call/v2/{ep.name}", "{" + pairs + (extra.lstrip(", ") and ("," if pairs else "")
                                                              + extra.lstrip(",")) + "}"
    common = f', "fn_index": {ep.fn_index}, "session_hash": "{session}", "event_data": {event}, "trigger_id": null'
    if form == "run_predict":
        return "gradio_api/run/predict", '{"data": ' + data + common + extra + "}"
    if form == "run_named":
        return f"gradio_api/run/{ep.name}", '{"data": ' + data + extra + "}"
    return "gradio_api/queue/join", '{"data": ' + data + common + extra + "}"


def _stream_result(http: httpx.Client, url: str, session: str, event_id: str, timeout: float = 60):
    """(success, output) of a queued event, read from ``/queue/data`` as the page reads it."""
    deadline = time.time() + timeout
    with http.stream("GET", f"{url}gradio_api/queue/data", params={"session_hash": session}, timeout=timeout) as r:
        for line in r.iter_lines():
            if time.time() > deadline:
                break
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("msg") == "process_completed" and msg.get("event_id") == event_id:
                return msg.get("success"), msg.get("output")
            if msg.get("msg") == "close_stream":
                break
    return None, None


def send(http: httpx.Client, url: str, path: str, body: str, form: str, session: str) -> tuple[str, str]:
    """("ok" | "message" | "refused" | "crash" | "500" | "echo" | "hang", detail)."""
    try:
        r = http.post(url + path, content=body.encode(), headers={"content-type": "application/json"})
    except httpx.TimeoutException:
        return "hang", "no answer"
    if r.status_code == 500:
        return "500", r.text[:300]
    if len(r.content) > MAX_ECHO and any(s in r.text for s in (LONG[:300], HUGE[:300], DEEP[:300])):
        return "echo", r.text[:200]
    if r.status_code != 200:
        try:
            message = r.json().get("error") or r.json().get("detail")
        except ValueError:
            message = r.text
        return ("refused", str(message)[:200]) if message else ("crash", f"{r.status_code} {r.text[:200]}")
    if form.startswith("run"):
        return "ok", ""
    event_id = r.json()["event_id"]
    if form == "queue_join":
        success, output = _stream_result(http, url, session, event_id)
        if success is None:
            return "hang", "no process_completed"
        if success:
            return "ok", ""
        return ("message", str(output.get("error"))[:200]) if output and output.get("error") else \
            ("crash", json.dumps(output)[:300])
    try:
        kind, data, text = call_result(url, path.rsplit("/", 1)[1] if form == "call" else f"v2/{path.rsplit('/', 1)[1]}",
                                       event_id)
    except httpx.TimeoutException:
        return "hang", "no answer within 60 s"
    if kind == "complete":
        return "ok", ""
    if kind == "error":
        message = data.get("error") if isinstance(data, dict) else data
        return ("message", str(message)[:200]) if message else ("crash", text[:300])
    return "hang", text[:300]


BODY_CASES = [  # (name, extra keys appended to a good body, or a whole body) per route form
    ("unknown key", ', "evil": 1', None), ("fn_index string", ', "fn_index": "x"', None),
    ("5000-deep extra", ', "x": ' + DEEP, None), ("event_data garbage", ', "event_data": [[1, 2], "x"]', None),
    ("session_hash int", ', "session_hash": 7', None), ("huge session_hash", ', "session_hash": ' + json.dumps(LONG), None),
    ("batched", ', "batched": true', None), ("not JSON", None, "{not json"), ("a list", None, "[1, 2, 3]"),
    ("5000 deep", None, DEEP), ("data an object", None, '{"data": {"a": 1}}'), ("no data", None, "{}"),
    ("huge number", None, '{"data": [' + "9" * 5000 + "]}"),
]


def _cases(info: dict, fn_indices: dict, upload_path: str) -> list[tuple]:
    """(form, endpoint, args or None, extra, raw body, what) for every endpoint and route form."""
    hostile = [(label, text if text is not None else json.dumps({"path": upload_path})) for label, text in HOSTILE]
    cases, k = [], 0
    for name, spec in sorted(info["named_endpoints"].items()):
        ep = Endpoint(name, spec, fn_indices[name.strip("/")])
        base = ep.defaults()
        for f, form in enumerate(FORMS):
            cases.append((form, ep, base, "", None, "defaults"))
            if base:
                cases.append((form, ep, ["null"] * len(base), "", None, "all None"))
            for j in range(2):  # two hostile bodies per form, rotating
                label, extra, raw = BODY_CASES[(k + f * 2 + j) % len(BODY_CASES)]
                cases.append((form, ep, base, extra or "", raw, label))
            for i, p in enumerate(ep.params):  # each parameter gets a hostile value by one form, rotating
                label, value = hostile[k % len(hostile)]
                cases.append((form, ep, base[:i] + [value] + base[i + 1:], "", None,
                              f"{p.get('parameter_name')}={label}"))
                k += 1
        if ep.params:  # the keyword route: an unknown parameter, and each value a list
            cases.append(("call_v2", ep, base, ', "no_such_parameter": 1', None, "unknown parameter"))
    return cases


def _other_routes() -> list[tuple[str, str, dict]]:
    """(path, body, headers) of the other POST routes, with junk."""
    j = {"content-type": "application/json"}
    return [("gradio_api/cancel", DEEP, j), ("gradio_api/cancel", '{"session_hash": [1], "fn_index": "x"}', j),
            ("gradio_api/reset", '{"event_id": ' + json.dumps(LONG) + "}", j), ("gradio_api/reset", DEEP, j),
            ("gradio_api/component_server", DEEP, j),
            ("gradio_api/component_server", '{"session_hash": "s", "component_id": 1, "fn_name": "x", "data": 1}', j),
            ("gradio_api/component_server", "--x\r\n\r\n", {"content-type": "multipart/form-data; boundary=x"}),
            ("gradio_api/stream/abc", '{"data": []}', j), ("gradio_api/stream/abc/close", "{}", j),
            ("gradio_api/process_recording", DEEP, j), ("gradio_api/run-history/connect", DEEP, j),
            ("gradio_api/vibe-edit", DEEP, j), ("gradio_api/profiling/clear", "{}", j), ("login", "a=b", {}),
            ("gradio_api/call/no_such_endpoint", '{"data": []}', j), ("gradio_api/call/v2", '{"data": []}', j),
            ("gradio_api/call/v2/no_such_endpoint", "{}", j), ("gradio_api/run/no_such", '{"data": []}', j),
            ("gradio_api/queue/join", '{"data": [], "fn_index": 100000, "session_hash": "s"}', j),
            ("gradio_api/upload", DEEP, j), ("gradio_api/nothing", DEEP, j)]


def test_every_route_form_of_every_endpoint_survives_hostile_requests(served_app, capfd):
    ex, url = served_app
    info = httpx.get(f"{url}gradio_api/info", timeout=30).json()
    deps = httpx.get(f"{url}config", timeout=30).json()["dependencies"]
    fn_indices = {d["api_name"]: d.get("id", i) for i, d in enumerate(deps) if d.get("api_name")}
    up = httpx.post(f"{url}gradio_api/upload", files={"files": ("x.png", b"\x89PNG junk")}, timeout=30)
    up.raise_for_status()
    cases = _cases(info, fn_indices, up.json()[0])
    assert len(info["named_endpoints"]) > 50

    def run(case):
        form, ep, args, extra, raw, what = case
        session = uuid.uuid4().hex
        path, body = body_for(form, ep, args, session, extra)
        with httpx.Client(timeout=90) as http:
            try:
                return case, send(http, url, path, raw if raw is not None else body, form, session)
            except httpx.HTTPError as e:  # a connection the server broke off
                return case, ("broken", f"{type(e).__name__}: {str(e)[:100]}")

    t0 = time.time()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, cases))
    with httpx.Client(timeout=30) as http:
        for path, body, headers in _other_routes():
            try:
                r = http.post(url + path, content=body.encode(), headers=headers)
                outcome = "500" if r.status_code == 500 else "refused" if r.status_code != 200 else "ok", r.text[:200]
            except httpx.HTTPError as e:
                outcome = "broken", f"{type(e).__name__}: {str(e)[:100]}"
            results.append((("other", None, None, "", body, path), outcome))
    seconds = time.time() - t0
    bad = [f"{c[0]} {c[1].name if c[1] else ''} {c[5]}: {o} {t}" for c, (o, t) in results
           if o in ("crash", "500", "echo", "hang", "broken")]
    kinds = {o: sum(1 for _, (x, _) in results if x == o) for o in ("crash", "500", "echo", "hang", "broken")}
    assert not bad, f"{len(bad)} of {len(results)} requests failed {kinds}:\n" + "\n".join(bad[:60])
    outcomes = [o for _, (o, _) in results]
    assert outcomes.count("ok") > len(FORMS) * 20  # good requests were served by every route form
    assert outcomes.count("refused") + outcomes.count("message") > len(results) // 3
    log = capfd.readouterr()
    lines = (log.out + log.err).splitlines()
    assert not unhandled(log.err), unhandled(log.err)[:20]
    long_lines = [line[:200] for line in lines if len(line) > MAX_LOG_LINE]
    assert not long_lines, long_lines[:5]
    print(f"{len(results)} requests ({', '.join(FORMS)}) to {len(info['named_endpoints'])} endpoints in "
          f"{seconds:.1f} s: {', '.join(f'{o} {outcomes.count(o)}' for o in sorted(set(outcomes)))}")


# ---- pieces of the guard ---------------------------------------------------------------------------------
def test_json_depth_is_measured_before_parsing():
    assert guard.json_depth(b'{"a": [1, {"b": "[[[[["}]}') == 3  # brackets in strings do not count
    assert guard.json_depth(DEEP.encode()) == 5000
    t0 = time.perf_counter()
    assert guard.json_depth(b"[" * 1_000_000) == 1_000_000
    assert time.perf_counter() - t0 < 1.0
    with pytest.raises(guard.Refused, match="too deeply"):
        guard.parse_json(DEEP.encode())
    with pytest.raises(guard.Refused, match="not valid JSON"):
        guard.parse_json(b'{"data": [' + b"9" * 5000 + b"]}")


@pytest.mark.parametrize("method, path, kind, name", [
    ("POST", "/gradio_api/call/generate", "call", "generate"), ("POST", "/gradio_api/call/generate/", "call", "generate"),
    ("POST", "/gradio_api/call/v2/generate", "call_v2", "generate"), ("POST", "/gradio_api/call/v2", "call", "v2"),
    ("POST", "/gradio_api/run/predict", "run", "predict"), ("POST", "/gradio_api/api/generate/", "run", "generate"),
    ("POST", "/gradio_api/queue/join", "join", None), ("POST", "/gradio_api/upload", "upload", None),
    ("POST", "/gradio_api/component_server/", "blobs", None), ("POST", "/gradio_api/stream/x", "refuse", None),
    ("POST", "/gradio_api/process_recording", "refuse", None), ("POST", "/gradio_api//call/x", "refuse", None),
    ("PUT", "/gradio_api/call/generate", "refuse", "method"), ("GET", "/gradio_api/info", "pass", None)])
def test_each_route_is_mapped(method, path, kind, name):
    assert guard.route_of(method, path) == guard.Route(kind, name)


def test_the_client_is_the_address_unless_a_proxy_is_trusted():
    fwd = ["203.0.113.9, 198.51.100.7"]
    assert guard.client_key("127.0.0.2", fwd, hops=0) == "127.0.0.2"  # the header alone is not believed
    assert guard.client_key("127.0.0.2", fwd, hops=1) == "198.51.100.7"  # what the trusted proxy saw
    assert guard.client_key("127.0.0.2", fwd, hops=2) == "203.0.113.9"
    assert guard.client_key("127.0.0.2", ["junk"], hops=1) == "127.0.0.2"
    assert guard.client_key("2001:db8::1") == guard.client_key("2001:db8::ffff") == "2001:db8::/64"
    assert guard.client_key("::ffff:10.0.0.1") == "10.0.0.1"
    assert guard.Settings.from_env({}).forwarded_hops == 0
    assert guard.Settings.from_env({"SYSTEM": "spaces"}).forwarded_hops == 1
    assert guard.Settings.from_env({"RNNVIZ_FORWARDED_HOPS": "2", "RNNVIZ_MAX_PENDING": "3"}) == \
        guard.Settings(forwarded_hops=2, max_pending=3)


# ---- drawings: one budget for the whole request ------------------------------------------------------------
def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _big_png(path: Path, side: int = 5000) -> Path:
    """A real side x side PNG, all black (about 100 KB: it compresses to nothing)."""
    raw = b"".join(b"\0" + bytes(side) for _ in range(side))
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 9))
                     + chunk(b"IEND", b""))
    return path


def test_eight_layers_of_one_huge_image_are_refused_without_memory(served_app, tmp_path, capfd):
    ex, url = served_app
    png = _big_png(tmp_path / "big.png")
    with Image.open(png) as im:
        assert im.size == (5000, 5000) and png.stat().st_size < 200_000
    r = httpx.post(f"{url}gradio_api/upload", files={"files": ("big.png", png.read_bytes())}, timeout=30)
    file = {"path": r.json()[0], "meta": FILE_META}
    sketch = {"background": None, "layers": [file] * 8, "composite": file}
    before = _rss_mb()
    for path, body in (("gradio_api/call/preview", {"data": ["drawing", 0, sketch, 14]}),
                       ("gradio_api/call/v2/preview", {"source": "drawing", "index": 0, "sketch": sketch, "keep": 14})):
        answer = httpx.post(url + path, json=body, timeout=60)
        assert answer.status_code == 413 and "too large" in answer.json()["error"], answer.text[:300]
    assert _rss_mb() - before < 100
    # one 5000 x 5000 image is the most one request may hold: twice is refused
    answer = httpx.post(f"{url}gradio_api/call/preview", json={"data": ["drawing", 0, {
        "background": None, "layers": [file], "composite": file}, 14]}, timeout=60)
    assert answer.status_code == 413
    assert _rss_mb() - before < 100 and not unhandled(capfd.readouterr().err)


def _blob_form(component_id: int, session: str, drawing_id: str, kind: str, index, data: bytes):
    fields = {"component_id": str(component_id), "session_hash": session, "fn_name": "accept_blobs", "type": kind,
              "index": "null" if index is None else str(index), "id": drawing_id}
    return fields, {"file": ("blob", data, "application/octet-stream")}


def test_the_sketchpads_images_in_memory_are_checked_and_bounded(served_app, tmp_path):
    """The page sends each drawing's images to the sketchpad's ``accept_blobs`` (kept in memory until
    a job names the drawing's id): a huge image, a layer index of a billion, other functions, and
    more drawings than a client's share are refused; the job's budget counts the images it takes."""
    ex, url = served_app
    preview = next(fn for fn in ex.demo.fns.values() if fn.api_name == "preview")
    sketch_id = next(b._id for b in preview.inputs if isinstance(b, gr.ImageEditor))
    small = tmp_path / "s.png"
    Image.fromarray(np.zeros((280, 280), np.uint8)).save(small)
    big = _big_png(tmp_path / "big.png", 5001)

    def post(*a):
        fields, files = _blob_form(*a)
        return httpx.post(f"{url}gradio_api/component_server", data=fields, files=files, timeout=30)

    assert post(sketch_id, "s1", "d1", "layer", 0, small.read_bytes()).status_code == 200
    assert post(sketch_id, "s1", "d1", "layer", 10**9, small.read_bytes()).status_code == 400
    assert post(sketch_id, "s1", "d2", "layer", 0, big.read_bytes()).status_code == 413
    assert post(sketch_id, "s1", "d1", "bogus", None, small.read_bytes()).status_code == 400
    assert post(sketch_id + 10**6, "s1", "d1", "layer", 0, small.read_bytes()).status_code == 404
    fields, files = _blob_form(sketch_id, "s1", "d1", "layer", 0, small.read_bytes())
    r = httpx.post(f"{url}gradio_api/component_server", data=dict(fields, fn_name="ls"), files=files, timeout=30)
    assert r.status_code == 400
    # the job that names drawing d1 takes it (and its images count against the request's budget)
    r = httpx.post(f"{url}gradio_api/call/preview", json={"data": ["drawing", 0, {"id": "d1"}, 14]}, timeout=30)
    assert r.status_code == 200
    # a client that keeps sending images without using them holds at most its share; others still draw
    with _local("127.0.0.4") as http:
        codes = [http.post(f"{url}gradio_api/component_server", data=_blob_form(
            sketch_id, "s2", f"spam{k}", "layer", 0, small.read_bytes())[0], files=_blob_form(
            sketch_id, "s2", f"spam{k}", "layer", 0, small.read_bytes())[1]).status_code for k in range(40)]
    assert set(codes) == {200}
    block = ex.demo.blocks[sketch_id]
    assert len(block.blob_storage) <= guard.MAX_BLOBS_PER_CLIENT + 1
    with _local("127.0.0.5") as http:
        fields, files = _blob_form(sketch_id, "s3", "mine", "layer", 0, small.read_bytes())
        assert http.post(f"{url}gradio_api/component_server", data=fields, files=files).status_code == 200


# ---- uploads in Gradio's cache ------------------------------------------------------------------------------
def test_the_cache_stays_under_its_cap_during_parallel_uploads(tmp_path, monkeypatch):
    """16 uploads at once (each from its own loopback address, and 16 from one) never take Gradio's
    upload folder over the cap; the refused ones are told the server is busy."""
    monkeypatch.setattr(guard.upload_cache, "MAX_UPLOAD_CACHE", 64 * 2**20)
    monkeypatch.setattr(guard.upload_cache, "MAX_UPLOAD_CACHE_PER_CLIENT", 24 * 2**20)
    ck = tiny_checkpoints(tmp_path / "ck", {"mnist_lstm": ModelConfig(hidden=16, head_hidden=32)})
    ex = Explorer(ck, tmp_path / "runs", uploads_dir=tmp_path / "uploads")
    folder = guard.upload_folder()

    def size() -> int:  # by inode: a file renamed while the folder is walked is seen once
        seen = {}
        for root, _, files in os.walk(folder):
            for f in files:
                try:
                    st = os.stat(os.path.join(root, f))
                except OSError:
                    continue
                seen[st.st_dev, st.st_ino] = st.st_size
        return sum(seen.values())

    with launched(ex) as (url, _):
        base, peak, stop = size(), [0], threading.Event()

        def watch():
            while not stop.is_set():
                peak[0] = max(peak[0], size())

        payload = os.urandom(10 * 2**20)

        def upload(k: int, address: str):
            with _local(address, timeout=120) as http:
                return http.post(f"{url}gradio_api/upload", files={"files": (f"f{k}.bin", payload + bytes([k]))})

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        with ThreadPoolExecutor(16) as pool:
            spread = list(pool.map(lambda k: upload(k, f"127.0.0.{20 + k}"), range(16)))
            one = list(pool.map(lambda k: upload(100 + k, "127.0.0.19"), range(16)))
        stop.set()
        watcher.join()
    codes = [r.status_code for r in spread + one]
    assert set(codes) <= {200, 503} and codes.count(200) >= 6, codes
    assert all("busy" in r.json()["error"] for r in spread + one if r.status_code == 503)
    assert peak[0] - base <= 64 * 2**20, f"{(peak[0] - base) / 2**20:.0f} MB over the 64 MB cap"


# ---- fairness between clients -----------------------------------------------------------------------------
def test_a_flood_from_one_address_with_rotating_sessions_leaves_another_served(served_app, monkeypatch):
    ex, url = served_app
    real = ex.generate

    def slow(*a, **k):
        time.sleep(0.3)
        return real(*a, **k)

    monkeypatch.setattr(ex, "generate", slow)
    deps = httpx.get(f"{url}config", timeout=30).json()["dependencies"]
    fn = next(d.get("id", i) for i, d in enumerate(deps) if d.get("api_name") == "generate")
    stop, codes = threading.Event(), []

    def flood(route: str):
        with _local("127.0.0.2") as http:
            while not stop.is_set():
                if route == "join":
                    r = http.post(f"{url}gradio_api/queue/join", json={
                        "data": ["shipped/mnist_lstm", "7", 1.0, 0], "fn_index": fn, "session_hash": uuid.uuid4().hex,
                        "event_data": None, "trigger_id": None})
                else:
                    r = http.post(f"{url}gradio_api/call/generate", json={"data": ["shipped/mnist_lstm", "7", 1.0, 0]})
                codes.append(r.status_code)

    floods = [threading.Thread(target=flood, args=(r,), daemon=True) for r in ("join", "join", "call", "call")]
    for th in floods:
        th.start()
    time.sleep(1.0)
    times = []
    try:
        with _local("127.0.0.3") as http:
            for k in range(5):
                t0 = time.perf_counter()
                r = http.post(f"{url}gradio_api/call/generate", json={"data": ["shipped/mnist_lstm", "7", 1.0, k]})
                assert r.status_code == 200, r.text[:200]
                kind, _, text = call_result(url, "generate", r.json()["event_id"])
                assert kind == "complete", text[:300]
                times.append(time.perf_counter() - t0)
    finally:
        stop.set()
        for th in floods:
            th.join(30)
    assert codes.count(503) > codes.count(200)  # the flood was mostly refused: busy
    assert max(times) < 3.0, times  # the victim waited at most about one of the flood's jobs, not the queue


def test_the_forwarded_address_counts_only_when_trusted(served_app, monkeypatch):
    ex, url = served_app
    real = ex.generate
    monkeypatch.setattr(ex, "generate", lambda *a, **k: time.sleep(1.0) or real(*a, **k))
    monkeypatch.setattr(guard.SETTINGS, "max_pending", 2)

    def post(h: dict) -> int:  # from 127.0.0.6: uvicorn believes X-Forwarded-For from 127.0.0.1 only
        with _local("127.0.0.6") as http:
            return http.post(f"{url}gradio_api/call/generate", headers=h, json={
                "data": ["shipped/mnist_lstm", "7", 1.0, 0]}).status_code

    def burst(headers: list[dict]) -> list[int]:
        with ThreadPoolExecutor(len(headers)) as pool:
            return list(pool.map(post, headers))

    forwarded = [{"x-forwarded-for": f"198.51.100.{k}"} for k in range(4)]
    assert burst(forwarded).count(503) >= 2  # not trusted: one client (this address), 2 jobs at most
    time.sleep(5)
    monkeypatch.setattr(guard.SETTINGS, "forwarded_hops", 1)
    assert burst(forwarded).count(503) == 0  # trusted: four clients
    time.sleep(5)


# ---- through the app with a client (tests.app.App) -----------------------------------------------
def test_visitors_uploads_in_gradios_cache_are_bounded_in_bytes(tmp_path):
    from rnnviz.app.guard import trim_uploads

    class Blocks:
        upload_file_set: set

    files = []
    for i in range(5):
        p = tmp_path / f"up{i}.bin"
        p.write_bytes(b"\0" * 1000)
        os.utime(p, ns=(i * 10**9, i * 10**9))
        files.append(str(p))
    b = Blocks()
    b.upload_file_set = set(files)
    assert sorted(trim_uploads(b, max_bytes=2500)) == files[:3]  # the oldest go first
    assert b.upload_file_set == set(files[3:]) and all(Path(f).exists() for f in files[3:])


def test_uploads_that_reach_no_handler_are_swept(tmp_path, monkeypatch):
    from rnnviz.app.ui import launch_options

    monkeypatch.setenv("RNNVIZ_CACHE_SWEEP", "1,2")  # every second, files older than 2 s
    assert launch_options()["max_file_size"] <= 50 * 2**20
    a = App(tmp_path)
    try:
        assert a.demo.delete_cache == (1, 2)
        r = httpx.post(f"{a.url}gradio_api/upload", files={"files": ("junk.bin", b"\0" * 100_000)}, timeout=30)
        r.raise_for_status()
        (stored,) = r.json()
        assert Path(stored).exists()
        deadline = time.time() + 20
        while Path(stored).exists() and time.time() < deadline:
            time.sleep(0.5)
        assert not Path(stored).exists(), "the upload no handler read is still in Gradio's cache"
    finally:
        a.close()


@pytest.mark.parametrize("api, index", [("generate", 0), ("generate", 1), ("intervene", 1), ("intervene", 4)])
def test_a_huge_string_gets_a_short_message_and_stays_out_of_the_log(app, api, index, capfd):
    data = {"generate": ["shipped/mnist_lstm", "7", 1.0, 0],
            "intervene": ["shipped/mnist_lstm", "clamp forget gate f = 0 (forget)", 5, 8, "all", 0.5, -1, "7", 1.0, 0]}
    for size in (10 * 2**20, 300):  # a 10 MB string, and one of a few hundred characters to a choice
        if size == 300 and index == 4:
            continue  # a text field (units) takes up to 2000 characters and names only 40 of them
        values = list(data[api])
        values[index] = "\u00a7" * size
        r = app.post(api, values)
        assert r.status_code in (400, 413) and len(r.content) < 500, (r.status_code, r.content[:300])
        assert "too long" in r.json()["error"] or "too large" in r.json()["error"]
    assert "\u00a7" * 100 not in capfd.readouterr().err  # nothing of it reached the log
    app.generate_works()


def test_one_session_flooding_gets_busy_while_another_is_served(app, monkeypatch):
    from rnnviz.app import guard

    real = app.ex.generate

    def slow(*a, **k):
        time.sleep(0.4)
        return real(*a, **k)

    monkeypatch.setattr(app.ex, "generate", slow)
    assert app.demo._queue.max_size == guard.MAX_QUEUE
    body = {"data": ["shipped/mnist_lstm", "7", 1.0, 0], "fn_index": app.fn_index("generate"),
            "session_hash": "flooder", "event_data": None, "trigger_id": None}
    answers = [httpx.post(f"{app.url}gradio_api/queue/join", json=body, timeout=30) for _ in range(8)]
    busy = [r for r in answers if r.status_code == 503]
    assert len(busy) >= 8 - guard.MAX_PENDING_PER_ENDPOINT - 3 and "try again" in busy[0].json()["detail"]
    t0 = time.time()
    app.generate_works()  # another visitor is still served, ahead of the flood's refused jobs
    assert time.time() - t0 < 8


def test_the_drawing_endpoints_share_one_concurrency_group(app):
    from rnnviz.app.components import Sketchpad
    from rnnviz.app.ui import DRAWING_GROUP

    drawing = [fn for fn in app.demo.fns.values() if any(isinstance(b, Sketchpad) for b in fn.inputs)]
    assert len(drawing) >= 4 and {fn.concurrency_id for fn in drawing} == {DRAWING_GROUP}


def test_gradio_serves_no_file_outside_its_cache(app):
    for target in ("/etc/passwd", str(ROOT / "README.md"), str(app.ex.registry.get("shipped/mnist_lstm").path),
                   "../../../../etc/passwd"):
        r = httpx.get(f"{app.url}gradio_api/file={target}", timeout=30)
        assert r.status_code in (403, 404), (target, r.status_code)
