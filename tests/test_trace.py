"""The gates the explorer shows are the ones the fused PyTorch module computes."""

import numpy as np
import pytest
import torch

from rnnviz import ModelConfig, RowModel, cells, sample_traces, trace_images
from rnnviz.analysis import forcing_comparison, gate_saturation
from rnnviz.model import ORDERS, from_order, to_order
from rnnviz.render import FUTURE, INK, PAPER, PROB_SCALE, canvas_rgb, colorize
from rnnviz.units import keep_factors, memory_reach, unit_profile


def drawn(image: np.ndarray) -> np.ndarray:
    """The canvas colours (``render.canvas_rgb``) of pixels already drawn: ink or paper, (..., 3)."""
    return np.where(image[..., None].astype(bool), np.array(INK, np.uint8), np.array(PAPER, np.uint8))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_unrolled_states_equal_fused_module(cell):
    torch.manual_seed(0)
    model = RowModel(ModelConfig(cell=cell, hidden=48, layers=2, head_hidden=64)).eval()
    x = (torch.rand(3, 28, 28) < 0.3).float()
    y = torch.tensor([1, 5, 9])
    inputs = model.step_inputs(model.shift_rows(x), y)
    ours = cells.unroll(model.rnn, inputs)

    # The fused module, one step at a time, exposes every layer's h (and c) after each step.
    state, h_fused, c_fused = None, [], []
    with torch.no_grad():
        full_out, _ = model.rnn(inputs)
        for t in range(28):
            _, state = model.rnn(inputs[:, t:t + 1], state)
            h_n = state[0] if cell == "lstm" else state
            h_fused.append(h_n)
            if cell == "lstm":
                c_fused.append(state[1])
    h_fused = torch.stack(h_fused, dim=2)  # (layers, B, T, H)
    for k in range(2):
        torch.testing.assert_close(ours[k]["h"], h_fused[k], atol=1e-5, rtol=0)
        if cell == "lstm":
            torch.testing.assert_close(ours[k]["c"], torch.stack(c_fused, 2)[k], atol=1e-5, rtol=0)
    torch.testing.assert_close(ours[-1]["h"], full_out, atol=1e-5, rtol=0)
    assert set(ours[0]) == set(cells.STATE_NAMES[cell])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_sampled_trace_reproduces_its_image(cell):
    """A sample's trace, recomputed by reading the finished image, gives the same states and the
    same probabilities the pixels were drawn with, and its NLL equals log_prob."""
    torch.manual_seed(1)
    model = RowModel(ModelConfig(cell=cell, hidden=32, layers=2, head_hidden=56)).eval()
    sampled = sample_traces(model, n=2, y=[3, 7], seed=4)
    read = trace_images(model, np.stack([t.image for t in sampled]), y=[3, 7])
    for s, r in zip(sampled, read):
        assert s.label == r.label
        for k in range(2):
            for name in cells.STATE_NAMES[cell]:
                np.testing.assert_allclose(s.layers[k][name], r.layers[k][name], atol=1e-5)
        np.testing.assert_allclose(s.probs, r.probs, atol=1e-5)
        lp = model.log_prob(torch.from_numpy(s.image).float()[None], y=s.label).item()
        assert abs(lp + s.nll) < 1e-3
        assert s.row_nll.shape == (28,) and (s.row_nll >= 0).all()


def test_trace_shapes_and_canvas():
    model = RowModel(ModelConfig(hidden=40, layers=1, head_hidden=64)).eval()
    (t,) = sample_traces(model, n=1, y=2, seed=0, temperature=0.7)
    assert t.cell == "lstm" and t.names == ("i", "f", "g", "o", "c", "h")
    assert t.layers[0]["f"].shape == (28, 40)
    assert t.temperature == 0.7 and t.seed == 0
    for name in ("i", "f", "o"):
        assert ((t.layers[0][name] >= 0) & (t.layers[0][name] <= 1)).all()
    canvas = canvas_rgb(t, 10)
    np.testing.assert_array_equal(canvas[:10], drawn(t.image[:10]))
    np.testing.assert_array_equal(canvas[10], colorize(t.probs[10], PROB_SCALE))
    assert (canvas[11:] == FUTURE).all()


