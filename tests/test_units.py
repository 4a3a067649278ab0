"""What the units do (rnnviz.units, re-exported by rnnviz.analysis): unit order, unit profile,
pattern search, memory reach and timescales, checked against the traces, finite differences, an
independent autograd through cells.unroll, and gates held at known values."""

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import rnnviz.analysis
from rnnviz import ModelConfig, RowModel, load_checkpoint, trace_images, units
from rnnviz.analysis import model_labels
from rnnviz.cells import unroll
from rnnviz.data import binarize_fixed, load_dataset
from tests import FIXTURE, ROOT

GALLERY = ROOT / "rnnviz" / "assets" / "gallery.npz"


def tiny(cell="lstm", num_classes=10, latent=0, hidden=16, height=28, width=28, layers=1, seed=0):
    torch.manual_seed(seed)
    return RowModel(ModelConfig(cell=cell, hidden=hidden, layers=layers, head_hidden=32, num_classes=num_classes,
                                latent=latent, height=height, width=width)).eval()


@pytest.fixture(scope="module")
def data():
    ds = load_dataset(str(FIXTURE))
    return binarize_fixed(ds.test.images[:24], seed=0), ds.test.labels[:24]


@pytest.fixture(scope="module")
def gallery():
    with np.load(GALLERY, allow_pickle=False) as z:
        return binarize_fixed(torch.from_numpy(z["images"]), 0), torch.from_numpy(z["labels"].astype(np.int64))


def test_the_issue_names_are_importable_from_analysis():
    assert rnnviz.analysis.unit_order is units.unit_order
    assert rnnviz.analysis.memory_reach is units.memory_reach
    assert rnnviz.analysis.timescales is units.timescales
    with pytest.raises(AttributeError):
        _ = rnnviz.analysis.no_such_analysis


# ---- unit order --------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_unit_order_is_a_stable_permutation(data, cell):
    x, y = data
    model = tiny(cell, layers=2)
    order = units.unit_order(model, x, y)
    assert order.dtype == np.int64 and sorted(order.tolist()) == list(range(16))
    np.testing.assert_array_equal(units.unit_order(model, x, y), order)  # same model and data: same order
    np.testing.assert_array_equal(units.unit_order(model, x.numpy(), y.numpy()), order)
    assert sorted(units.unit_order(model, x, y, layer=0).tolist()) == list(range(16))


def test_order_sorts_by_peak_step_and_groups_alike_units():
    rng = np.random.default_rng(0)
    T, U, B = 28, 24, 30
    t = np.arange(T)
    # three kinds of unit: a bump at row 5, a bump at row 20, and a ramp that peaks at row 20 too
    kinds = [np.exp(-0.5 * ((t - 5) / 2) ** 2), np.exp(-0.5 * ((t - 20) / 2) ** 2),
             np.clip((t - 10) / 10, 0, 1) * (t <= 20)]
    kind = rng.permutation(np.arange(U) % 3)
    h = np.stack([kinds[k] * (0.5 + rng.random()) for k in kind], -1)[None] * (1 + 0.01 * rng.random((B, 1, U)))
    h[:, :, 7] = 0.0  # a silent unit
    order = units.order_from_states(h)
    assert sorted(order.tolist()) == list(range(U)) and order[-1] == 7  # silent units last
    peak = np.abs(h).mean(0).argmax(0)
    assert np.all(np.diff(peak[order[:-1]]) >= 0)  # non-decreasing peak step along the order
    k = kind[order[:-1]]
    early = int((k == 0).sum())
    assert set(k[:early]) == {0}  # the early bumps first ...
    later = k[early:]
    assert np.count_nonzero(np.diff(later)) == 1  # ... then the two kinds peaking at row 20, each in one block
    np.testing.assert_array_equal(units.order_from_states(h), order)


def test_order_of_the_shipped_lstm_puts_alike_units_together(gallery):
    x, y = gallery
    model = load_checkpoint(ROOT / "checkpoints" / "mnist_lstm.safetensors")
    order = units.unit_order(model, x, y)
    assert sorted(order.tolist()) == list(range(model.config.hidden))
    h = np.stack([t.state("h") for t in trace_images(model, x, y=y)])  # (B, T, U)
    course = h.mean(0).T
    c = np.corrcoef(course)

    def neighbours(o):  # mean correlation of consecutive units' mean time courses
        return float(np.nanmean([c[a, b] for a, b in itertools.pairwise(o)]))
    assert neighbours(order) > neighbours(np.arange(len(order))) + 0.2


