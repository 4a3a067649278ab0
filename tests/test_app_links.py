"""Deep links in the Gradio app, through the page-load endpoint as the browser calls it.

The page's first request (``/gradio_api/queue/join``) carries the page address's query string, and
``on_load`` reads it from ``gr.Request.query_params``. These tests send the same query to the same
endpoint over plain HTTP: a good link opens exactly its view, a bad one and a hostile one fall back
to the defaults with an escaped note, and Copy link writes back a link that opens the same view.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from rnnviz import ModelConfig, sample_traces
from rnnviz.app.operations import Explorer
from rnnviz.app.training import TrainingService
from tests.apps import call_result, post_call, served, tiny_checkpoints

TINY = {"mnist_lstm": ModelConfig(hidden=16, head_hidden=32), "mnist_gru": ModelConfig(cell="gru", hidden=16, head_hidden=32)}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("links")
    service = TrainingService(tmp / "runs", enabled=False, disabled_reason="off in this test")
    ex = Explorer(tiny_checkpoints(tmp / "checkpoints", TINY), tmp / "runs", training=service)
    with served(ex) as url:
        yield url, ex


def call(url: str, name: str, data=(), query: str = "") -> tuple[str, object]:
    """(event, data) of one call of ``name`` over plain HTTP, ``query`` added to the request as the
    page adds its own address's query."""
    r = post_call(url, name, json.dumps({"data": list(data)}), query, timeout=30)
    r.raise_for_status()
    event, payload, _ = call_result(url, name, r.json()["event_id"])
    return event, payload


class Loaded:
    """The outputs of on_load: [ckpt, model_info, tabs, link_note, digit, temperature, seed, summary,
    Generate's view payload], then each other tab's link outputs (skipped unless the link names it)."""

    def __init__(self, out: list):
        self.ckpt, self.info, self.tabs, self.note = out[0]["value"], out[1], out[2]["selected"], out[3]
        self.digit, self.temperature, self.seed, self.summary = out[4], out[5], out[6], out[7]
        self.payload = json.loads(out[8])
        self.step = self.payload["step"]
        # the other tabs' views: every payload among the rest (a JSON text with columns)
        self.views = [json.loads(v) for v in out[9:] if isinstance(v, str) and v.startswith('{"id"')]


def load(url: str, params: dict | None = None) -> Loaded:
    event, out = call(url, "on_load", query="?" + urlencode(params) if params else "")
    assert event == "complete", out
    return Loaded(out)


def test_no_query_opens_the_first_view_without_a_note(app):
    url, _ = app
    v = load(url)
    assert (v.ckpt, v.digit, v.seed, v.step, v.tabs, v.note) == ("shipped/mnist_lstm", "7", 0, 27, "generate", "")
    assert v.views == []  # no other tab is drawn


def test_a_good_link_opens_exactly_its_view(app):
    url, ex = app
    v = load(url, {"model": "mnist_gru", "digit": "3", "seed": "5", "temperature": "0.8", "t": "14", "tab": "generate"})
    assert (v.ckpt, v.digit, v.temperature, v.seed, v.step, v.tabs) == ("shipped/mnist_gru", "3", 0.8, 5, 14, "generate")
    assert v.note == "" and v.payload["columns"][0]["entry"]["name"] == "mnist_gru"
    # the digit drawn is the one the Python API draws with these settings
    _, model = ex.model("shipped/mnist_gru")
    (trace,) = sample_traces(model, 1, y=3, temperature=0.8, seed=5)
    assert f"NLL {trace.nll:.1f} nats" in v.summary


def test_a_link_to_compare_opens_compare_at_its_step(app):
    url, _ = app
    v = load(url, {"models": "mnist_gru,mnist_lstm", "digit": "4", "seed": "2", "t": "20", "tab": "compare"})
    assert v.tabs == "compare" and v.note == "" and v.step == 27  # Generate opens at its last step
    (cmp,) = v.views
    assert cmp["step"] == 20 and [c["entry"]["name"] for c in cmp["columns"]] == ["mnist_gru", "mnist_lstm"]
    assert all(c["trace"]["label"] == 4 and c["trace"]["seed"] == 2 for c in cmp["columns"])


def test_a_bad_link_falls_back_to_the_defaults_with_a_note(app):
    url, _ = app
    v = load(url, {"model": "mnist_vae", "digit": "12", "seed": "-3", "temperature": "9", "t": "28", "tab": "nope"})
    assert (v.ckpt, v.digit, v.temperature, v.seed, v.step, v.tabs) == ("shipped/mnist_lstm", "7", 1.0, 0, 27, "generate")
    for name in ("model", "digit", "seed", "temperature", "t", "tab"):
        assert f"ignored {name}=" in v.note


def test_a_hostile_link_is_shown_as_text_and_never_echoed_whole(app):
    url, _ = app
    script = "<script>alert(1)</script>"
    v = load(url, {"model": script, "digit": "\u096d", "seed": "9" * 401, "temperature": "1e309",
                   "t": "NaN", "tab": "javascript:alert(1)", "x": "y" * 30_000})
    assert (v.ckpt, v.digit, v.seed, v.step) == ("shipped/mnist_lstm", "7", 0, 27)
    assert "<script>" not in v.note and "&lt;script&gt;" in v.note
    assert len(v.note) < 2_000
    assert v.note.count("<li>") == 6


def test_copy_link_writes_back_a_link_that_opens_the_same_view(app):
    url, _ = app
    event, (link,) = call(url, "copy_link", ["shipped/mnist_gru", "2", 1.25, 77, 9])
    assert event == "complete" and link.startswith("?")
    v = load(url, dict(p.split("=") for p in link[1:].split("&")))
    assert (v.ckpt, v.digit, v.temperature, v.seed, v.step, v.note) == ("shipped/mnist_gru", "2", 1.25, 77, 9, "")


def test_on_a_space_the_link_is_built_from_the_space_host(app, monkeypatch):
    url, _ = app
    monkeypatch.setenv("SPACE_HOST", "someone-rnnviz.hf.space")
    event, (link,) = call(url, "copy_link", ["shipped/mnist_lstm", "7", 1.0, 0, 3])
    assert event == "complete"
    assert link == "https://someone-rnnviz.hf.space/?model=mnist_lstm&digit=7&seed=0&temperature=1&t=3&tab=generate"


def test_copy_link_refuses_bad_input_with_a_message(app):
    url, _ = app
    event, out = call(url, "copy_link", ["upload/../../etc/passwd", "7", 1.0, 0, 3])
    assert event == "error" and out["error"], out  # a message, not an unhandled exception
