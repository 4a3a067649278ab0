"""The explorer's mixture of scan orders (rnnviz/app/mixtures.py, Explorer.sample_mixture and
which_order): the digit is the one Mixture.sample_traces draws from the seed, the page's model
becomes the part that wrote it, "which order?" gives Mixture.which_order's numbers, and a missing or
malformed mixture file is a message, not a crash."""

import numpy as np
import pytest
import torch

from rnnviz import ModelConfig, RowModel, save_checkpoint
from rnnviz.app.inputs import InputError
from rnnviz.app.operations import Explorer
from rnnviz.mixture import Mixture, save_mixture

ORDERS = ("rows", "cols", "rows_bu_rl")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three tiny 28x28 models of three scan orders, listed as checkpoints, and their mixture in
    ``mixture/`` (its parts named after their files, as ``rnnviz.mixture --part`` names them)."""
    root = tmp_path_factory.mktemp("mixture_app")
    parts = []
    for k, order in enumerate(ORDERS):
        torch.manual_seed(k)
        model = RowModel(ModelConfig(hidden=16, head_hidden=32, order=order)).eval()
        save_checkpoint(root / f"tiny_{order}.safetensors", model, {"test_nll": 500.0 + k})
        parts.append(model)
    (root / "mixture").mkdir()
    save_mixture(root / "mixture" / "tiny_mixture.safetensors", Mixture(parts, [f"tiny_{o}" for o in ORDERS]))
    return root


@pytest.fixture(scope="module")
def ex(folder, tmp_path_factory):
    return Explorer(folder, runs_dir=tmp_path_factory.mktemp("runs"))


def test_sample_is_the_mixtures_draw_and_names_the_listed_part(ex):
    mix = ex.mixtures.get()[1]
    drawn = set()
    for seed in range(12):
        draw, key, notes = ex.sample_mixture("3", 1.0, seed)
        summary, k, traces = draw.summary, draw.part, draw.traces
        want_k, want = mix.sample_traces(1, y=3, seed=seed)
        assert k == want_k == mix.choose_part(seed) and notes == []
        np.testing.assert_array_equal(traces[0].image, want[0].image)
        assert traces[0].order == ORDERS[k] and traces[0].label == 3
        assert key == f"shipped/tiny_{ORDERS[k]}"  # the page's model becomes the part that wrote it
        assert f"tiny_{ORDERS[k]}" in summary and f"part {k + 1} of 3" in summary
        drawn.add(k)
    assert drawn == {0, 1, 2}  # the seeds reach every part


def test_which_order_is_the_mixtures(ex):
    mix = ex.mixtures.get()[1]
    image = mix.sample_traces(1, y=5, seed=4)[1][0].image
    got, want = ex.which_order(image, drew=1), mix.which_order(image)
    assert got["drew"] == 1 and got["nll"] == pytest.approx(want["nll"])
    assert [p["order"] for p in got["parts"]] == list(ORDERS)
    for g, w in zip(got["parts"], want["parts"]):
        assert g["nll"] == pytest.approx(w["nll"]) and g["posterior"] == pytest.approx(w["posterior"])
        np.testing.assert_allclose(g["lineNll"], w["line_nll"])
        assert sum(g["lineNll"]) == pytest.approx(g["nll"], abs=1e-3)  # float32 log p vs float64 lines
    with pytest.raises(InputError, match="reads 28\u00d728 images"):
        ex.which_order(np.zeros((5, 5), np.uint8))


def test_bad_input_is_a_message(ex):
    with pytest.raises(InputError, match="digit"):
        ex.sample_mixture("eleven", 1.0, 0)
    _, _, notes = ex.sample_mixture("any", 9.0, 0)  # the temperature is clamped, with a note
    assert notes and "temperature" in notes[0]


def test_no_mixture_or_a_malformed_one_says_why(folder, tmp_path):
    empty = Explorer(tmp_path / "none", runs_dir=tmp_path / "runs")
    assert not empty.mixtures.available
    with pytest.raises(InputError, match="no mixture of scan orders .* python -m rnnviz.mixture"):
        empty.sample_mixture("any", 1.0, 0)
    bad = tmp_path / "bad"
    (bad / "mixture").mkdir(parents=True)
    (bad / "mixture" / "broken.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    broken = Explorer(bad, runs_dir=tmp_path / "runs2")
    assert broken.mixtures.available
    for _ in range(2):  # said again, not retried into a crash
        with pytest.raises(InputError, match="the mixture file could not be read"):
            broken.which_order(np.zeros((28, 28), np.uint8))


def test_a_mixture_added_later_is_found(folder, tmp_path):
    """The folder is read again when its file changes: a mixture copied in after the explorer
    started is used, without a restart."""
    import shutil

    late = Explorer(tmp_path / "late", runs_dir=tmp_path / "runs3")
    with pytest.raises(InputError, match="no mixture of scan orders"):
        late.sample_mixture("any", 1.0, 0)
    (tmp_path / "late" / "mixture").mkdir(parents=True)
    shutil.copy(folder / "mixture" / "tiny_mixture.safetensors", tmp_path / "late" / "mixture")
    draw, _, _ = late.sample_mixture("any", 1.0, 0)
    assert "tiny_mixture" in draw.summary and draw.traces[0].order == ORDERS[draw.part]