# ---- unit profile ------------------------------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_unit_profile_values_equal_the_traces(data, cell):
    x, y = data
    model = tiny(cell, layers=2)
    p = units.unit_profile(model, x, 5, y, layer=0, top_k=4)
    traces = trace_images(model, x, y=y)
    assert p.unit == 5 and p.layer == 0 and p.cell == cell and p.label_source == "given"
    np.testing.assert_array_equal(p.labels, y.numpy())
    np.testing.assert_array_equal(p.images, x.numpy().astype(np.uint8))
    for name, v in p.states.items():
        assert v.shape == (len(x), 28)
        np.testing.assert_array_equal(v, np.stack([t.state(name, 0)[:, 5] for t in traces]))
    assert set(p.gates) == set(rnnviz.analysis.GATES[cell])
    v = p.values
    assert p.most.shape == (4, 2) and p.least.shape == (4, 2)
    assert v[tuple(p.most[0])] == v.max() and v[tuple(p.least[0])] == v.min()
    assert len(set(p.most[:, 0])) == 4  # one row per digit
    tops = [v[b, s] for b, s in p.most]
    assert tops == sorted(tops, reverse=True) and all(v[b].max() == v[b, s] for b, s in p.most)


def test_activity_map_is_the_correlation_with_the_rows_read(data):
    x, y = data
    p = units.unit_profile(tiny("lstm"), x, 3, y)
    m = p.activity_map
    assert m.shape == (28, 28, 28) and m.dtype == np.float32
    for t in range(28):
        assert np.isnan(m[t, t:]).all() and not np.isnan(m[t, :t]).any()
    xs = x.numpy().reshape(len(x), -1)
    t, i, j = 20, 12, 14
    assert xs[:, i * 28 + j].std() > 0
    np.testing.assert_allclose(m[t, i, j], np.corrcoef(p.values[:, t], xs[:, i * 28 + j])[0, 1], atol=1e-5)
    assert m[t, 0, 0] == 0.0  # a pixel that is blank on every digit has no correlation
    assert np.nanmax(np.abs(m)) <= 1 + 1e-6


def test_unit_profile_rejects_bad_input(data):
    x, y = data
    model = tiny("gru")
    for bad in (-1, 16, 2.5, True):
        with pytest.raises(ValueError, match="unit"):
            units.unit_profile(model, x, bad, y)
    with pytest.raises(ValueError, match="name"):
        units.unit_profile(model, x, 0, y, name="f")  # a GRU has no forget gate
    with pytest.raises(ValueError, match="binary"):
        units.unit_profile(model, x * 0.5, 0, y)
    with pytest.raises(ValueError, match="empty"):
        units.unit_profile(model, x[:0], 0, y[:0])


# ---- pattern search ----------------------------------------------------------------------------
def test_pattern_search_selects_and_matches(data):
    x, y = data
    model = tiny("lstm", hidden=32)
    (trace,) = trace_images(model, x[0], y=int(y[0]))
    h = trace.state("h")
    threshold = float(np.median(h[6:12]))
    found = units.pattern_search(trace, (6, 11), threshold, model, x, y)
    expect = np.flatnonzero((h[6:12] > threshold).all(0))
    assert 0 < len(expect) < 32  # the pattern selects some units, not all
    np.testing.assert_array_equal(found.units, expect)
    np.testing.assert_array_equal(found.values, h[6:12, expect].T)  # exactly the trace's values
    # the match, straight from each test digit's trace
    hs = np.stack([t.state("h") for t in trace_images(model, x, y=y)])
    on_all = (hs[:, 6:12] > threshold).all(1)
    np.testing.assert_array_equal(found.on, on_all[:, expect])
    np.testing.assert_array_equal(found.matched, on_all[:, expect].sum(1))
    assert found.score[0] == 1.0 and found.ranking[0] == 0  # the traced digit matches itself exactly
    b = int(found.ranking[-1])
    selected = np.zeros(32, bool)
    selected[expect] = True
    np.testing.assert_allclose(found.score[b], (selected & on_all[b]).sum() / (selected | on_all[b]).sum())
    assert list(found.score[found.ranking]) == sorted(found.score[found.ranking], reverse=True)
    assert set(found.ranking) == set(np.flatnonzero(found.matched > 0))
    np.testing.assert_array_equal(found.labels, y.numpy())
    # a (T, U) array works the same, without a match
    bare = units.pattern_search(h, (6, 11), threshold)
    np.testing.assert_array_equal(bare.units, expect)
    assert bare.on is None and bare.ranking is None


