"""Deep links: parse what a URL asks for, fall back with a note on anything else, write it back."""

from __future__ import annotations

import pytest

from rnnviz.app import links
from rnnviz.app.links import Context, View

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
