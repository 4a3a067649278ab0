"""The model (rnnviz.model): exact normalization, masking, sampling determinism, the fast sampler
against a plain loop, scan orders, and the VAE (a CNN encoder and the recurrent decoder): its bound
against an exact likelihood, its sampling and its traces."""

import itertools
import math

import numpy as np
import pytest
import torch

from rnnviz import ModelConfig, RowModel, load_checkpoint, save_checkpoint
from rnnviz.checkpoint import load_state
from rnnviz.trace import reconstruct_traces, trace_images
from rnnviz.train import TrainConfig, Trainer
from tests import FIXTURE


def test_probabilities_sum_to_one_over_all_images():
    """Exact normalization: summing p(x) over every binary 2x4 image gives 1 (a masking bug or a
    pixel that sees itself breaks this)."""
    torch.manual_seed(0)
    for cell in ("lstm", "gru", "rnn"):
        model = RowModel(ModelConfig(cell=cell, hidden=16, layers=2, height=2, width=4, head_hidden=12)).eval()
        images = torch.tensor(list(itertools.product([0.0, 1.0], repeat=8))).view(-1, 2, 4)
        total = model.log_prob(images).exp().sum().item()  # marginal over classes
        assert abs(total - 1.0) < 1e-4, (cell, total)
        total_y = model.log_prob(images, y=3).exp().sum().item()
        assert abs(total_y - 1.0) < 1e-4


def test_pixel_sees_only_earlier_pixels():
    torch.manual_seed(0)
    model = RowModel(ModelConfig(hidden=16, head_hidden=64)).eval()
    x = (torch.rand(1, 28, 28) < 0.5).float().requires_grad_(True)
    logits = model(x, y=1)
    t, j = 10, 13
    (grad,) = torch.autograd.grad(logits[0, t, j], x)
    g = grad[0].abs()
    assert g[t, j:].sum() == 0 and g[t + 1:].sum() == 0  # nothing at or after (t, j)
    assert g[t, :j].sum() > 0 and g[:t].sum() > 0


def test_marginal_is_logsumexp_of_conditionals():
    torch.manual_seed(0)
    model = RowModel(ModelConfig(hidden=16, head_hidden=32)).eval()
    x = (torch.rand(4, 28, 28) < 0.2).float()
    cond = torch.stack([model.log_prob(x, y=k) for k in range(10)], dim=1)
    expected = torch.logsumexp(cond, 1) - math.log(10)
    torch.testing.assert_close(model.log_prob(x), expected)
    assert (model.log_prob(x) < cond.max(1).values).all()


def test_sampling_is_deterministic_per_seed():
    torch.manual_seed(0)
    model = RowModel(ModelConfig(hidden=24, head_hidden=32)).eval()
    a = model.sample(3, y=None, seed=11)
    b = model.sample(3, y=None, seed=11)
    c = model.sample(3, y=None, seed=12)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.images, c.images)
    assert set(a.images.unique().tolist()) <= {0.0, 1.0}


def test_head_sampler_matches_teacher_forced_head():
    torch.manual_seed(0)
    model = RowModel(ModelConfig(hidden=24, head_hidden=50)).eval()
    s = model.sample(4, y=[0, 1, 2, 3], seed=5)
    torch.testing.assert_close(torch.sigmoid(model(s.images, s.labels)), s.probs, atol=1e-5, rtol=0)


def test_temperature_zero_is_greedy_and_temperature_is_validated():
    model = RowModel(ModelConfig(hidden=16, head_hidden=32)).eval()
    s = model.sample(2, y=4, temperature=0.0, seed=1)
    s2 = model.sample(2, y=4, temperature=0.0, seed=2)
    assert torch.equal(s.images[0], s.images[1]) and torch.equal(s.images, s2.images)
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            model.sample(1, y=1, temperature=bad)


def test_completion_keeps_rows():
    torch.manual_seed(0)
    model = RowModel(ModelConfig(hidden=16, head_hidden=32)).eval()
    given = (torch.rand(28, 28) < 0.5).float()
    s = model.sample(3, y=2, seed=0, prefix=given, keep_rows=14)
    for k in range(3):
        assert torch.equal(s.images[k, :14], given[:14])
    with pytest.raises(ValueError):
        model.sample(1, y=2, keep_rows=5)  # no prefix
    with pytest.raises(ValueError):
        model.sample(1, y=2, prefix=given, keep_rows=29)