# ---- scan orders ------------------------------------------------------------------------------------
# A model of scan order o reads an image x as the classic "rows" model with the same weights reads
# to_order(x, o): every per-step quantity (states, line NLL, memory reach) must agree between the two,
# and every per-pixel one (probabilities, activity maps) must agree once mapped back with from_order.


def _pair(order: str, cell: str = "lstm", size: int = 5, layers: int = 1, seed: int = 0):
    """(a model of ``order``, the same weights as a "rows" model)."""
    torch.manual_seed(seed)
    config = ModelConfig(cell=cell, hidden=8, head_hidden=9, layers=layers, num_classes=3, height=size,
                         width=size, order=order)
    model = RowModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(2.0)  # far from uniform, so a wrong pixel order shows
    rows = RowModel(ModelConfig(**{**config.to_dict(), "order": "rows"})).eval()
    rows.load_state_dict(model.state_dict())
    return model, rows


CELLS_BY_ORDER = dict(zip(ORDERS, ["lstm", "gru", "rnn", "lstm", "gru", "rnn", "lstm", "gru"]))


@pytest.mark.parametrize("order", list(ORDERS))
def test_trace_of_a_sample_in_every_order(order):
    model, rows = _pair(order, CELLS_BY_ORDER[order], layers=2)
    sampled = sample_traces(model, n=3, y=[0, 2, 1], seed=3)
    images = np.stack([t.image for t in sampled])
    read = trace_images(model, images, y=[0, 2, 1])
    as_rows = trace_images(rows, to_order(torch.from_numpy(images).float(), order).numpy(), y=[0, 2, 1])
    nll = model.nll(torch.from_numpy(images).float(), torch.tensor([0, 2, 1]), reduce=False)
    for b, (s, r, q) in enumerate(zip(sampled, read, as_rows)):
        assert s.order == r.order == order and q.order == "rows"
        np.testing.assert_array_equal(s.image, r.image)
        np.testing.assert_array_equal(s.lines(s.image), q.image)  # step t wrote line t of the order
        for k in range(2):
            for name in cells.STATE_NAMES[model.config.cell]:
                np.testing.assert_allclose(s.layers[k][name], r.layers[k][name], atol=1e-5)
                np.testing.assert_allclose(s.layers[k][name], q.layers[k][name], atol=1e-5)
        np.testing.assert_allclose(s.probs, r.model_probs, atol=1e-5)  # drawn at temperature 1
        np.testing.assert_allclose(s.model_probs, r.model_probs, atol=1e-5)
        np.testing.assert_allclose(s.lines(s.model_probs), q.model_probs, atol=1e-5)
        np.testing.assert_allclose(s.row_nll, q.row_nll, atol=1e-4)  # per line
        assert abs(s.nll - nll[b].item()) < 1e-4 and abs(r.nll - nll[b].item()) < 1e-4
        # The canvas fills line by line at the order's pixels; the last step shows the image.
        np.testing.assert_array_equal(canvas_rgb(s, s.steps), drawn(s.image))
        for t in (0, 2, 4):
            c, mask = canvas_rgb(s, t), s.line_mask(t)
            assert mask.sum() == 5 and np.array_equal(s.lines(mask)[t], np.ones(5, bool))
            np.testing.assert_array_equal(c[mask], colorize(s.probs, PROB_SCALE)[mask])
            done = s.from_lines(np.arange(5)[:, None].repeat(5, 1) < t)
            np.testing.assert_array_equal(c[done], drawn(s.image)[done])
            assert (c[~done & ~mask] == FUTURE).all()


