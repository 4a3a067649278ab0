"""rnnviz.evaluate: the protocol's scores, per image and as a mixture (the command line: test_cli.py,
test_mixture.py)."""

import math

import pytest
import torch

from rnnviz import ModelConfig, RowModel
from rnnviz.data import binarize_fixed
from rnnviz.evaluate import evaluate, log_likelihoods, score_mixture
from rnnviz.mixture import Mixture


def _model(order, seed, cell="lstm"):
    torch.manual_seed(seed)
    return RowModel(ModelConfig(cell=cell, hidden=8, head_hidden=12, height=6, width=6, num_classes=3,
                                order=order)).eval()


def _images(n=37):
    return (torch.rand(n, 6, 6, generator=torch.Generator().manual_seed(1)) * 255).to(torch.uint8)


def test_per_image_scores_do_not_depend_on_the_batch_size():
    model, images = _model("cols", 0), _images()
    x = binarize_fixed(images, 4)
    a, b = log_likelihoods(model, x, batch_size=5), log_likelihoods(model, x, batch_size=100)
    assert a.dtype == torch.float64 and a.shape == (37,)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    torch.testing.assert_close(a, model.log_prob(x).double(), atol=1e-4, rtol=0)
    assert evaluate(model, images, seed=4, batch_size=7) == pytest.approx(-a.mean().item(), abs=1e-4)


def test_score_mixture_combines_each_part_scored_once():
    parts = [_model("rows", 0), _model("cols_bu", 1, "gru"), _model("rows_rl", 2, "rnn")]
    mix = Mixture(parts, ["a", "b", "c"])
    images = _images()
    r = score_mixture(mix, images, seed=9, batch_size=10)
    x = binarize_fixed(images, 9)
    per = torch.stack([p.log_prob(x).double() for p in parts], 1)
    nlls = (-per.mean(0)).tolist()
    assert r["test_nll"] == pytest.approx(-(torch.logsumexp(per, 1) - math.log(3)).mean().item(), abs=1e-3)
    assert r["test_nll"] == pytest.approx(-mix.log_prob(x).double().mean().item(), abs=1e-3)
    assert [p["test_nll"] for p in r["parts"]] == pytest.approx(nlls, abs=1e-3)
    assert [p["order"] for p in r["parts"]] == ["rows", "cols_bu", "rows_rl"]
    best = min(range(3), key=lambda k: nlls[k])
    assert r["best_part"] == "abc"[best]
    assert r["gain_over_best_part"] == pytest.approx(nlls[best] - r["test_nll"], abs=1e-3)
    assert r["gain_over_mean_of_parts"] == pytest.approx(sum(nlls) / 3 - r["test_nll"], abs=1e-3)
    assert r["gain_over_mean_of_parts"] > 0 and r["images"] == 37 and r["binarization_seed"] == 9
