"""Gate saturation and teacher forcing vs free running (rnnviz.analysis), their figures, and the
live saturation of a training run."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from rnnviz import ModelConfig, RowModel, trace_images
from rnnviz.analysis import GATES, class_posterior, forcing_comparison, gate_saturation, model_labels
from rnnviz.app.tabs import forcing, saturation
from rnnviz.cells import unroll
from rnnviz.data import binarize_fixed, load_dataset
from rnnviz.train import TrainConfig, Trainer
from tests import FIXTURE

H = 28


def tiny(cell="lstm", layers=1, num_classes=10, latent=0, sharpen=1.0, seed=0):
    """A tiny model; ``sharpen`` scales the recurrent weights so that gates saturate."""
    torch.manual_seed(seed)
    m = RowModel(ModelConfig(cell=cell, hidden=32, layers=layers, head_hidden=64, num_classes=num_classes,
                             latent=latent)).eval()
    with torch.no_grad():
        for name, p in m.rnn.named_parameters():
            p.mul_(sharpen)
    return m


@pytest.fixture(scope="module")
def data():
    ds = load_dataset(str(FIXTURE))
    return binarize_fixed(ds.test.images[:40], seed=0), ds.test.labels[:40]


# ---- gate saturation ---------------------------------------------------------------------------
def direct_counts(model, x, y, layer, low, high):
    """Count saturated (image, step) pairs straight from the unrolled gates, in NumPy."""
    with torch.no_grad():
        states = unroll(model.rnn, model.step_inputs(model.shift_rows(x), model.labels_for(y, len(x), "cpu")))[layer]
    out = {}
    for g in GATES[model.config.cell]:
        a = states[g].numpy()  # (B, T, hidden)
        out[g] = ((a < low).mean(axis=(0, 1)), (a > high).mean(axis=(0, 1)))
    return out


@pytest.mark.parametrize("cell,layer", [("lstm", -1), ("lstm", 0), ("gru", 1)])
def test_saturation_matches_a_direct_count(data, cell, layer):
    x, y = data
    model = tiny(cell, layers=2, sharpen=4.0)
    sat = gate_saturation(model, x, y, layer=layer, batch_size=16)  # several batches
    expect = direct_counts(model, x, y, layer, 0.1, 0.9)
    assert sat["gates"] == GATES[cell] and sat["cell"] == cell and sat["layer"] == layer % 2
    assert sat["images"] == len(x) and sat["steps"] == H and sat["units"] == 32 and sat["labels"] == "given"
    saturated = 0.0
    for g in GATES[cell]:
        lo, hi = sat["low"][g], sat["high"][g]
        assert lo.shape == hi.shape == (32,)
        np.testing.assert_allclose(lo, expect[g][0], atol=1e-12)
        np.testing.assert_allclose(hi, expect[g][1], atol=1e-12)
        assert ((lo >= 0) & (lo <= 1) & (hi >= 0) & (hi <= 1)).all() and (lo + hi <= 1 + 1e-12).all()
        saturated += lo.sum() + hi.sum()
    assert saturated > 1  # the sharpened gates do saturate: the comparison is not 0 == 0


def test_saturation_thresholds_are_used(data):
    x, y = data
    model = tiny("lstm")
    wide = gate_saturation(model, x, y, low=0.45, high=0.55)
    expect = direct_counts(model, x, y, -1, 0.45, 0.55)
    np.testing.assert_allclose(wide["low"]["f"], expect["f"][0])
    assert wide["low_threshold"] == 0.45 and wide["high_threshold"] == 0.55
    assert wide["low"]["f"].sum() > gate_saturation(model, x, y)["low"]["f"].sum()


def test_rnn_has_no_gates(data):
    sat = gate_saturation(tiny("rnn"), *data)
    assert sat["gates"] == () and sat["low"] == {} and sat["high"] == {} and "no gates" in sat["message"]
    fig = saturation.saturation_figure(sat)
    assert fig["data"] == [] and "no gates" in fig["layout"]["annotations"][0]["text"]


def test_every_class_is_scored_in_one_place(data):
    """log p(x | y) per class (RowModel.class_log_likelihoods) is what the marginal, the argmax
    class and the posterior of the first rows (Complete's *auto* digit) are read from."""
    x, _ = data
    model = tiny("lstm")
    ll = model.class_log_likelihoods(x[:4])
    per_class = torch.stack([-model.nll(x[:4], torch.full((4,), c), reduce=False) for c in range(10)], 1)
    torch.testing.assert_close(ll, per_class)
    torch.testing.assert_close(model.log_prob(x[:4]), torch.logsumexp(per_class, 1) - math.log(10))
    assert torch.equal(model_labels(model, x[:4]), per_class.argmax(1))
    # the first k rows: the trace's row NLLs under each class, summed over the kept rows
    image = x[0].numpy()
    traces = trace_images(model, np.repeat(image[None], 10, 0), y=np.arange(10))
    for k in (1, 14, 28):
        ll_k = -np.array([tr.row_nll[:k].sum() for tr in traces], np.float64)
        expected = np.exp(ll_k - ll_k.max()) / np.exp(ll_k - ll_k.max()).sum()
        post = class_posterior(model, image, k)
        np.testing.assert_allclose(post, expected, atol=1e-5)
        assert post.shape == (10,) and abs(post.sum() - 1) < 1e-9
    with pytest.raises(ValueError, match="unconditional"):
        tiny("gru", num_classes=0, latent=4).class_log_likelihoods(x[:2])


def test_what_the_images_are_read_with(data):
    x, y = data
    model = tiny("lstm")
    guessed = gate_saturation(model, x[:8])  # no labels: the model's own argmax p(x | y)
    assert guessed["labels"] == "model argmax p(x|y)"
    argmax = model_labels(model, x[:8])
    assert torch.equal(argmax, (-torch.stack([model.nll(x[:8], torch.full((8,), c), reduce=False)
                                              for c in range(10)], 1)).argmax(1))
    np.testing.assert_array_equal(guessed["low"]["i"], gate_saturation(model, x[:8], argmax)["low"]["i"])

    vae = tiny("gru", num_classes=0, latent=4, sharpen=4.0)
    sat = gate_saturation(vae, x[:8])  # z = mean of q(z | x)
    with torch.no_grad():
        mu = vae.encode(x[:8])[0]
    same = gate_saturation(vae, x[:8], z=mu)
    other = gate_saturation(vae, x[:8], z=mu + 3.0)
    assert sat["labels"] is None
    np.testing.assert_array_equal(sat["high"]["z"], same["high"]["z"])
    assert not np.array_equal(sat["high"]["z"], other["high"]["z"])


def test_bad_saturation_arguments_are_rejected(data):
    x, y = data
    model = tiny("lstm")
    with pytest.raises(ValueError, match="low < high"):
        gate_saturation(model, x, y, low=0.9, high=0.1)
    with pytest.raises(ValueError, match="binary"):
        gate_saturation(model, x * 0.5, y)
    with pytest.raises(ValueError, match="layer"):
        gate_saturation(model, x, y, layer=1)
    with pytest.raises(ValueError, match="unconditional"):
        gate_saturation(tiny("lstm", num_classes=0), x, y)


def test_saturation_figure_has_a_panel_per_gate_with_unit_hover(data):
    sat = gate_saturation(tiny("lstm", sharpen=4.0), *data)
    fig = saturation.saturation_figure(sat)
    go.Figure(fig)  # validates every attribute
    assert [t["name"] for t in fig["data"]] == ["i", "f", "o"]
    for t, g in zip(fig["data"], "ifo"):
        assert t["type"] == "scatter" and t["customdata"] == list(range(32))
        np.testing.assert_allclose(t["x"], sat["low"][g], atol=1e-4)
        np.testing.assert_allclose(t["y"], sat["high"][g], atol=1e-4)
        assert "unit %{customdata}" in t["hovertemplate"]
    diagonals = [s for s in fig["layout"]["shapes"] if (s["x0"], s["y0"], s["x1"], s["y1"]) == (0, 1, 1, 0)]
    assert len(diagonals) == 3  # the triangle x + y <= 1 in every panel
    titles = [a["text"] for a in fig["layout"]["annotations"]]
    assert [t.split("</b>")[0] for t in titles[:3]] == ["<b>i", "<b>f", "<b>o"]  # a title per gate's panel
    assert saturation.saturation_figure(None)["data"] == []
    # the Train tab's live figure says what it is itself: a shown label floats over the panel titles
    live = saturation.saturation_figure(sat, saturation.LIVE_HEADING)
    assert live["layout"]["annotations"][-1]["text"].startswith(saturation.LIVE_HEADING)
    assert saturation.render_live().show_label is False


# ---- teacher forcing vs free running -----------------------------------------------------------
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_forcing_comparison(data, cell):
    x, y = data
    model = tiny(cell, layers=2)
    cmp = forcing_comparison(model, x[0], y=int(y[0]), seed=3)
    (read,) = trace_images(model, x[0], y=int(y[0]))
    np.testing.assert_array_equal(cmp.true_image, x[0].numpy().astype(np.uint8))
    np.testing.assert_array_equal(cmp.forced_probs, read.probs)  # teacher forced = trace_images
    np.testing.assert_array_equal(cmp.forced_row_nll, read.row_nll)
    assert cmp.free.label == cmp.forced.label == int(y[0]) and cmp.labels == "given"

    differs = (cmp.free.image != cmp.true_image).any(1)
    first = int(np.argmax(differs))
    assert differs.any() and cmp.first_diff_row == first  # an untrained model soon draws its own rows
    np.testing.assert_array_equal(cmp.row_mismatch, (cmp.free.image != cmp.true_image).sum(1))
    assert cmp.h_distance.shape == (2, H)
    # step t has read rows < t: the states agree up to and including the first differing row ...
    assert np.all(cmp.h_distance[:, :first + 1] < 1e-6)
    # ... and part right after it
    assert np.all(cmp.h_distance[:, first + 1] > 1e-4)
    if cell == "lstm":
        assert cmp.c_distance.shape == (2, H) and np.all(cmp.c_distance[:, :first + 1] < 1e-6)
    else:
        assert cmp.c_distance is None
    again = forcing_comparison(model, x[0], y=int(y[0]), seed=3)
    np.testing.assert_array_equal(again.free.image, cmp.free.image)  # same seed, same run


def test_free_running_after_all_true_rows_is_teacher_forcing(data):
    x, y = data
    model = tiny("lstm")
    cmp = forcing_comparison(model, x[1], y=int(y[1]), seed=0, keep_rows=H)
    np.testing.assert_array_equal(cmp.free.image, cmp.true_image)
    np.testing.assert_allclose(cmp.free_probs, cmp.forced_probs, atol=1e-6)
    np.testing.assert_allclose(cmp.free_row_nll, cmp.forced_row_nll, atol=1e-4)
    assert cmp.first_diff_row is None and not cmp.row_mismatch.any()
    assert np.all(cmp.h_distance < 1e-6) and np.all(cmp.c_distance < 1e-6)


def test_keep_rows_hold_the_runs_together(data):
    x, y = data
    model = tiny("gru")
    cmp = forcing_comparison(model, x[2], y=int(y[2]), seed=1, keep_rows=10)
    np.testing.assert_array_equal(cmp.free.image[:10], cmp.true_image[:10])
    assert cmp.first_diff_row is not None and cmp.first_diff_row >= 10
    assert np.all(cmp.h_distance[0, :cmp.first_diff_row + 1] < 1e-6)


def test_forcing_comparison_vae_uses_one_z_and_rejects_bad_input(data):
    x, _ = data
    vae = tiny("lstm", num_classes=0, latent=4)
    cmp = forcing_comparison(vae, x[0], seed=2)
    with torch.no_grad():
        mu = vae.encode(x[0])[0][0].numpy()
    np.testing.assert_allclose(cmp.forced.latent, mu, atol=1e-6)
    np.testing.assert_array_equal(cmp.free.latent, cmp.forced.latent)
    assert cmp.labels is None
    with pytest.raises(ValueError, match="keep_rows"):
        forcing_comparison(vae, x[0], keep_rows=H + 1)
    with pytest.raises(ValueError, match="one image"):
        forcing_comparison(vae, x[:2])


def test_forcing_figure(data):
    x, y = data
    cmp = forcing_comparison(tiny("lstm"), x[0], y=int(y[0]), seed=3, keep_rows=4)
    fig = forcing.forcing_figure(cmp)
    go.Figure(fig)
    heatmaps = [t for t in fig["data"] if t["type"] == "heatmap"]
    lines = [t for t in fig["data"] if t["type"] == "scatter"]
    assert len(heatmaps) == 4 and len(lines) == 2  # h and c distance
    np.testing.assert_allclose(lines[0]["y"], cmp.h_distance[-1], atol=1e-4)
    texts = " ".join(a["text"] for a in fig["layout"]["annotations"])
    assert f"first differing row: {cmp.first_diff_row}" in texts
    same = forcing_comparison(tiny("gru"), x[0], y=int(y[0]), keep_rows=H)
    fig = forcing.forcing_figure(same)
    go.Figure(fig)
    assert "drew the true image" in " ".join(a["text"] for a in fig["layout"]["annotations"])


# ---- live saturation during training -----------------------------------------------------------
def test_trainer_exposes_gate_saturation(tmp_path):
    ds = load_dataset(str(FIXTURE))
    mc = ModelConfig(hidden=32, head_hidden=64)
    tc = TrainConfig(dataset=str(FIXTURE), batch_size=16, max_steps=6, warmup_steps=2, eval_every_s=1e9,
                     final_eval=False, snapshot_every_s=1e9, snapshot_count=2, checkpoint_every_min=1e9)
    tr = Trainer(mc, tc, dataset=ds)
    assert tr.snapshot()["saturation"] is None  # before the first snapshot
    tr.run()
    sat = tr.snapshot()["saturation"]
    assert sat is not None and sat["gates"] == ("i", "f", "o") and sat["images"] == min(200, len(ds.test))
    for g in sat["gates"]:
        assert sat["low"][g].shape == (32,) and (sat["low"][g] + sat["high"][g] <= 1).all()
    # the last snapshot is of the final weights, on the first test images binarized with eval_seed
    x = binarize_fixed(ds.test.images[:sat["images"]], tc.eval_seed)
    expect = gate_saturation(tr.published_model(), x, ds.test.labels[:sat["images"]])
    for g in sat["gates"]:
        np.testing.assert_allclose(sat["low"][g], expect["low"][g])
        np.testing.assert_allclose(sat["high"][g], expect["high"][g])
    sat["low"]["i"][:] = 7  # a reader's copy: changing it changes nothing in the trainer
    assert tr.snapshot()["saturation"]["low"]["i"].max() <= 1

    off = Trainer(mc, TrainConfig(**{**tc.__dict__, "saturation_images": 0, "max_steps": 2}), dataset=ds)
    off.run()
    assert off.snapshot()["saturation"] is None
