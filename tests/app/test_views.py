"""The explorer's pure view builders: the Markdown summaries (rnnviz.app.cards), the figures' shared
layout (rnnviz.app.figures) and the Train tab's texts. (The step views are drawn in the browser:
tests/test_wire.py and the browser tests.)"""


import numpy as np
import pytest

from rnnviz import ModelConfig, RowModel, sample_traces
from rnnviz.app import cards, figures
from rnnviz.app.tabs import train as train_tab


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
    frame = train_tab.curve_frame(first)
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