def test_unconditional_model_and_label_checks():
    model = RowModel(ModelConfig(hidden=16, head_hidden=32, num_classes=0)).eval()
    s = model.sample(2, seed=0)
    assert s.labels is None
    assert model.log_prob(s.images).shape == (2,)
    cond = RowModel(ModelConfig(hidden=16, head_hidden=32)).eval()
    with pytest.raises(ValueError):
        cond.sample(1, y=10)
    with pytest.raises(ValueError):
        cond.nll(s.images)  # conditional model needs labels for nll


@pytest.mark.parametrize("bad", [dict(cell="lstmx"), dict(hidden=0), dict(layers=1.5), dict(num_classes=-1)])
def test_config_validation(bad):
    with pytest.raises(ValueError):
        ModelConfig(**bad)
    assert ModelConfig.from_dict(ModelConfig().to_dict()) == ModelConfig()


@pytest.mark.parametrize("temperature", [1.0, 0.6, 0.0])
def test_fast_row_sampler_equals_pixel_by_pixel_reference(temperature):
    """The fixed-point row sampler draws exactly what a plain pixel-by-pixel loop draws from the
    same uniforms (the loop evaluates the head once per pixel on the true prefix)."""
    torch.manual_seed(0)
    model = RowModel(ModelConfig(hidden=24, head_hidden=56)).eval()
    ctx = torch.randn(16, 24 + 28) * 3
    uniforms = torch.rand(16, 28)
    row, probs = model.head.sample(ctx, uniforms, temperature)
    ref_row = torch.zeros(16, 28)
    with torch.no_grad():
        for j in range(28):
            logit = model.head(ctx, ref_row)[:, j]
            p = torch.sigmoid(logit / temperature) if temperature > 0 else (logit > 0).float()
            torch.testing.assert_close(probs[:, j], p, atol=1e-6, rtol=0)
            ref_row[:, j] = (uniforms[:, j] < p).float()
    assert torch.equal(row, ref_row)


@pytest.mark.parametrize("cell,layers", [("lstm", 1), ("lstm", 2), ("gru", 2), ("rnn", 1)])
def test_widened_model_computes_the_same_function_and_its_new_units_learn(cell, layers):
    torch.manual_seed(0)
    model = RowModel(ModelConfig(cell=cell, hidden=16, layers=layers, head_hidden=40)).eval()
    with torch.no_grad():  # trained-looking weights, not the init's small ones
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    grown = model.widened(hidden=24, head_hidden=64).eval()
    assert (grown.config.hidden, grown.config.head_hidden) == (24, 64)
    x = (torch.rand(6, 28, 28) > 0.5).float()
    y = torch.arange(6)
    torch.testing.assert_close(grown.nll(x, y, reduce=False), model.nll(x, y, reduce=False), atol=1e-4, rtol=0)
    # the new units are silent, not dead: their outgoing weights get gradient
    grown.train()
    grown.nll(x, y).backward()
    assert grown.head.hid_to_out.grad[:, 40:].abs().sum() > 0
    assert grown.head.ctx_to_hid.weight.grad[:, 16:24].abs().sum() > 0
    assert grown.rnn.weight_hh_l0.grad[:16, 16:].abs().sum() > 0  # old units hearing new ones
    # a wrongly placed copy (the head's row-above columns left where they were) changes the function
    broken = model.widened(hidden=24)
    with torch.no_grad():
        broken.head.ctx_to_out.weight[:, 16:44] = model.head.ctx_to_out.weight[:, 16:44]
    assert (broken.eval().nll(x, y, reduce=False) - model.nll(x, y, reduce=False)).abs().max() > 1e-2
    with pytest.raises(ValueError, match="only widen"):
        model.widened(hidden=8)