def test_trace_canvas_of_a_column_order_fills_columns():
    model, _ = _pair("cols_rl")  # columns right to left, each top-down
    (t,) = sample_traces(model, n=1, y=1, seed=0)
    mask = t.line_mask(0)
    assert mask[:, -1].all() and mask.sum() == 5  # the first line is the rightmost column
    c = canvas_rgb(t, 2)
    np.testing.assert_array_equal(c[:, 3:], drawn(t.image[:, 3:]))
    np.testing.assert_array_equal(c[:, 2], colorize(t.probs[:, 2], PROB_SCALE))
    assert (c[:, :2] == FUTURE).all()
    assert abs(t.lines(t.image)[0] - t.image[:, -1]).sum() == 0


@pytest.mark.parametrize("order", ["rows_bu", "cols", "cols_rl_bu"])
def test_completion_and_row_edits_are_lines_of_the_order(order):
    model, rows = _pair(order)
    prefix = (torch.rand(5, 5, generator=torch.Generator().manual_seed(1)) < 0.5).float()
    (t,) = sample_traces(model, 1, y=2, seed=4, prefix=prefix, keep_rows=2)
    np.testing.assert_array_equal(t.lines(t.image)[:2], to_order(prefix, order)[:2].numpy())
    (q,) = sample_traces(rows, 1, y=2, seed=4, prefix=to_order(prefix, order), keep_rows=2)
    np.testing.assert_array_equal(t.lines(t.image), q.image)
    line = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    (e,) = sample_traces(model, 1, y=2, seed=4, edit_rows={3: line})
    np.testing.assert_array_equal(e.lines(e.image)[3], line.numpy())


@pytest.mark.parametrize("order", ["cols", "rows_bu_rl"])
def test_analyses_read_lines_of_the_order(order):
    model, rows = _pair(order, "lstm")
    torch.manual_seed(5)
    x = (torch.rand(6, 5, 5) < 0.4).float()
    lines = to_order(x, order)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    sat, sat_rows = gate_saturation(model, x, y=y), gate_saturation(rows, lines, y=y)
    for g in sat["gates"]:
        np.testing.assert_array_equal(sat["low"][g], sat_rows["low"][g])
        np.testing.assert_array_equal(sat["high"][g], sat_rows["high"][g])
    np.testing.assert_allclose(keep_factors(model, x, y=y), keep_factors(rows, lines, y=y), atol=1e-6)
    np.testing.assert_allclose(memory_reach(model, x, y=y), memory_reach(rows, lines, y=y), atol=1e-5)
    prof, prof_rows = unit_profile(model, x, 3, y=y, top_k=2), unit_profile(rows, lines, 3, y=y, top_k=2)
    np.testing.assert_allclose(prof.values, prof_rows.values, atol=1e-6)
    np.testing.assert_array_equal(np.isnan(prof.activity_map),
                                  from_order(torch.from_numpy(np.isnan(prof_rows.activity_map)), order).numpy())
    np.testing.assert_allclose(prof.activity_map, from_order(torch.from_numpy(prof_rows.activity_map), order).numpy(),
                               atol=1e-5)
    # Teacher forcing: the forced run's NLL is the model's; a free run that keeps every line is forced.
    cmp = forcing_comparison(model, x[0], y=0, seed=2, keep_rows=5)
    assert abs(cmp.forced.nll - model.nll(x[:1], torch.tensor([0])).item()) < 1e-4
    assert cmp.first_diff_row is None and not cmp.row_mismatch.any()
    cmp = forcing_comparison(model, x[0], y=0, seed=2, keep_rows=2)
    cmp_rows = forcing_comparison(rows, lines[0], y=0, seed=2, keep_rows=2)
    np.testing.assert_array_equal(cmp.row_mismatch, cmp_rows.row_mismatch)
    assert cmp.first_diff_row == cmp_rows.first_diff_row
    np.testing.assert_allclose(cmp.h_distance, cmp_rows.h_distance, atol=1e-5)
