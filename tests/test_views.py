"""The explorer's pure view builders: the step views' HTML cards (rnnviz.app.cards), the units x
time figure and the figures' shared layout (rnnviz.app.figures), and the Train tab's texts."""

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from rnnviz import ModelConfig, RowModel, render, sample_traces
from rnnviz.app import cards, figures
from rnnviz.app.tabs import train as train_tab
from rnnviz.cells import STATE_NAMES


def tiny_model(cell="lstm", hidden=32, layers=1, seed=0):
    import torch

    torch.manual_seed(seed)
    return RowModel(ModelConfig(cell=cell, hidden=hidden, layers=layers, head_hidden=64)).eval()


@pytest.fixture(scope="module", params=["lstm", "gru", "rnn"])
def trace(request):
    return sample_traces(tiny_model(request.param), n=1, y=7, seed=3)[0]


@pytest.fixture(scope="module")
def lstm_trace():
    return sample_traces(tiny_model("lstm"), n=1, y=3, seed=1)[0]


def decode_uris(html_text):
    """Every inline PNG in an HTML string, as arrays."""
    out = []
    for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', html_text):
        out.append(np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")))
    return out



def test_canvas_html_holds_the_canvas_and_moves_the_row_marker(lstm_trace):
    a, b = cards.canvas_html(lstm_trace, 3), cards.canvas_html(lstm_trace, 20)
    imgs = decode_uris(a)
    assert (imgs[0] == render.canvas_rgb(lstm_trace, 3)).all()  # native resolution, scaled by CSS
    assert (imgs[1] == render.image_rgb(lstm_trace)).all()
    assert 'data-step="3"' in a and 'data-step="20"' in b and a != b
    assert f"top:{100 * 20 / 28:.4f}%" in b
    assert 'class="rv-px"' in a  # pixelated rendering
    assert cards.canvas_html(lstm_trace, 99) == cards.canvas_html(lstm_trace, 27)  # clamped


# ---- gate grids ---------------------------------------------------------------------------------
def test_gates_html_shows_every_state_of_the_cell(trace):
    html_text = cards.gates_html(trace, 5)
    names = STATE_NAMES[trace.cell]
    assert html_text.count('<figure class="rv-gate"') == len(names)
    imgs = decode_uris(html_text)
    assert len(imgs) == len(names)
    rows, cols = render.unit_grid_shape(32)
    for name, img in zip(names, imgs):
        assert img.shape == (rows, cols, 3)
        scale = render.state_scale(name, trace.state(name, 0))
        assert (img == render.colorize(render.units_to_grid(trace.state(name, 0, 5)), scale)).all()
    assert cards.gates_html(trace, 6) != html_text


def test_gates_html_reports_gate_saturation(lstm_trace):
    text = cards.gates_html(lstm_trace, 0)
    assert "&lt;0.1" in text and "&gt;0.9" in text and "mean |c|" in text


def test_gates_html_picks_the_layer():
    tr = sample_traces(tiny_model(layers=2), n=1, y=2, seed=0)[0]
    assert cards.gates_html(tr, 4, 0) != cards.gates_html(tr, 4, 1)
    assert "layer 1 of 2" in cards.gates_html(tr, 4, 0)


# ---- units x time figure ------------------------------------------------------------------------
def test_units_time_figure_is_valid_plotly_with_cursor_and_hover(trace):
    import plotly.graph_objects as go

    fig = figures.units_time_figure(trace, 0, step=9)
    go.Figure(fig)  # validates every attribute
    heat = [d for d in fig["data"] if d["type"] == "heatmap"]
    names = STATE_NAMES[trace.cell]
    assert [d["name"] for d in heat] == list(names)
    for d in heat:
        assert "unit %{y}" in d["hovertemplate"] and "step %{x}" in d["hovertemplate"]
        z = np.frombuffer(base64.b64decode(d["z"]["bdata"]), "<f4").reshape(32, 28)
        assert np.allclose(z, trace.state(d["name"], 0).T)
    bars = fig["data"][0]
    assert bars["type"] == "bar"
    assert np.allclose(np.frombuffer(base64.b64decode(bars["y"]["bdata"]), "<f4"), trace.row_nll)
    cursors = [s for s in fig["layout"]["shapes"] if s["name"] == render.CURSOR]
    assert len(cursors) == len(names) + 1 and all(s["x0"] == s["x1"] == 9 for s in cursors)
    band = [s for s in fig["layout"]["shapes"] if s["name"] == render.BAND]
    assert band[0]["x0"] == 8.5 and band[0]["x1"] == 9.5


def test_units_time_figure_payload_is_compact():
    tr = sample_traces(tiny_model(hidden=256), n=1, y=0, seed=0)[0]
    size = len(json.dumps(figures.units_time_figure(tr)))
    assert size < 300_000  # six 256 x 28 panels as base64 float32


def test_empty_figure_shows_the_message():
    fig = figures.empty_figure("<nothing>")
    assert "&lt;nothing&gt;" in fig["layout"]["annotations"][0]["text"]


# ---- text and training ----------------------------------------------------------------------------
def test_summaries(lstm_trace):
    text = cards.trace_summary(lstm_trace, "m")
    assert "digit **3**" in text and "seed 1" in text and f"{lstm_trace.nll:.1f}" in text
    line = cards.model_summary(ModelConfig(hidden=64), {"test_nll": 81.234, "parameters": 123456}, "x")
    assert "LSTM" in line and "81.23" in line and "0.12 M" in line


def test_curve_rows_downsample_train_loss_and_keep_every_test_point():
    hist = [{"step": i, "train_loss": 500.0 - i * 0.1, "test_nll": (300.0 if i % 500 == 0 else None)}
            for i in range(3000)]
    hist.append({"step": 3000, "train_loss": float("nan"), "test_nll": 250.0})
    rows = train_tab.curve_rows(hist, max_points=100)
    train = [r for r in rows if r["series"] == "train loss"]
    test = [r for r in rows if r["series"] == "test NLL"]
    assert len(train) <= 101 and train[-1]["step"] == 2999
    assert [r["step"] for r in test] == [0, 500, 1000, 1500, 2000, 2500, 3000]
    assert not [r for r in rows if r["series"] == "validation NLL"]
    # a run with a validation split (--val-images) logs val_nll: its own series beside the final test score
    hist = [{"step": i, "train_loss": 90.0, "test_nll": None, "val_nll": 88.0 - i} for i in range(3)]
    hist.append({"step": 3, "train_loss": 89.0, "test_nll": 86.5, "val_nll": None})
    rows = train_tab.curve_rows(hist)
    assert [(r["step"], r["nats"]) for r in rows if r["series"] == "validation NLL"] == [(0, 88.0), (1, 87.0), (2, 86.0)]
    assert [(r["step"], r["nats"]) for r in rows if r["series"] == "test NLL"] == [(3, 86.5)]
    # the plot is told every series up front (else it draws later ones into the first frame's line)
    assert {r["series"] for r in rows} == set(train_tab.SERIES_COLOURS)
    # ... and a run's first frame names the scores still to come, as rows the plot does not draw
    first = train_tab.curve_rows([{"step": 5, "train_loss": 300.0, "test_nll": None}],
                                 expect=train_tab.expected_series(0))
    assert first == [{"step": 5, "nats": 300.0, "series": "train loss"}, {"step": 5, "nats": None, "series": "test NLL"}]
    assert train_tab.curve_rows([], expect=train_tab.expected_series(0)) == []  # never a frame of placeholders alone
    later = train_tab.curve_rows(hist, expect=train_tab.expected_series(100))
    assert later == rows  # every expected series has points: nothing added
    assert set(train_tab.expected_series(100)) == set(train_tab.SERIES_COLOURS)
    assert "test NLL" not in train_tab.expected_series(100, final_eval=False)  # no final score: no legend entry
    frame = train_tab._curve_frame(first)
    assert frame["nats"].isna().tolist() == [False, True] and frame["series"].tolist() == ["train loss", "test NLL"]


def test_training_status_texts():
    assert "Start" in train_tab.training_status(None)
    snap = {"state": "running", "message": "training", "step": 12, "seconds": 65.0, "seconds_left": 55.0,
            "history": [{"step": 12, "train_loss": 180.5, "samples_per_s": 900.0, "test_nll": None}],
            "checkpoint": None, "paused": False}
    text = train_tab.training_status(snap, {"summary": "LSTM 1x32", "started": "12:00:00", "who": "you"})
    assert "**running**" in text and "1:05 trained" in text and "0:55 left" in text and "900 images/s" in text
    assert "180.50" in text and "by you" in text
    done = dict(snap, state="stopped", checkpoint="runs/explorer/x.safetensors")
    assert "left" not in train_tab.training_status(done) and "x.safetensors" in train_tab.training_status(done)


def test_sample_grid(lstm_trace):
    assert train_tab.sample_grid(None) is None
    img = train_tab.sample_grid(np.ones((10, 28, 28), np.float32), cols=10, scale=2)
    assert img.size[0] > 10 * 28 * 2
