"""The CNN encoder + recurrent decoder (a VAE): its bound, its sampling and its traces."""

import math

import numpy as np
import pytest
import torch

from rnnviz import ModelConfig, RowModel, load_checkpoint, save_checkpoint
from rnnviz.checkpoint import load_state
from rnnviz.trace import reconstruct_traces, trace_images
from rnnviz.train import TrainConfig, Trainer
from tests.conftest import FIXTURE


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
