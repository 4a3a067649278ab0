"""The explorer's pure parts: view builders (rnnviz.app.views) and input handling (rnnviz.app.inputs)."""

import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from rnnviz import ModelConfig, RowModel, render, sample_traces
from rnnviz.app import inputs, views
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


# ---- colour scales ------------------------------------------------------------------------------
def test_colorize_maps_ends_to_anchor_colours_and_nan_to_grey():
    rgb = views.colorize(np.array([0.0, 1.0, np.nan, -5.0, 7.0]), views.GATE_SCALE)
    assert rgb.shape == (5, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0]) == render.hex_rgb(views.VIRIDIS[0]) == tuple(rgb[3])  # clipped below
    assert tuple(rgb[1]) == render.hex_rgb(views.VIRIDIS[-1]) == tuple(rgb[4])  # clipped above
    assert tuple(rgb[2]) == views.NAN_RGB


def test_diverging_scale_is_white_at_zero():
    mid = views.colorize(np.array([0.0]), views.TANH_SCALE)[0]
    assert (mid > 240).all()


def test_state_scales_match_value_ranges():
    assert views.state_scale("i") == views.state_scale("z") == views.GATE_SCALE
    assert views.state_scale("g") == views.state_scale("h") == views.TANH_SCALE
    c = np.array([[-3.2, 0.5], [2.0, 0.1]], np.float32)
    s = views.state_scale("c", c)
    assert s.vmin == -s.vmax and s.vmax >= 3.0
    assert views.state_scale("c", np.zeros((2, 2), np.float32)).vmax == 1.0  # at least tanh's range
    scale = views.GATE_SCALE.colorscale()
    assert scale[0][0] == 0 and scale[-1][0] == 1 and len(scale) == len(views.VIRIDIS)


# ---- unit grids ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n,shape", [(256, (16, 16)), (128, (8, 16)), (100, (10, 10)), (64, (8, 8)),
                                     (32, (4, 8)), (1, (1, 1))])
def test_unit_grid_shape(n, shape):
    assert views.unit_grid_shape(n) == shape


def test_unit_grid_for_awkward_sizes_holds_every_unit():
    for n in (37, 50, 97, 130):
        r, c = views.unit_grid_shape(n)
        assert r * c >= n and c <= 2 * r + 2
    g = views.units_to_grid(np.arange(37, dtype=np.float32))
    assert np.isnan(g).sum() == g.size - 37 and g.ravel()[36] == 36
    with pytest.raises(ValueError):
        views.unit_grid_shape(0)


# ---- canvas -------------------------------------------------------------------------------------
def test_canvas_shows_drawn_rows_probabilities_and_empty_rows(lstm_trace):
    tr = lstm_trace
    t = 10
    rgb = views.canvas_rgb(tr, t)
    assert rgb.shape == (28, 28, 3)
    ink = tr.image[:t].astype(bool)
    assert (rgb[:t][ink] == views.INK).all() and (rgb[:t][~ink] == views.PAPER).all()
    assert (rgb[t] == views.colorize(tr.probs[t], views.PROB_SCALE)).all()
    assert (rgb[t + 1:] == views.FUTURE).all()
    assert (views.canvas_rgb(tr, 28)[27] != views.FUTURE).any()  # finished image


def test_canvas_marks_kept_rows_of_a_completion():
    model = tiny_model()
    prefix = np.zeros((28, 28), np.float32)
    prefix[2:8, 10:18] = 1
    tr = sample_traces(model, n=1, y=1, seed=0, prefix=prefix, keep_rows=8)[0]
    rgb = views.canvas_rgb(tr, 12)
    assert (rgb[2:8, 10:18] == views.KEPT_INK).all()
    assert (rgb[:8][prefix[:8] == 0] == views.KEPT_PAPER).all()


def test_canvas_html_holds_the_canvas_and_moves_the_row_marker(lstm_trace):
    a, b = views.canvas_html(lstm_trace, 3), views.canvas_html(lstm_trace, 20)
    imgs = decode_uris(a)
    assert (imgs[0] == views.canvas_rgb(lstm_trace, 3)).all()  # native resolution, scaled by CSS
    assert (imgs[1] == views.image_rgb(lstm_trace)).all()
    assert 'data-step="3"' in a and 'data-step="20"' in b and a != b
    assert f"top:{100 * 20 / 28:.4f}%" in b
    assert 'class="rv-px"' in a  # pixelated rendering
    assert views.canvas_html(lstm_trace, 99) == views.canvas_html(lstm_trace, 27)  # clamped


