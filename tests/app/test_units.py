"""The unit views through gradio_client: the step view's unit order, the Units tab (inspector,
a click's pick, pattern search) and Compare's memory reach, against ``rnnviz.units`` called
directly on the same test digits (the fixture dataset's 200, tests/fixtures/mnist_small.npz)."""

import json

import numpy as np
import pytest

from rnnviz import ModelConfig, trace_images, units
from rnnviz.app.operations import Explorer
from rnnviz.app.training import TrainingService
from tests.app import plot_json, tiny_checkpoints

LSTM, GRU, RNN, DEEP = "shipped/mnist_lstm", "shipped/mnist_gru", "shipped/mnist_rnn", "shipped/deep_gru"


# what the shared ``served`` fixture (tests/app/conftest.py) serves here; a Train tab on the fixture dataset
CHECKPOINTS = {"mnist_lstm": ModelConfig(hidden=32, head_hidden=64),
               "mnist_gru": ModelConfig(cell="gru", hidden=32, head_hidden=64),
               "mnist_rnn": ModelConfig(cell="rnn", hidden=16, head_hidden=32),
               "deep_gru": ModelConfig(cell="gru", hidden=16, layers=2, head_hidden=32)}
METRICS = {"dataset": "test"}


def digits(ex, key):
    entry, model = ex.model(key)
    return model, ex.unit_studies.digits(entry, model)


# ---- the step view's unit order -------------------------------------------------------------------
def test_the_payload_carries_the_behaviour_order(served):
    """Generate sends each layer's behaviour order (``units.unit_order`` over the test digits) with the
    trace; the page lays the grids and panels out in it, or in index order (tests/browser/test_units.py)."""
    ex, client = served.ex, served.client
    summary, value = client.predict(LSTM, "3", 1.0, 4, api_name="/generate")
    model, d = digits(ex, LSTM)
    expected = units.unit_order(model, d.images, d.y).tolist()
    col = json.loads(value)["columns"][0]
    assert col["unitOrder"] == [expected] and sorted(expected) == list(range(32)) and expected != list(range(32))
    assert not col["note"]
    assert ex.sessions.get(client.session_hash).view("gen").model_key == LSTM  # a click inspects this model


def test_order_of_every_layer(served):
    ex, client = served.ex, served.client
    _, value = client.predict(DEEP, "2", 1.0, 0, api_name="/generate")
    model, d = digits(ex, DEEP)
    p = json.loads(value)
    assert p["layer"] == 1
    assert p["columns"][0]["unitOrder"] == [units.unit_order(model, d.images, d.y, layer=k).tolist() for k in (0, 1)]


# ---- the inspector ----------------------------------------------------------------------------------
def lines_of(fig, panel: int) -> dict[int, np.ndarray]:
    """class -> (digits, steps) values of one panel of the inspector's line plot."""
    ax = "x" if panel == 0 else f"x{panel + 1}"
    out = {}
    for t in fig["data"]:
        if t["xaxis"] == ax:
            y = np.array([np.nan if v is None else v for v in t["y"]], np.float64)
            out[int(t["name"])] = y.reshape(-1, 29)[:, :28]
    return out


def test_inspector_values_equal_the_units_and_the_traces(served):
    ex, client = served.ex, served.client
    note, layer, lines, examples, maps = client.predict(LSTM, 7, None, api_name="/units_inspect")
    model, d = digits(ex, LSTM)
    prof = units.unit_profile(model, d.images, 7, d.y)
    fig = plot_json(lines)
    for panel, name in enumerate(["h", "i", "f", "o"]):
        got = lines_of(fig, panel)
        for cls, vals in got.items():
            np.testing.assert_allclose(vals, prof.states[name][d.labels == cls], atol=6e-4)
    # the same numbers a trace of one digit holds (teacher forced)
    (tr,) = trace_images(model, d.images[3], y=int(d.labels[3]))
    np.testing.assert_allclose(prof.states["h"][3], tr.state("h", -1)[:, 7], atol=1e-5)
    # most / least active digits, the activity maps, and the caption
    for b, t in prof.most[:3]:
        assert f"#{b} (a {d.labels[b]})" in examples and f"at step {t}" in examples
    assert "most active" in examples and "least active" in examples
    m = plot_json(maps)
    assert len(m["data"]) == 6
    z = np.array([[np.nan if v is None else v for v in row] for row in m["data"][2]["z"]])
    np.testing.assert_allclose(z, prof.activity_map[14], atol=6e-4, equal_nan=True)
    assert "unit **7**" in note and "200 test digits" in note and "mnist_small" in note