def test_dropout_acts_in_training_only_and_drops_both_the_recurrent_output_and_head_units():
    torch.manual_seed(0)
    model = RowModel(ModelConfig(hidden=16, head_hidden=40))
    x = (torch.rand(4, 28, 28) > 0.5).float()
    y = torch.arange(4)
    plain = model.eval().nll(x, y, reduce=False)
    model.dropout = 0.5
    torch.testing.assert_close(model.nll(x, y, reduce=False), plain, atol=0, rtol=0)  # eval: no effect
    model.train()
    assert (model.nll(x, y, reduce=False) - plain).abs().max() > 1e-2
    seen = {}
    model.head.register_forward_pre_hook(lambda m, args, kw: seen.update(ctx=args[0], p=kw.get("dropout")),
                                         with_kwargs=True)
    model.nll(x, y)
    recurrent = seen["ctx"][..., :16]
    zero = (recurrent == 0).float().mean().item()
    assert 0.3 < zero < 0.7 and seen["p"] == 0.5  # about half the recurrent output dropped, head told
    hid_in = torch.rand(2000, 40) + 1  # no zeros of its own
    read_out = (torch.zeros(40, 28), torch.eye(28, 40), torch.zeros(28, 28))  # logit j = hidden unit j
    kept = model.head.logits((hid_in, torch.zeros(28)), torch.zeros(2000, 28), read_out, dropout=0.5)
    assert 0.3 < (kept == 0).float().mean().item() < 0.7  # the head's hidden units are dropped too
    model.dropout = 0.0
    torch.testing.assert_close(model.nll(x, y, reduce=False), plain, atol=1e-5, rtol=0)


def test_dropout_of_a_stacked_model_also_drops_between_its_layers_in_training_only():
    torch.manual_seed(0)
    model = RowModel(ModelConfig(hidden=16, layers=2, head_hidden=40))
    inputs = torch.rand(3, 28, model.config.input_size)
    model.dropout = 0.5
    assert model.rnn.dropout == 0.5 and RowModel(ModelConfig(hidden=16)).rnn.dropout == 0.0
    model.eval()
    plain, _ = model.rnn(inputs)
    torch.testing.assert_close(model.rnn(inputs)[0], plain, atol=0, rtol=0)
    model.train()
    assert (model.rnn(inputs)[0] - plain).abs().max() > 1e-3  # what reaches the second layer is dropped
    model.dropout = 0.0
    assert model.rnn.dropout == 0.0
    torch.testing.assert_close(model.rnn(inputs)[0], plain, atol=1e-6, rtol=0)


