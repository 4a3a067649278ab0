"""Deep links (rnnviz/app/links.py): parse what a URL asks for, fall back with a note on anything
else, write it back.

Then in the Gradio app, through the page-load endpoint as the browser calls it. The page's first
request (``/gradio_api/queue/join``) carries the page address's query string, and ``on_load`` reads it
from ``gr.Request.query_params``. These tests send the same query to the same endpoint over plain
HTTP: a good link opens exactly its view, a bad one and a hostile one fall back to the defaults with
an escaped note, and Copy link writes back a link that opens the same view.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from rnnviz import ModelConfig, sample_traces
from rnnviz.app import links
from rnnviz.app.links import Context, View
from tests.app import call_result, post_call

CTX = Context(models=("mnist_lstm", "mnist_gru", "mnist_rnn"), tabs=("generate", "complete", "compare"))


def test_a_good_link_gives_exactly_its_view():
    view, notes = links.parse({"model": "mnist_gru", "digit": "3", "seed": "5", "temperature": "0.8",
                               "t": "14", "tab": "compare"}, CTX)
    assert view == View(model="mnist_gru", digit="3", seed=5, temperature=0.8, t=14, tab="compare")
    assert notes == []


FULL = Context(models=("mnist_lstm", "mnist_gru", "mnist_rnn"), kinds=("forget everything (f = 0)",),
               tabs=("generate", "complete", "compare", "intervene", "reconstruct", "units", "forcing"))
EXAMPLES = {  # per tab: settings away from their defaults
    "generate": dict(model="mnist_rnn", digit="any", seed=2**31 - 1, temperature=1.35, t=27),
    "compare": dict(models=("mnist_gru", "mnist_rnn"), digit="4", seed=2, temperature=0.5, t=20),
    "intervene": dict(model="mnist_gru", kind="forget everything (f = 0)", first=3, last=9, units="3, 17, 200-210",
                      digit="2", seed=7, temperature=0.8, t=5),
    "complete": dict(model="mnist_gru", test=3, keep=9, n=4, complete_as="5", seed=11, temperature=0.7, k=2, t=16),
    "reconstruct": dict(model="mnist_lstm", test=12, seed=4, temperature=0.9, t=3),
    "units": dict(model="mnist_gru", unit=200, layer=1),
    "forcing": dict(model="mnist_rnn", test=39, keep=20, seed=3, temperature=0.6),
}


@pytest.mark.parametrize("tab", sorted(EXAMPLES))
def test_the_query_written_reads_back_as_the_same_view(tab):
    from urllib.parse import parse_qsl
    view = View(tab=tab, **EXAMPLES[tab])
    back, notes = links.parse(dict(parse_qsl(links.query(view))), FULL)
    assert back == view and notes == []
    assert back.given == {*links.TAB_SETTINGS[tab], "tab"}
    assert links.link(view, "https://example.org/app/").startswith("https://example.org/app/?")


def test_every_tab_with_a_view_has_its_link_settings_in_the_one_table():
    from rnnviz import rules
    for tab, names in links.TAB_SETTINGS.items():
        assert set(names) <= set(rules.URL_SETTINGS), tab


def test_no_query_is_the_default_view_without_notes():
    default = View(model="mnist_lstm")
    assert links.parse({}, CTX, default) == (default, [])
    assert links.parse({"__theme": "dark", "utm_source": "x"}, CTX, default) == (default, [])


@pytest.mark.parametrize("name, value", [
    ("model", "../../etc/passwd"), ("model", "mnist_vae"), ("model", ""),
    ("digit", "10"), ("digit", "-1"), ("digit", "७"), ("digit", "3.0"),
    ("seed", "-5"), ("seed", "2147483648"), ("seed", "9" * 401), ("seed", "१२"), ("seed", "1e3"), ("seed", "0x10"),
    ("temperature", "nan"), ("temperature", "inf"), ("temperature", "1e309"), ("temperature", "0"),
    ("temperature", "2.5"), ("temperature", "-0.5"), ("temperature", "٠.٥"),
    ("t", "28"), ("t", "-1"), ("t", "14.5"), ("t", " "),
    ("tab", "train"), ("tab", "<script>alert(1)</script>"),
    ("models", "mnist_lstm,mnist_gru,mnist_rnn,mnist_lstm"), ("models", ""), ("models", "mnist_lstm,../x"),
    ("units", "1; drop"), ("units", "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17"), ("kind", "f = 0"),
    ("test", "40"), ("test", "-1"), ("keep", "28"), ("n", "0"), ("n", "9"), ("as", "Auto"), ("as", "10"),
    ("k", "8"), ("from", "28"), ("through", "x"), ("unit", "4096"), ("layer", "8"),
])
def test_each_bad_value_falls_back_to_its_default_with_a_note(name, value):
    default = View(model="mnist_lstm")
    view, notes = links.parse({name: value}, CTX, default)
    assert view == default
    assert len(notes) == 1 and notes[0].startswith(f"ignored {name}=")


def test_one_bad_value_leaves_the_good_ones():
    view, notes = links.parse({"model": "mnist_gru", "seed": "abc", "t": "3"}, CTX, View(model="mnist_lstm"))
    assert (view.model, view.seed, view.t) == ("mnist_gru", 0, 3)
    assert notes == ["ignored seed='abc' (not a whole number 0..2147483647); using 0"]


def test_hostile_values_are_not_echoed_whole():
    huge = "<img src=x onerror=alert(1)>" * 40_000  # about a megabyte
    _, notes = links.parse({"model": huge, "digit": "\x00\u202e7", "tab": "a\nb"}, CTX)
    assert len(notes) == 3
    for note in notes:
        assert len(note) < 250
        assert all(" " <= ch <= "~" for ch in note), note  # no control or bidi characters


def test_public_base_is_the_space_host_only_when_it_is_a_host_name():
    assert links.public_base({"SPACE_HOST": "someone-rnnviz.hf.space"}) == "https://someone-rnnviz.hf.space/"
    assert links.public_base({}) is None
    assert links.public_base({"SPACE_HOST": "evil.example/<script>"}) is None


# ---- the page-load endpoint over plain HTTP ------------------------------------------------------
# what the shared ``served`` fixture (tests/app/conftest.py) serves here
CHECKPOINTS = {"mnist_lstm": ModelConfig(hidden=16, head_hidden=32), "mnist_gru": ModelConfig(cell="gru", hidden=16, head_hidden=32)}
TRAINING = "off"


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


def test_no_query_opens_the_first_view_without_a_note(served):
    url = served.url
    v = load(url)
    assert (v.ckpt, v.digit, v.seed, v.step, v.tabs, v.note) == ("shipped/mnist_lstm", "7", 0, 27, "generate", "")
    assert v.views == []  # no other tab is drawn


def test_a_good_link_opens_exactly_its_view(served):
    url, ex = served.url, served.ex
    v = load(url, {"model": "mnist_gru", "digit": "3", "seed": "5", "temperature": "0.8", "t": "14", "tab": "generate"})
    assert (v.ckpt, v.digit, v.temperature, v.seed, v.step, v.tabs) == ("shipped/mnist_gru", "3", 0.8, 5, 14, "generate")
    assert v.note == "" and v.payload["columns"][0]["entry"]["name"] == "mnist_gru"
    # the digit drawn is the one the Python API draws with these settings
    _, model = ex.model("shipped/mnist_gru")
    (trace,) = sample_traces(model, 1, y=3, temperature=0.8, seed=5)
    assert f"NLL {trace.nll:.1f} nats" in v.summary


def test_a_link_to_compare_opens_compare_at_its_step(served):
    url = served.url
    v = load(url, {"models": "mnist_gru,mnist_lstm", "digit": "4", "seed": "2", "t": "20", "tab": "compare"})
    assert v.tabs == "compare" and v.note == "" and v.step == 27  # Generate opens at its last step
    (cmp,) = v.views
    assert cmp["step"] == 20 and [c["entry"]["name"] for c in cmp["columns"]] == ["mnist_gru", "mnist_lstm"]
    assert all(c["trace"]["label"] == 4 and c["trace"]["seed"] == 2 for c in cmp["columns"])


def test_a_bad_link_falls_back_to_the_defaults_with_a_note(served):
    url = served.url
    v = load(url, {"model": "mnist_vae", "digit": "12", "seed": "-3", "temperature": "9", "t": "28", "tab": "nope"})
    assert (v.ckpt, v.digit, v.temperature, v.seed, v.step, v.tabs) == ("shipped/mnist_lstm", "7", 1.0, 0, 27, "generate")
    for name in ("model", "digit", "seed", "temperature", "t", "tab"):
        assert f"ignored {name}=" in v.note


def test_a_hostile_link_is_shown_as_text_and_never_echoed_whole(served):
    url = served.url
    script = "<script>alert(1)</script>"
    v = load(url, {"model": script, "digit": "\u096d", "seed": "9" * 401, "temperature": "1e309",
                   "t": "NaN", "tab": "javascript:alert(1)", "x": "y" * 30_000})
    assert (v.ckpt, v.digit, v.seed, v.step) == ("shipped/mnist_lstm", "7", 0, 27)
    assert "<script>" not in v.note and "&lt;script&gt;" in v.note
    assert len(v.note) < 2_000
    assert v.note.count("<li>") == 6


def test_copy_link_writes_back_a_link_that_opens_the_same_view(served):
    url = served.url
    event, (link,) = call(url, "copy_link", ["shipped/mnist_gru", "2", 1.25, 77, 9])
    assert event == "complete" and link.startswith("?")
    v = load(url, dict(p.split("=") for p in link[1:].split("&")))
    assert (v.ckpt, v.digit, v.temperature, v.seed, v.step, v.note) == ("shipped/mnist_gru", "2", 1.25, 77, 9, "")


def test_on_a_space_the_link_is_built_from_the_space_host(served, monkeypatch):
    url = served.url
    monkeypatch.setenv("SPACE_HOST", "someone-rnnviz.hf.space")
    event, (link,) = call(url, "copy_link", ["shipped/mnist_lstm", "7", 1.0, 0, 3])
    assert event == "complete"
    assert link == "https://someone-rnnviz.hf.space/?model=mnist_lstm&digit=7&seed=0&temperature=1&t=3&tab=generate"


def test_copy_link_refuses_bad_input_with_a_message(served):
    url = served.url
    event, out = call(url, "copy_link", ["upload/../../etc/passwd", "7", 1.0, 0, 3])
    assert event == "error" and out["error"], out  # a message, not an unhandled exception
