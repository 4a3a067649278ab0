"""The exact mixture (rnnviz.mixture): probabilities that sum to 1, its file, its command line."""

import itertools
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from rnnviz import ModelConfig, RowModel, save_checkpoint
from rnnviz.checkpoint import CheckpointError, load_checkpoint, read_header
from rnnviz.mixture import (
    PART_STREAM,
    Mixture,
    combine,
    is_mixture_file,
    load_mixture,
    mixture_of_checkpoints,
    read_mixture_metadata,
    save_mixture,
)
from tests import FIXTURE, ROOT

ALL_3X3 = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9))).view(512, 3, 3)


def tiny(order: str, seed: int, cell: str = "lstm", classes: int = 3, size: int = 3) -> RowModel:
    """A random model with weights large enough that its probabilities are far from uniform."""
    torch.manual_seed(seed)
    model = RowModel(ModelConfig(cell=cell, hidden=8, head_hidden=9, num_classes=classes, height=size,
                                 width=size, order=order))
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    return model.eval()


def test_every_part_and_the_mixture_sum_to_one_over_all_3x3_images():
    parts = [tiny("rows", 0), tiny("cols_rl_bu", 1, "gru"), tiny("rows_bu_rl", 2), tiny("cols", 3, "rnn")]
    mix = Mixture(parts)
    per_part = mix.part_log_probs(ALL_3X3).double()  # (512, K)
    assert per_part.shape == (512, 4)
    for k in range(4):
        assert abs(per_part[:, k].exp().sum().item() - 1.0) < 1e-5
    lp = mix.log_prob(ALL_3X3).double()
    assert abs(lp.exp().sum().item() - 1.0) < 1e-5
    expected = torch.logsumexp(per_part, 1) - math.log(4)
    torch.testing.assert_close(lp, expected, atol=1e-5, rtol=0)
    # The parts really differ (else the test would not tell a mixture from one part).
    assert (per_part[:, 0] - per_part[:, 1]).abs().max() > 0.5
    # The mixture is class-conditional with the same uniform prior: p(x) = (1/C) sum_y p(x | y).
    cl = mix.class_log_likelihoods(ALL_3X3).double()
    torch.testing.assert_close(torch.logsumexp(cl, 1) - math.log(3), lp, atol=1e-5, rtol=0)
    for y in range(3):
        assert abs(cl[:, y].exp().sum().item() - 1.0) < 1e-5
    post = mix.part_posterior(ALL_3X3)
    torch.testing.assert_close(post.sum(1), torch.ones(512), atol=1e-5, rtol=0)


def test_unconditional_mixture_sums_to_one():
    mix = Mixture([tiny("rows", 5, classes=0), tiny("cols_bu", 6, classes=0)])
    assert abs(mix.log_prob(ALL_3X3).double().exp().sum().item() - 1.0) < 1e-5
    with pytest.raises(ValueError, match="unconditional"):
        mix.class_log_likelihoods(ALL_3X3)


def test_combine_is_the_equal_weight_mixture():
    lp = torch.tensor([[-1.0, -3.0], [-2.0, -2.0]])
    expected = torch.log((lp.exp()).mean(1))
    torch.testing.assert_close(combine(lp), expected)


def test_refuses_what_is_not_an_exact_mixture():
    vae = RowModel(ModelConfig(hidden=8, head_hidden=8, num_classes=0, latent=2, height=4, width=4))
    with pytest.raises(ValueError, match="VAE"):
        Mixture([tiny("rows", 0, classes=0, size=4), vae])
    with pytest.raises(ValueError, match="different sizes"):
        Mixture([tiny("rows", 0), tiny("rows", 1, size=4)])
    with pytest.raises(ValueError, match="num_classes"):
        Mixture([tiny("rows", 0), tiny("rows", 1, classes=0)])
    with pytest.raises(ValueError, match="at least one"):
        Mixture([])


def test_sample_draws_the_part_from_its_own_stream():
    parts = [tiny("rows", 0), tiny("cols", 1), tiny("rows_bu", 2)]
    mix = Mixture(parts)
    drawn = [mix.choose_part(s) for s in range(60)]
    assert set(drawn) == {0, 1, 2}
    for seed in (0, 7, 11):
        k, s = mix.sample(2, y=1, seed=seed)
        assert k == drawn[seed]
        ref = parts[k].sample(2, y=1, seed=seed)
        torch.testing.assert_close(s.images, ref.images)
        torch.testing.assert_close(s.probs, ref.probs)
    gen = torch.Generator().manual_seed((5 + PART_STREAM) % 2 ** 32)
    assert mix.choose_part(5) == int(torch.randint(3, (1,), generator=gen))
    k, _ = mix.sample(1, seed=5, part=2)
    assert k == 2
    # The part is not read from the stream the labels come from (both would be u32 % small).
    labels = [int(mix.sample(1, seed=s, part=0).sample.labels[0]) for s in range(60)]
    assert [l_ % 3 for l_ in labels] != drawn