# ---- scan orders ------------------------------------------------------------------------------------
def _ordered(order: str, cell: str = "lstm", size: int = 3, classes: int = 2, seed: int = 0) -> RowModel:
    torch.manual_seed(seed)
    model = RowModel(ModelConfig(cell=cell, hidden=8, head_hidden=9, num_classes=classes, height=size, width=size,
                                 order=order)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model


def test_orders_are_the_eight_symmetries_of_the_square():
    from rnnviz.model import ORDERS, from_order, to_order

    x = torch.arange(16.0).view(1, 4, 4)
    seen = set()
    for order in ORDERS:
        lines = to_order(x, order)
        torch.testing.assert_close(from_order(lines, order), x)
        seen.add(tuple(lines.flatten().tolist()))
    assert len(seen) == 8
    assert to_order(x, "cols")[0, 0].tolist() == [0.0, 4.0, 8.0, 12.0]  # the first line is the left column
    assert to_order(x, "rows_bu_rl")[0, 0].tolist() == [15.0, 14.0, 13.0, 12.0]  # bottom row, right to left
    assert to_order(x, "cols_rl_bu")[0, 0].tolist() == [15.0, 11.0, 7.0, 3.0]  # right column, bottom-up
    with pytest.raises(ValueError, match="order"):
        ModelConfig(order="diagonal")
    with pytest.raises(ValueError, match="square"):
        ModelConfig(order="cols", height=4, width=5)
    assert ModelConfig.from_dict({"cell": "lstm"}).order == "rows"  # an old checkpoint's config


@pytest.mark.parametrize("order", ["rows", "rows_rl", "rows_bu", "rows_bu_rl", "cols", "cols_bu", "cols_rl",
                                   "cols_rl_bu"])
def test_every_order_is_an_exact_distribution(order):
    """p(x | y) over all 512 binary 3x3 images sums to 1 for every class and every order, and the
    model of an order is the rows model with the same weights reading the image's lines."""
    import itertools

    model = _ordered(order, cell="gru" if "bu" in order else "lstm")
    rows = RowModel(ModelConfig(**{**model.config.to_dict(), "order": "rows"})).eval()
    rows.load_state_dict(model.state_dict())
    x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9))).view(512, 3, 3)
    ll = model.class_log_likelihoods(x).double()
    torch.testing.assert_close(ll.exp().sum(0), torch.ones(2, dtype=torch.float64), atol=1e-5, rtol=0)
    torch.testing.assert_close(model.class_log_likelihoods(x), rows.class_log_likelihoods(model.to_order(x)))
    y = torch.randint(2, (512,), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(model(x, y), model.from_order(rows(model.to_order(x), y)))
    # The first line of the order alone: the marginal of a prefix sums to 1 over that line's 8 values.
    first = model.class_log_likelihoods(x, rows=1).double()
    assert abs(first[:, 0].exp().sum().item() - 2 ** 6) < 1e-3  # each line value repeats 2^6 times
    if order != "rows":
        assert not torch.allclose(ll, rows.class_log_likelihoods(x).double())  # the order matters


@pytest.mark.parametrize("order", ["cols", "rows_bu_rl"])
def test_sample_writes_lines_of_its_order(order):
    model = _ordered(order, size=5, classes=3)
    s = model.sample(4, y=[0, 1, 2, 0], seed=3, temperature=1.0)
    rows = RowModel(ModelConfig(**{**model.config.to_dict(), "order": "rows"})).eval()
    rows.load_state_dict(model.state_dict())
    r = rows.sample(4, y=[0, 1, 2, 0], seed=3, temperature=1.0)
    torch.testing.assert_close(model.to_order(s.images), r.images)  # the same draws, written as lines
    torch.testing.assert_close(model.to_order(s.probs), r.probs)
    for name in s.states[0]:
        torch.testing.assert_close(s.states[0][name], r.states[0][name])
    prefix = (torch.rand(5, 5, generator=torch.Generator().manual_seed(2)) < 0.5).float()
    kept = model.sample(2, y=1, seed=1, prefix=prefix, keep_rows=2)
    torch.testing.assert_close(model.to_order(kept.images)[:, :2], model.to_order(prefix)[:2].expand(2, -1, -1))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_every_weight_perturbed_the_model_is_still_an_exact_distribution(cell):
    """Every parameter moved by random noise (a trained model's masked weights could all be exactly 0,
    e.g. the head's direct pixel links start at zero, and would hide a mask that lets a pixel see
    itself): p(x | y) for each class and the marginal p(x) of a conditional model, and p(x) of an
    unconditional one, each sum to 1 within 1e-5 over all 512 binary 3x3 images, in every scan order."""
    from rnnviz.model import ORDERS

    x = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9))).view(512, 3, 3)
    for order in ORDERS:
        for classes in (2, 0):
            torch.manual_seed(len(order) + classes)
            model = RowModel(ModelConfig(cell=cell, hidden=6, layers=2, head_hidden=7, num_classes=classes,
                                         height=3, width=3, order=order)).eval()
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(torch.randn_like(p))
            assert model.head.pix_to_out.abs().min() > 0  # the direct links are not zero any more
            totals = model.log_prob(x).double().exp().sum().reshape(1)
            if classes:
                totals = torch.cat([totals, model.class_log_likelihoods(x).double().exp().sum(0)])
            torch.testing.assert_close(totals, torch.ones_like(totals), atol=1e-5, rtol=0,
                                       msg=lambda m: f"{cell} {order} classes={classes}: {m}")


# ---- the VAE: a CNN encoder and the recurrent decoder (its bound, its sampling, its traces) ------
def vae(latent=8, **kw):
    torch.manual_seed(0)
    return RowModel(ModelConfig(hidden=32, head_hidden=64, num_classes=0, latent=latent, **kw)).eval()


def binary(n=3, seed=0):
    return (torch.rand(n, 28, 28, generator=torch.Generator().manual_seed(seed)) < 0.2).float()


def test_config_rules():
    with pytest.raises(ValueError, match="unconditional"):
        ModelConfig(latent=8)  # num_classes defaults to 10
    assert ModelConfig(num_classes=0, latent=8).input_size == 28 + 28 + 8
    with pytest.raises(ValueError, match="latent"):
        ModelConfig(num_classes=0, latent=-1)