def test_pattern_search_rejects_bad_input(data):
    x, y = data
    model = tiny("rnn")
    (trace,) = trace_images(model, x[0], y=int(y[0]))
    for steps in [(5, 3), (-1, 2), (0, 28), (1.0, 2)]:
        with pytest.raises(ValueError, match="steps"):
            units.pattern_search(trace, steps, 0.1)
    with pytest.raises(ValueError, match="threshold"):
        units.pattern_search(trace, (1, 2), float("nan"))
    with pytest.raises(ValueError, match="name"):
        units.pattern_search(trace, (1, 2), 0.1, name="f")  # an RNN has no forget gate
    with pytest.raises(ValueError, match="layer"):
        units.pattern_search(trace, (1, 2), 0.1, layer=1)
    with pytest.raises(ValueError, match="both model and images"):
        units.pattern_search(trace, (1, 2), 0.1, model=model)


# ---- memory reach ------------------------------------------------------------------------------
def row_logp(model, x, y, t):
    """log p(row t) per image, teacher forced, through the fused module."""
    logits = model(x, y)
    return -F.binary_cross_entropy_with_logits(logits[:, t], x[:, t], reduction="none").sum(-1)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_memory_reach_matches_finite_differences(cell):
    H, W = 6, 5
    model = tiny(cell, hidden=8, height=H, width=W, num_classes=3, seed=1).double()
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(3, H, W, generator=gen) < 0.4).double()
    y = torch.tensor([0, 2, 1])
    M = units.memory_reach(model, x, y)
    assert M.shape == (H, H) and M.dtype == np.float64
    assert np.all(M[np.triu_indices(H)] == 0)  # on and above the diagonal: zero
    assert np.all(M[np.tril_indices(H, -1)] > 0)
    eps = 1e-6
    fd = np.zeros((len(x), H, H))
    with torch.no_grad():
        for s in range(H):
            for j in range(W):
                up, down = x.clone(), x.clone()
                up[:, s, j] += eps
                down[:, s, j] -= eps
                for t in range(s + 1, H):
                    d = (row_logp(model, up, y, t) - row_logp(model, down, y, t)) / (2 * eps)
                    fd[:, t, s] += d.numpy() ** 2
    np.testing.assert_allclose(M, np.sqrt(fd).mean(0), rtol=1e-5, atol=1e-8)


def independent_reach(model, x, labels):
    """The same matrix by autograd through the step-by-step cells (rnnviz.cells.unroll)."""
    H = model.config.height
    out = np.zeros((len(x), H, H))
    for t in range(1, H):
        xr = x.clone().requires_grad_(True)
        prev = model.shift_rows(xr)
        h = unroll(model.rnn, model.step_inputs(prev, labels))[-1]["h"]
        logits = model.head(torch.cat([h, prev], -1), x)  # the targets and the own row held fixed
        lp = -F.binary_cross_entropy_with_logits(logits[:, t], x[:, t], reduction="none").sum()
        (g,) = torch.autograd.grad(lp, xr)
        out[:, t, :t] = g[:, :t].norm(dim=-1).numpy()
    return out.mean(0)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_memory_reach_of_the_fused_module_equals_the_cells(data, cell):
    x, _ = data
    model = tiny(cell, layers=2, seed=2)
    M = units.memory_reach(model, x[:6], batch_size=4)  # y=None: each digit's most likely class; two batches
    np.testing.assert_allclose(M, independent_reach(model, x[:6], model_labels(model, x[:6])), rtol=1e-4, atol=1e-7)
    curve = units.reach_by_distance(M)
    assert curve.shape == (28,) and curve[0] == 0
    np.testing.assert_allclose(curve[3], np.mean([M[t, t - 3] for t in range(3, 28)]))
    bottom = units.reach_by_distance(M, range(20, 28))
    np.testing.assert_allclose(bottom[3], np.mean([M[t, t - 3] for t in range(20, 28)]))
    np.testing.assert_allclose(bottom[20], np.mean([M[t, t - 20] for t in range(20, 28)]))
    np.testing.assert_allclose(bottom[24], np.mean([M[t, t - 24] for t in range(24, 28)]))
    assert np.isnan(units.reach_by_distance(M, [5])[6])
    with pytest.raises(ValueError, match="targets"):
        units.reach_by_distance(M, [28])


def test_memory_reach_of_the_shipped_lstm_on_the_gallery(gallery):
    x, y = gallery
    model = load_checkpoint(ROOT / "checkpoints" / "mnist_lstm.safetensors")
    M = units.memory_reach(model, x[:4], y[:4])
    assert np.all(np.triu(M) == 0) and np.all(M[np.tril_indices(28, -1)] > 0)
    curve = units.reach_by_distance(M)
    assert curve[1] > curve[5] > 0  # the row above matters most
    halves = units.memory_reach(model, x[:2], y[:2]) + units.memory_reach(model, x[2:4], y[2:4])
    np.testing.assert_allclose(halves / 2, M, rtol=1e-5, atol=1e-9)  # the mean over images


