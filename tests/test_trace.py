"""The gates the explorer shows are the ones the fused PyTorch module computes."""

import numpy as np
import pytest
import torch

from rnnviz import ModelConfig, RowModel, cells, sample_traces, trace_images


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
    canvas = t.canvas(10)
    np.testing.assert_array_equal(canvas[:10], t.image[:10])
    np.testing.assert_allclose(canvas[10], t.probs[10])
    assert not canvas[11:].any()