def test_decoder_needs_z_and_other_models_refuse_it():
    m = vae()
    with pytest.raises(ValueError, match="give z"):
        m.nll(binary())
    with pytest.raises(ValueError, match="no latent"):
        RowModel(ModelConfig(hidden=16, head_hidden=32)).nll(binary(), y=1, z=torch.zeros(3, 8))
    with pytest.raises(ValueError, match="finite"):
        m.sample(1, z=torch.full((1, 8), float("nan")))


def test_importance_weighted_bound_approaches_the_true_likelihood():
    """With a 1-d latent, log p(x) = log integral p(x | z) p(z) dz is computed on a grid; the
    importance-weighted bound must stay below it and close the gap as K grows."""
    torch.manual_seed(0)
    m = vae(latent=1)
    with torch.no_grad():  # make the decoder depend strongly on z, so the bound has a gap to close
        m.rnn.weight_ih_l0[:, -1] *= 10
    x = binary(2, seed=1)
    zs = torch.linspace(-7, 7, 1401)
    dz = float(zs[1] - zs[0])
    with torch.no_grad():  # every (z, image) pair in one batch
        log_px_z = -m.nll(x.repeat(len(zs), 1, 1), z=zs.repeat_interleave(2)[:, None], reduce=False).view(-1, 2)
    log_prior = -0.5 * zs ** 2 - 0.5 * math.log(2 * math.pi)
    exact = torch.logsumexp(log_px_z + log_prior[:, None], dim=0) + math.log(dz)
    elbo = m.log_prob(x, samples=1, seed=0)
    iw = m.log_prob(x, samples=200, seed=0)
    # a bound in expectation: one estimate may overshoot by its noise, which is small at K=200
    assert (iw <= exact + 0.05).all(), (exact, iw)
    assert (exact - iw).mean() < (exact - elbo).mean()
    assert (exact - iw).max() < 0.5, (exact, iw, elbo)


def test_sampling_is_seeded_and_a_given_z_keeps_the_pixel_noise():
    m = vae()
    a, b = m.sample(2, seed=5), m.sample(2, seed=5)
    assert torch.equal(a.images, b.images) and torch.equal(a.latents, b.latents)
    again = m.sample(2, seed=5, z=a.latents)  # the prior's draw, given back: the very same images
    assert torch.equal(again.images, a.images)


def test_reconstruction_trace_is_what_made_its_image():
    m = vae()
    x = binary(1)
    (t,) = reconstruct_traces(m, x[0], seed=3)
    mu, _ = m.encode(x)
    np.testing.assert_allclose(t.latent, mu[0].detach().numpy(), atol=1e-6)
    assert t.meta["kind"] == "reconstruction" and (t.meta["source"] == x[0].numpy()).all()
    (again,) = trace_images(m, t.image, z=torch.as_tensor(t.latent)[None])
    for name in ("i", "f", "g", "o", "c", "h"):
        np.testing.assert_allclose(again.layers[0][name], t.layers[0][name], atol=1e-5)
    np.testing.assert_allclose(again.row_nll, t.row_nll, atol=1e-4)


def test_free_bits_floor_the_kl_of_the_objective_only():
    m = vae().train()
    x = binary(8)
    torch.manual_seed(1)
    objective, reported = m.loss(x, free_bits=5.0)  # a fresh encoder's KL is far below 5 nats/dim
    assert objective > reported
    objective.backward()
    assert m.encoder.fc[-1].weight.grad.abs().sum() > 0  # the reconstruction term still trains q


def test_checkpoint_round_trip_and_short_training(tmp_path):
    out = tmp_path / "vae.safetensors"
    mc = ModelConfig(hidden=16, head_hidden=32, num_classes=0, latent=4)
    tc = TrainConfig(dataset=str(FIXTURE), minutes=1.0, max_steps=5, out=str(out), eval_every_s=1e9,
                     eval_images=20, iw_samples=3, free_bits=0.5, snapshot_every_s=1e9)
    metrics = Trainer(mc, tc).run()
    assert "K=3" in metrics["test_nll_protocol"] and math.isfinite(metrics["test_nll"])
    m, meta = load_state(out)
    assert m.config == mc and "K=3" in meta["metrics"]["test_nll_protocol"]
    assert m.sample(2, seed=0).images.shape == (2, 28, 28)
    path = tmp_path / "again.safetensors"
    save_checkpoint(path, m, meta["metrics"])
    assert torch.equal(load_checkpoint(path).encoder.fc[-1].weight, m.encoder.fc[-1].weight)
