"""What the page says: one unit is "1 unit", the pattern search says
how to inspect a unit, the Train tab names the runs folder as the visitor can find it (never the
server's absolute path), the About tab describes the grids' default order (by behaviour), and the
static site's build folder is not committed."""

from types import SimpleNamespace

import numpy as np

from rnnviz.app.tabs.units import search_results
from rnnviz.app.training import TrainingService
from tests import ROOT


def match(units, matched=None):
    ranking = None if matched is None else np.argsort(-np.asarray(matched))[:1]
    return SimpleNamespace(steps=(8, 12), threshold=0.5, layer=0, units=np.asarray(units), ranking=ranking,
                           matched=None if matched is None else np.asarray(matched),
                           score=None if matched is None else np.ones(len(matched)))


def test_pattern_search_counts_one_unit_as_one_unit():
    digits = SimpleNamespace(images=np.zeros((2, 28, 28), np.uint8), labels=np.array([3, 5]), source="test")
    text, _ = search_results(None, match([7]), digits, "7")
    assert "**1 unit** of layer 1 has" in text and "1 units" not in text
    assert "Type one of these numbers into *unit*" in text and "Click one number into" not in text
    text, cards = search_results(None, match([7, 9], matched=[1, 2]), digits, "7")
    assert "**2 units** of layer 1 have" in text
    assert "<br>2 units, " in cards and "<br>1 unit, " not in cards  # the best match (2 units) is shown


def test_the_train_tab_names_the_runs_folder_as_a_visitor_finds_it(tmp_path, monkeypatch):
    runs = tmp_path / "runs" / "explorer"
    monkeypatch.chdir(tmp_path)
    assert TrainingService(runs, enabled=False).runs_folder() == "runs/explorer/"  # not "explorer/"
    monkeypatch.chdir(ROOT)  # started elsewhere: the last two folders, never the absolute path
    shown = TrainingService(runs, enabled=False).runs_folder()
    assert shown == "\u2026/runs/explorer/" and str(tmp_path) not in shown


def test_about_says_the_grids_are_by_behaviour_by_default():
    about = (ROOT / "rnnviz" / "app" / "about.md").read_text()
    assert "**by behaviour** by" in about and "*index order*" in about


def test_the_static_site_build_folder_is_ignored():
    assert "/site/" in (ROOT / ".gitignore").read_text().split()