# ---- gate grids ---------------------------------------------------------------------------------
def test_gates_html_shows_every_state_of_the_cell(trace):
    html_text = views.gates_html(trace, 5)
    names = STATE_NAMES[trace.cell]
    assert html_text.count('<figure class="rv-gate"') == len(names)
    imgs = decode_uris(html_text)
    assert len(imgs) == len(names)
    rows, cols = views.unit_grid_shape(32)
    for name, img in zip(names, imgs):
        assert img.shape == (rows, cols, 3)
        scale = views.state_scale(name, trace.state(name, 0))
        assert (img == views.colorize(views.units_to_grid(trace.state(name, 0, 5)), scale)).all()
    assert views.gates_html(trace, 6) != html_text


def test_gates_html_reports_gate_saturation(lstm_trace):
    text = views.gates_html(lstm_trace, 0)
    assert "&lt;0.1" in text and "&gt;0.9" in text and "mean |c|" in text


def test_gates_html_picks_the_layer():
    tr = sample_traces(tiny_model(layers=2), n=1, y=2, seed=0)[0]
    assert views.gates_html(tr, 4, 0) != views.gates_html(tr, 4, 1)
    assert "layer 1 of 2" in views.gates_html(tr, 4, 0)


# ---- units x time figure ------------------------------------------------------------------------
def test_units_time_figure_is_valid_plotly_with_cursor_and_hover(trace):
    import plotly.graph_objects as go

    fig = views.units_time_figure(trace, 0, step=9)
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
    cursors = [s for s in fig["layout"]["shapes"] if s["name"] == views.CURSOR]
    assert len(cursors) == len(names) + 1 and all(s["x0"] == s["x1"] == 9 for s in cursors)
    band = [s for s in fig["layout"]["shapes"] if s["name"] == views.BAND]
    assert band[0]["x0"] == 8.5 and band[0]["x1"] == 9.5


def test_units_time_figure_payload_is_compact():
    tr = sample_traces(tiny_model(hidden=256), n=1, y=0, seed=0)[0]
    size = len(json.dumps(views.units_time_figure(tr)))
    assert size < 300_000  # six 256 x 28 panels as base64 float32


def test_empty_figure_shows_the_message():
    fig = views.empty_figure("<nothing>")
    assert "&lt;nothing&gt;" in fig["layout"]["annotations"][0]["text"]


# ---- text and training ----------------------------------------------------------------------------
def test_summaries(lstm_trace):
    text = views.trace_summary(lstm_trace, "m")
    assert "digit **3**" in text and "seed 1" in text and f"{lstm_trace.nll:.1f}" in text
    line = views.model_summary(ModelConfig(hidden=64), {"test_nll": 81.234, "parameters": 123456}, "x")
    assert "LSTM" in line and "81.23" in line and "0.12 M" in line


def test_curve_rows_downsample_train_loss_and_keep_every_test_point():
    hist = [{"step": i, "train_loss": 500.0 - i * 0.1, "test_nll": (300.0 if i % 500 == 0 else None)}
            for i in range(3000)]
    hist.append({"step": 3000, "train_loss": float("nan"), "test_nll": 250.0})
    rows = views.curve_rows(hist, max_points=100)
    train = [r for r in rows if r["series"] == "train loss"]
    test = [r for r in rows if r["series"] == "test NLL"]
    assert len(train) <= 101 and train[-1]["step"] == 2999
    assert [r["step"] for r in test] == [0, 500, 1000, 1500, 2000, 2500, 3000]


def test_training_status_texts():
    assert "Start" in views.training_status(None)
    snap = {"state": "running", "message": "training", "step": 12, "seconds": 65.0, "seconds_left": 55.0,
            "history": [{"step": 12, "train_loss": 180.5, "samples_per_s": 900.0, "test_nll": None}],
            "checkpoint": None, "paused": False}
    text = views.training_status(snap, {"summary": "LSTM 1x32", "started": "12:00:00", "who": "you"})
    assert "**running**" in text and "1:05 trained" in text and "0:55 left" in text and "900 images/s" in text
    assert "180.50" in text and "by you" in text
    done = dict(snap, state="stopped", checkpoint="runs/explorer/x.safetensors")
    assert "left" not in views.training_status(done) and "x.safetensors" in views.training_status(done)


