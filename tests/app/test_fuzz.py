"""Every named endpoint of the explorer against hostile values, one parameter at a time.

The app is served in this process (tiny checkpoints; a Train tab whose runs folder cannot be
written, so Start always refuses and no run outlives the test). The endpoints come from
``/gradio_api/info``; each parameter in turn gets a few values from ``HOSTILE`` (rotated, so that
every value meets many fields) while the others keep their defaults, sent as raw HTTP
(``POST /gradio_api/call/<name>``, then the event stream), as a script would. The test fails on an
unhandled exception (an ``error`` event without a message), a hang, an answer of more than a few
KB that echoes the input, or a traceback in the server's log.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from rnnviz import ModelConfig
from tests.app import call_result, post_call, unhandled

HUGE = "9" * 401
BIG = "x" * (10 * 2**20)
DATA_URL = "data:image/png;base64," + "iVBORw0KGgo" * 20
FILE_META = {"_type": "gradio.FileData"}
# (name, JSON text): NaN is not JSON, so values travel as text
HOSTILE = [("None", "null"), ("huge int", HUGE), ("huge int string", json.dumps(HUGE)), ("list", "[1, 2]"),
           ("dict", '{"a": 1}'), ("NaN", "NaN"), ("-1", "-1"), ("non-ASCII digit", json.dumps("\u096d")),
           ("data URL", json.dumps(DATA_URL)), ("server path", json.dumps("/etc/passwd")),
           ("https URL", json.dumps("https://example.com/x.png")),
           ("file at a server path", json.dumps({"path": "/etc/passwd", "meta": FILE_META})),
           ("file at a URL", json.dumps({"path": "https://example.com/x.png", "meta": FILE_META})),
           ("empty string", '""'), ("Infinity", "-Infinity")]
BIG_STRING_ENDPOINTS = ("/generate", "/intervene", "/describe", "/complete", "/train_start")
PER_PARAMETER = 3  # hostile values per parameter (rotated through HOSTILE)
MAX_ECHO = 4096  # bytes an answer may have when it repeats part of the input


# what the shared ``served`` fixture (tests/app/conftest.py) serves here
CHECKPOINTS = {"mnist_lstm": ModelConfig(hidden=32, head_hidden=64), "mnist_gru": ModelConfig(cell="gru", hidden=16, head_hidden=32)}
TRAINING = "blocked"  # Start always refuses: no run outlives the test
UPLOADS = True


@pytest.fixture(scope="module")
def served_app(served):
    """(explorer, url); at the module's end no run is going."""
    yield served.ex, served.url
    assert not served.ex.training.active()


def _baseline(p: dict):
    """A parameter's default as JSON text (files: none)."""
    if p.get("component") in ("Imageeditor", "File", "Uploadbutton", "Image"):
        return "null"
    value = p.get("parameter_default") if p.get("parameter_has_default") else p.get("example_input")
    return json.dumps(value)


def _call(url: str, name: str, args: list[str]) -> tuple[str, str]:
    """(outcome, text): "ok", "message" (a gr.Error or a refusal), "refused" (HTTP 4xx/503 with a
    message) or "crash"/"hang"/"echo" with what was seen."""
    r = post_call(url, name, '{"data": [' + ", ".join(args) + "]}")
    if r.status_code != 200:
        ok = r.status_code in (400, 404, 413, 422, 503) and len(r.content) < MAX_ECHO
        return ("refused" if ok else "echo"), f"{r.status_code} {r.text[:200]}"
    try:
        kind, data, text = call_result(url, name, r.json()["event_id"])
    except httpx.TimeoutException:
        return "hang", "no answer within 60 s"
    if len(text) > MAX_ECHO and any(s[:200] in text for s in (HUGE, BIG[:300], DATA_URL)):
        return "echo", text[:200]
    if kind == "complete":
        return "ok", ""
    if kind == "error":
        message = data.get("error") if isinstance(data, dict) else data
        return ("message", str(message)) if message else ("crash", text[:300])
    return "hang", text[:300]


def _cases(info: dict) -> list[tuple[str, list[str], str]]:
    """(endpoint, JSON args, what is hostile) for every endpoint: all parameters None, then each
    parameter with ``PER_PARAMETER`` hostile values."""
    cases, k = [], 0
    for name, spec in sorted(info["named_endpoints"].items()):
        params = spec["parameters"]
        base = [_baseline(p) for p in params]
        cases.append((name, base, "defaults"))
        if not params:
            continue
        cases.append((name, ["null"] * len(params), "all None"))
        for i, p in enumerate(params):
            for j in range(PER_PARAMETER):
                label, value = HOSTILE[(k + j) % len(HOSTILE)]
                cases.append((name, base[:i] + [value] + base[i + 1:], f"{p.get('parameter_name')}={label}"))
            k += PER_PARAMETER
            if name in BIG_STRING_ENDPOINTS:
                cases.append((name, base[:i] + [json.dumps(BIG)] + base[i + 1:], f"{p.get('parameter_name')}=10 MB"))
    return cases


def test_every_endpoint_survives_hostile_values(served_app, capfd):
    ex, url = served_app
    info = httpx.get(f"{url}gradio_api/info", timeout=30).json()
    assert len(info["named_endpoints"]) > 50
    cases = _cases(info)
    t0 = time.time()
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda c: (c, _call(url, c[0].strip("/"), c[1])), cases))
    seconds = time.time() - t0
    bad = [f"{name} {what}: {outcome} {text}" for (name, _, what), (outcome, text) in results
           if outcome in ("crash", "hang", "echo")]
    assert not bad, f"{len(bad)} of {len(cases)} calls failed:\n" + "\n".join(bad[:40])
    outcomes = [o for _, (o, _) in results]
    assert outcomes.count("message") + outcomes.count("refused") > len(cases) // 4  # the values were refused
    assert not ex.training.active()  # Start refused every time (its runs folder cannot be made)
    log = capfd.readouterr().err
    assert not unhandled(log), unhandled(log)[:20]
    assert "x" * 1000 not in log and HUGE not in log  # no log line carries the hostile input
    print(f"{len(cases)} calls to {len(info['named_endpoints'])} endpoints in {seconds:.1f} s")