def test_memory_reach_of_a_vae_holds_z_fixed(data):
    x, _ = data
    vae = tiny("gru", num_classes=0, latent=4)
    M = units.memory_reach(vae, x[:3])
    with torch.no_grad():
        mu = vae.encode(x[:3])[0]
    np.testing.assert_allclose(units.memory_reach(vae, x[:3], z=mu), M, rtol=1e-6)
    assert np.all(np.triu(M) == 0) and M[10, 3] > 0
    with pytest.raises(ValueError, match="reach"):
        units.reach_by_distance(M[:3])


# ---- timescales --------------------------------------------------------------------------------
def hold_gate(model, gate_rows: slice, unit: int, bias: float):
    """Zero the weights of one gate unit and set its bias, so the gate is sigmoid(bias) always."""
    U = model.config.hidden
    row = gate_rows.start * U + unit
    with torch.no_grad():
        for k in range(model.config.layers):
            getattr(model.rnn, f"weight_ih_l{k}")[row] = 0
            getattr(model.rnn, f"weight_hh_l{k}")[row] = 0
            getattr(model.rnn, f"bias_ih_l{k}")[row] = bias
            getattr(model.rnn, f"bias_hh_l{k}")[row] = 0


@pytest.mark.parametrize("cell,block", [("lstm", 1), ("gru", 1)])  # LSTM (i|f|g|o): f; GRU (r|z|n): z
def test_timescale_of_a_held_gate(data, cell, block):
    x, y = data
    model = tiny(cell, layers=2)
    hold_gate(model, slice(block, block + 1), 3, 2.5)
    hold_gate(model, slice(block, block + 1), 9, 40.0)  # sigmoid(40) == 1 in float32: never forgets
    for layer in (0, 1):
        tau = units.timescales(model, x, y, layer=layer)
        assert tau.shape == (16,) and tau.dtype == np.float64
        keep = 1 / (1 + np.exp(-2.5))
        np.testing.assert_allclose(tau[3], -1 / np.log(keep), rtol=1e-5)  # about 12.7 rows
        assert tau[9] == np.inf
        assert np.isfinite(np.delete(tau, 9)).all() and (np.delete(tau, 9) > 0).all()
    gate = "f" if cell == "lstm" else "z"
    f = np.stack([t.state(gate) for t in trace_images(model, x, y=y)])
    np.testing.assert_allclose(units.keep_factors(model, x, y), f.astype(np.float64).mean((0, 1)), rtol=1e-9)


def test_timescale_of_a_tanh_rnn_is_its_self_loop(data):
    x, y = data
    model = tiny("rnn")
    with torch.no_grad():  # unit 4 reads only itself with weight 0.5: h stays 0, the loop factor is 0.5
        model.rnn.weight_ih_l0[4] = 0
        model.rnn.weight_hh_l0[4] = 0
        model.rnn.weight_hh_l0[4, 4] = 0.5
        model.rnn.bias_ih_l0[4] = 0
        model.rnn.bias_hh_l0[4] = 0
    tau = units.timescales(model, x, y)
    np.testing.assert_allclose(tau[4], 1 / np.log(2), rtol=1e-6)
    h = np.stack([t.state("h") for t in trace_images(model, x, y=y)]).astype(np.float64)
    w = model.rnn.weight_hh_l0.detach().double().numpy().diagonal()
    np.testing.assert_allclose(units.keep_factors(model, x, y), np.abs((1 - h ** 2) * w).mean((0, 1)), rtol=1e-6)


def test_timescale_from_keep_handles_the_ends():
    tau = units.timescale_from_keep(np.array([0.0, np.exp(-1), np.exp(-0.1), 1.0, 1.2, -0.1]))
    np.testing.assert_allclose(tau, [0.0, 1.0, 10.0, np.inf, np.inf, 0.0])


# ---- y=None: each image's most likely class ----------------------------------------------------
def test_without_labels_the_most_likely_class_is_used(data):
    x, y = data
    model = tiny("lstm", seed=3)
    argmax = model_labels(model, x)
    assert not torch.equal(argmax, y)  # an untrained model's guess is not the truth: the check can fail
    np.testing.assert_array_equal(units.timescales(model, x), units.timescales(model, x, argmax))
    assert not np.array_equal(units.timescales(model, x), units.timescales(model, x, y))
    np.testing.assert_array_equal(units.unit_order(model, x), units.unit_order(model, x, argmax))
    p = units.unit_profile(model, x, 2)
    assert p.label_source == "model argmax p(x|y)"
    np.testing.assert_array_equal(p.labels, argmax.numpy())
    np.testing.assert_allclose(units.memory_reach(model, x[:4]), units.memory_reach(model, x[:4], argmax[:4]))
    with pytest.raises(ValueError, match="unconditional"):
        units.timescales(tiny("lstm", num_classes=0), x, y)