def test_file_round_trip_and_checks(tmp_path):
    parts = [tiny("rows", 0), tiny("cols_rl", 1, "gru")]
    mix = Mixture(parts, ["a", "b"], [{"test_nll": 1.5}, {"test_nll": 2.5}], {"test_nll": 1.2})
    path = save_mixture(tmp_path / "mix.safetensors", mix)
    assert is_mixture_file(path)
    meta = read_mixture_metadata(path)
    assert meta.names == ["a", "b"] and [c.order for c in meta.configs] == ["rows", "cols_rl"]
    assert meta.part_metrics[1]["test_nll"] == 2.5 and meta.metrics["test_nll"] == 1.2
    back = load_mixture(path)
    torch.testing.assert_close(back.log_prob(ALL_3X3), mix.log_prob(ALL_3X3))
    assert back.describe()[1]["order"] == "cols_rl" and back.describe()[1]["cell"] == "gru"
    with pytest.raises(CheckpointError, match="not an rnnviz checkpoint"):
        load_checkpoint(path)  # a mixture is not one model

    single = tmp_path / "one.safetensors"
    save_checkpoint(single, parts[0])
    assert not is_mixture_file(single)
    with pytest.raises(CheckpointError, match="single model"):
        load_mixture(single)

    # A header whose tensors do not match its configs is refused before anything is read.
    from safetensors.torch import save as st_save
    raw = dict(__import__("safetensors.torch", fromlist=["load_file"]).load_file(path))
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        md = f.metadata()
    bad = dict(raw)
    bad["parts.1.head.pix_to_out"] = torch.zeros(2, 2)
    (tmp_path / "bad.safetensors").write_bytes(st_save(bad, metadata=md))
    with pytest.raises(CheckpointError, match="part 1"):
        load_mixture(tmp_path / "bad.safetensors")
    extra = dict(raw, **{"parts.2.x": torch.zeros(1)})
    (tmp_path / "extra.safetensors").write_bytes(st_save(extra, metadata=md))
    with pytest.raises(CheckpointError, match="unexpected tensors"):
        load_mixture(tmp_path / "extra.safetensors")
    half = dict(raw, **{"parts.0.head.pix_to_out": raw["parts.0.head.pix_to_out"].half()})
    (tmp_path / "half.safetensors").write_bytes(st_save(half, metadata=md))
    with pytest.raises(CheckpointError, match="float32"):
        load_mixture(tmp_path / "half.safetensors")
    huge = dict(md, parts=json.dumps([{"config": dict(parts[0].config.to_dict(), hidden=4096, layers=8)}]))
    (tmp_path / "huge.safetensors").write_bytes(st_save(raw, metadata=huge))
    with pytest.raises(CheckpointError, match="parameters"):
        load_mixture(tmp_path / "huge.safetensors")
    nan = dict(raw, **{"parts.0.head.pix_to_out": torch.full_like(raw["parts.0.head.pix_to_out"], float("nan"))})
    (tmp_path / "nan.safetensors").write_bytes(st_save(nan, metadata=md))
    with pytest.raises(CheckpointError, match="NaN"):
        load_mixture(tmp_path / "nan.safetensors")