def test_a_click_pick_fills_the_inspector(served):
    client = served.client
    unit, note, layer, *_ = client.predict(DEEP, "5:0:none:1234", api_name="/units_pick")
    assert unit == 5 and "unit **5** of layer 1" in note and layer["value"] == 0 and "deep_gru" in note
    # a click in a step view inspects the model that drew its trace, whatever the page's menu says
    client.predict(RNN, "1", 1.0, 0, api_name="/generate")
    unit, note, *_ = client.predict(LSTM, "3:0:gen:99", api_name="/units_pick")
    assert unit == 3 and "mnist_rnn" in note and "16 units" in note


def test_inspector_bad_inputs(served):
    from gradio_client.exceptions import AppError

    client = served.client
    with pytest.raises(AppError, match="unit must be a whole number from 0 to 15"):
        client.predict(RNN, 16, None, api_name="/units_inspect")
    with pytest.raises(AppError, match="unit pick"):
        client.predict(RNN, "x:y", api_name="/units_pick")
    with pytest.raises(AppError, match="unknown checkpoint"):
        client.predict("../x", 1, None, api_name="/units_inspect")


def test_pattern_search_matches_the_units_api(served):
    ex, client = served.ex, served.client
    client.predict(GRU, "4", 1.0, 3, api_name="/generate")
    text, cards = client.predict(GRU, 8, 12, 0.0, None, api_name="/units_search")
    model, d = digits(ex, GRU)
    trace = next(s.views["gen"].trace for s in ex.sessions.values()
                 if s.views.get("gen") and s.views["gen"].trace.seed == 3)
    m = units.pattern_search(trace, (8, 12), 0.0, model, d.images, d.y)
    if len(m.units):
        assert f"**{len(m.units)} units**" in text and ", ".join(map(str, m.units[:5])) in text
        if m.ranking is not None and len(m.ranking):
            assert f"#{m.ranking[0]} (a {d.labels[m.ranking[0]]})" in cards
    else:
        assert "No unit" in text


# ---- memory reach in Compare ------------------------------------------------------------------------
def test_compare_memory_reach_has_three_curves(served):
    ex, client = served.ex, served.client
    note, reach, matrices, taus = client.predict([LSTM, GRU, RNN], 28, api_name="/compare_reach")
    fig = plot_json(reach)
    assert [t["name"] for t in fig["data"]] == ["mnist_lstm", "mnist_gru", "mnist_rnn"]
    assert fig["layout"]["yaxis"]["type"] == "log"
    model, d = digits(ex, RNN)
    curve = units.reach_by_distance(units.memory_reach(model, d.images, d.y))
    got = fig["data"][2]
    np.testing.assert_allclose(np.array(got["y"]), curve[np.array(got["x"])], rtol=1e-3)
    assert len(plot_json(matrices)["data"]) == 3 and len(plot_json(taus)["data"]) == 3
    tau = units.timescales(model, d.images, d.y)
    from rnnviz.app.tabs.compare import tau_counts
    assert plot_json(taus)["data"][2]["y"] == tau_counts(tau).tolist() and sum(tau_counts(tau)) == 16
    assert "200 images of the **mnist_small" in note and "#28" in note
    # cached: the second call says so
    assert "cached" in client.predict([LSTM, GRU, RNN], 3, api_name="/compare_reach")[0]


def test_reach_falls_back_to_the_shipped_digits(tmp_path):
    training = TrainingService(tmp_path / "runs", default_dataset=str(tmp_path / "missing.npz"))
    ckpts = tiny_checkpoints(tmp_path / "ck", {"mnist_rnn": ModelConfig(cell="rnn", hidden=8, head_hidden=16)})
    ex = Explorer(ckpts, tmp_path / "runs", training=training)
    _, d, M, _ = ex.unit_studies.reach(RNN)
    assert len(d.images) == 40 and not d.full and "40 gallery digits" in d.source and "200 of its" in d.source
    assert M.shape == (28, 28) and np.all(np.triu(M) == 0)