def test_sample_grid_and_thumbnails(lstm_trace):
    assert views.sample_grid(None) is None
    img = views.sample_grid(np.ones((10, 28, 28), np.float32), cols=10, scale=2)
    assert img.size[0] > 10 * 28 * 2
    thumb = views.thumbnail(lstm_trace, 4)
    assert thumb.size == (112, 112)
    prev = np.asarray(views.prefix_preview(lstm_trace.image, 5, scale=1))
    assert (prev[5:] != views.KEPT_INK).any()


# ---- inputs -------------------------------------------------------------------------------------
def test_number_clamps_and_explains():
    assert inputs.number("t", 0.5, 0, 1).value == 0.5
    c = inputs.number("temperature", 9, 0.1, 2)
    assert c.value == 2 and "outside" in c.note
    assert inputs.number("seed", "12", 0, 100, integer=True).value == 12
    assert inputs.number("seed", None, 0, 100, integer=True, default=3).value == 3
    for bad in ("abc", float("nan"), float("inf"), [1]):
        with pytest.raises(inputs.InputError):
            inputs.number("x", bad, 0, 1)


def test_digit_parsing():
    assert inputs.digit("any", 10) is None and inputs.digit(None, 10) is None
    assert inputs.digit("7", 10) == 7 and inputs.digit(3, 10) == 3 and inputs.digit("4.0", 10) == 4
    assert inputs.digit("auto", 10, allow_auto=True) == "auto"
    for bad in ("12", "-1", "seven", "2.5", "auto"):
        with pytest.raises(inputs.InputError, match="digit must be"):
            inputs.digit(bad, 10)
    with pytest.raises(inputs.InputError, match="unconditional"):
        inputs.digit("3", 0)


def _stroke_canvas():
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[40:60, 60:200, 3] = 255  # the bar of a 7
    for k in range(60, 240):  # its stem
        x = 200 - (k - 60) // 2
        rgba[k, x - 9:x + 9, 3] = 255
    return rgba


def test_ink_mask_reads_sketchpad_layers_and_composites():
    layer = _stroke_canvas()
    mask = inputs.ink_mask({"background": np.full((280, 280, 4), 255, np.uint8), "layers": [layer],
                            "composite": None})
    assert mask.shape == (280, 280) and mask.max() == 1.0 and mask[0, 0] == 0
    composite = np.full((280, 280, 4), 255, np.uint8)
    composite[layer[..., 3] > 0, :3] = 0
    assert np.allclose(inputs.ink_mask({"layers": [], "composite": composite}), mask)
    assert inputs.ink_mask(None) is None
    with pytest.raises(inputs.InputError):
        inputs.ink_mask(np.zeros((4, 4, 7)))


def test_mnist_like_fits_a_20px_box_and_centres_the_mass():
    digit = inputs.mnist_like(inputs.ink_mask({"layers": [_stroke_canvas()]}))
    assert digit.shape == (28, 28) and digit.dtype == np.uint8 and digit.max() == 255
    rows, cols = np.nonzero(digit > 25)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= 21
    w = digit.astype(float)
    ys, xs = np.indices(w.shape)
    assert abs((w * ys).sum() / w.sum() - 13.5) < 1.0 and abs((w * xs).sum() / w.sum() - 13.5) < 1.0


@pytest.mark.parametrize("ink,match", [(np.zeros((280, 280)), "empty"), (np.ones((280, 280)), "covers"),
                                       (None, "empty")])
def test_mnist_like_rejects_odd_drawings(ink, match):
    with pytest.raises(inputs.InputError, match=match):
        inputs.mnist_like(ink)


def test_safe_name_cannot_leave_the_folder():
    assert inputs.safe_name("../../etc/passwd", "x") == "etc_passwd"
    assert inputs.safe_name("my run.v2", "x") == "my_run_v2"
    assert inputs.safe_name("///", "fallback") == "fallback"
    assert inputs.safe_name("ü" * 50, "fb") == "fb"
    assert len(inputs.safe_name("a" * 100, "x")) == 40