def run(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_command_lines_build_and_score_a_mixture(tmp_path):
    files = []
    for k, order in enumerate(["rows", "cols", "rows_bu_rl"]):
        torch.manual_seed(k)
        model = RowModel(ModelConfig(hidden=8, head_hidden=16, order=order))
        opt = torch.optim.Adam(model.parameters())
        model.nll((torch.rand(2, 28, 28) < 0.5).float(), torch.tensor([1, 2])).backward()
        opt.step()  # so the run's file holds Adam's moments, which the mixture must not copy
        files.append(save_checkpoint(tmp_path / f"m_{order}.safetensors", model.eval(), {"dataset": "mnist"},
                                     optimizer=opt))
    out = tmp_path / "mix.safetensors"
    r = run("rnnviz.mixture", *[a for f in files for a in ("--part", str(f))], "--out", str(out),
            "--evaluate", "--dataset", str(FIXTURE), "--seed", "5", "--images", "50")
    assert r.returncode == 0, r.stderr
    built = json.loads(r.stdout.splitlines()[0])
    mix = load_mixture(out)
    assert mix.names == ["m_rows", "m_cols", "m_rows_bu_rl"] and mix.orders == ["rows", "cols", "rows_bu_rl"]
    assert mix.metrics["test_nll"] == built["test_nll"] and mix.metrics["binarization_seed"] == 5
    assert any(k.startswith("optim.") for k in read_header(files[0]))
    assert all(k.startswith("parts.") for k in read_header(out) if k != "__metadata__")

    r = run("rnnviz.evaluate", "--checkpoint", str(out), "--dataset", str(FIXTURE), "--seed", "5", "--images", "50")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["test_nll"] == built["test_nll"] and rep["images"] == 50 and rep["binarization_seed"] == 5
    assert [p["order"] for p in rep["parts"]] == ["rows", "cols", "rows_bu_rl"]
    nlls = [p["test_nll"] for p in rep["parts"]]
    assert rep["gain_over_best_part"] == pytest.approx(min(nlls) - rep["test_nll"], abs=2e-4)
    assert rep["gain_over_mean_of_parts"] == pytest.approx(sum(nlls) / 3 - rep["test_nll"], abs=2e-4)
    assert rep["gain_over_mean_of_parts"] >= 0  # Jensen
    assert "mixture" in rep["protocol"]
    # Each part scored alone by the single-checkpoint path gives the NLL the mixture report lists.
    for f, want in zip(files, nlls):
        r = run("rnnviz.evaluate", "--checkpoint", str(f), "--dataset", str(FIXTURE), "--seed", "5",
                "--images", "50")
        single = json.loads(r.stdout)
        assert set(single) == {"checkpoint", "test_nll", "images", "binarization_seed", "protocol", "seconds"}
        assert single["test_nll"] == pytest.approx(want, abs=1e-3)

    r = run("rnnviz.evaluate", *[a for f in files for a in ("--checkpoint", str(f))], "--dataset", str(FIXTURE),
            "--seed", "5", "--images", "50")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["test_nll"] == rep["test_nll"]

    r = run("rnnviz.evaluate", "--checkpoint", str(files[0]), "--checkpoint", str(out), "--dataset", str(FIXTURE))
    assert r.returncode != 0 and "Traceback" not in r.stderr


def test_mixture_of_checkpoints_names_parts_by_file(tmp_path):
    files = [save_checkpoint(tmp_path / f"{o}.safetensors", tiny(o, k), {"test_nll": k})
             for k, o in enumerate(["rows", "cols"])]
    mix = mixture_of_checkpoints(files)
    assert mix.names == ["rows", "cols"] and mix.part_metrics[1]["source"] == "cols.safetensors"


def test_which_order_reads_each_part_in_its_own_order():
    from rnnviz.analysis import marginal_line_nll

    parts = [tiny("rows", 0, size=5), tiny("cols_rl", 1, "gru", size=5), tiny("rows_bu_rl", 2, size=5)]
    mix = Mixture(parts, ["a", "b", "c"])
    x = (torch.rand(5, 5, generator=torch.Generator().manual_seed(3)) < 0.4).float()
    report = mix.which_order(x)
    assert abs(report["nll"] + mix.log_prob(x).item()) < 1e-4
    assert abs(sum(p["posterior"] for p in report["parts"]) - 1) < 1e-6
    for part, r in zip(parts, report["parts"]):
        assert abs(r["nll"] + part.log_prob(x).item()) < 1e-4
        assert abs(r["line_nll"].sum() - r["nll"]) < 1e-4  # the class summed out, line by line
        assert r["line_pixels"].sum(0).min() == 1  # every pixel in exactly one line
    assert report["parts"][1]["line_pixels"][0][:, -1].all()  # cols_rl starts at the right column
    # Without classes to sum out, the line NLLs are the trace's, step by step in the model's order.
    from rnnviz import trace_images
    uncond = tiny("cols_rl", 4, classes=0, size=5)
    (tr,) = trace_images(uncond, x)
    np.testing.assert_allclose(marginal_line_nll(uncond, x[None])[0], tr.row_nll, atol=1e-4)
    # With classes, line 0's NLL is the marginal of the first line alone.
    first = parts[2].class_log_likelihoods(x[None], rows=1)[0].double()
    ll = marginal_line_nll(parts[2], x[None])
    assert abs(ll[0, 0] + (torch.logsumexp(first, 0) - math.log(3)).item()) < 1e-5


def test_sample_traces_of_a_mixture_name_their_part():
    parts = [tiny("rows", 0, size=5), tiny("cols", 1, size=5)]
    mix = Mixture(parts, ["r", "c"])
    for seed in range(4):
        k, traces = mix.sample_traces(2, y=1, seed=seed)
        assert k == mix.choose_part(seed) and traces[0].order == parts[k].config.order
        assert traces[0].meta["part_name"] == ["r", "c"][k]
        np.testing.assert_array_equal(np.stack([t.image for t in traces]), mix.sample(2, y=1, seed=seed).sample.images.numpy())
    with pytest.raises(ValueError, match="part"):
        mix.sample(1, part=2)
