"""Colours and images (rnnviz.render): the scales the explorer, the exports and the site share,
unit grids, the canvas, thumbnails."""

import numpy as np
import pytest

from rnnviz import ModelConfig, RowModel, render, sample_traces


def tiny_model(cell="lstm", hidden=32, layers=1, seed=0):
    import torch

    torch.manual_seed(seed)
    return RowModel(ModelConfig(cell=cell, hidden=hidden, layers=layers, head_hidden=64)).eval()


@pytest.fixture(scope="module")
def lstm_trace():
    return sample_traces(tiny_model("lstm"), n=1, y=3, seed=1)[0]


# ---- colour scales ------------------------------------------------------------------------------
def test_colorize_maps_ends_to_anchor_colours_and_nan_to_grey():
    rgb = render.colorize(np.array([0.0, 1.0, np.nan, -5.0, 7.0]), render.GATE_SCALE)
    assert rgb.shape == (5, 3) and rgb.dtype == np.uint8
    assert tuple(rgb[0]) == render.hex_rgb(render.VIRIDIS[0]) == tuple(rgb[3])  # clipped below
    assert tuple(rgb[1]) == render.hex_rgb(render.VIRIDIS[-1]) == tuple(rgb[4])  # clipped above
    assert tuple(rgb[2]) == render.NAN_RGB


def test_diverging_scale_is_white_at_zero():
    mid = render.colorize(np.array([0.0]), render.TANH_SCALE)[0]
    assert (mid > 240).all()


def test_state_scales_match_value_ranges():
    assert render.state_scale("i") == render.state_scale("z") == render.GATE_SCALE
    assert render.state_scale("g") == render.state_scale("h") == render.TANH_SCALE
    c = np.array([[-3.2, 0.5], [2.0, 0.1]], np.float32)
    s = render.state_scale("c", c)
    assert s.vmin == -s.vmax and s.vmax >= 3.0
    assert render.state_scale("c", np.zeros((2, 2), np.float32)).vmax == 1.0  # at least tanh's range
    scale = render.GATE_SCALE.colorscale()
    assert scale[0][0] == 0 and scale[-1][0] == 1 and len(scale) == len(render.VIRIDIS)


# ---- unit grids ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n,shape", [(256, (16, 16)), (128, (8, 16)), (100, (10, 10)), (64, (8, 8)),
                                     (32, (4, 8)), (1, (1, 1))])
def test_unit_grid_shape(n, shape):
    assert render.unit_grid_shape(n) == shape


def test_unit_grid_for_awkward_sizes_holds_every_unit():
    for n in (37, 50, 97, 130):
        r, c = render.unit_grid_shape(n)
        assert r * c >= n and c <= 2 * r + 2
    g = render.units_to_grid(np.arange(37, dtype=np.float32))
    assert np.isnan(g).sum() == g.size - 37 and g.ravel()[36] == 36
    with pytest.raises(ValueError):
        render.unit_grid_shape(0)


# ---- canvas -------------------------------------------------------------------------------------
def test_canvas_shows_drawn_rows_probabilities_and_empty_rows(lstm_trace):
    tr = lstm_trace
    t = 10
    rgb = render.canvas_rgb(tr, t)
    assert rgb.shape == (28, 28, 3)
    ink = tr.image[:t].astype(bool)
    assert (rgb[:t][ink] == render.INK).all() and (rgb[:t][~ink] == render.PAPER).all()
    assert (rgb[t] == render.colorize(tr.probs[t], render.PROB_SCALE)).all()
    assert (rgb[t + 1:] == render.FUTURE).all()
    assert (render.canvas_rgb(tr, 28)[27] != render.FUTURE).any()  # finished image


def test_canvas_marks_kept_rows_of_a_completion():
    model = tiny_model()
    prefix = np.zeros((28, 28), np.float32)
    prefix[2:8, 10:18] = 1
    tr = sample_traces(model, n=1, y=1, seed=0, prefix=prefix, keep_rows=8)[0]
    rgb = render.canvas_rgb(tr, 12)
    assert (rgb[2:8, 10:18] == render.KEPT_INK).all()
    assert (rgb[:8][prefix[:8] == 0] == render.KEPT_PAPER).all()


def test_thumbnails(lstm_trace):
    thumb = render.thumbnail(lstm_trace, 4)
    assert thumb.size == (112, 112)
    prev = np.asarray(render.prefix_preview(lstm_trace.image, 5, scale=1))
    assert (prev[5:] != render.KEPT_INK).any()
