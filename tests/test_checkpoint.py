"""Checkpoints (rnnviz.checkpoint): the round trip, interrupted and killed writes, the files of
``rnnviz.publish``, and hostile files (a pickle payload is never run; malformed files and the
hostile set of tests/hostile.py get a message naming their problem, from the API and the CLI)."""

import json
import os
import pickle
import re
import struct
import subprocess
import sys
import time

import pytest
import torch
from PIL import Image

import rnnviz
from rnnviz import CheckpointError, ModelConfig, RowModel, load_checkpoint, save_checkpoint
from rnnviz.checkpoint import load_optimizer_state, load_state, read_metadata
from tests import ROOT
from tests.hostile import CORE_CASES, hostile


def test_round_trip(tmp_path):
    torch.manual_seed(0)
    for cell in ("lstm", "gru", "rnn"):
        model = RowModel(ModelConfig(cell=cell, hidden=20, layers=2, head_hidden=40)).eval()
        path = save_checkpoint(tmp_path / f"{cell}.safetensors", model, {"test_nll": 99.5, "dataset": "mnist"})
        loaded, meta = load_state(path)
        assert loaded.config == model.config and not loaded.training
        assert meta["metrics"]["test_nll"] == 99.5 and read_metadata(path)["metrics"]["test_nll"] == 99.5
        assert not hasattr(loaded, "metrics")  # metrics come back beside the model, not stuck on it
        assert load_checkpoint(path).config == model.config
        for k, v in model.state_dict().items():
            assert torch.equal(v, loaded.state_dict()[k])
        x = (torch.rand(2, 28, 28) < 0.3).float()
        torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x))


def test_optimizer_state_round_trip(tmp_path):
    model = RowModel(ModelConfig(hidden=16, head_hidden=32))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = (torch.rand(4, 28, 28) < 0.3).float()
    model.nll(x, 1).backward()
    opt.step()
    path = save_checkpoint(tmp_path / "c.safetensors", model, {"step": 1}, optimizer=opt)
    opt2 = torch.optim.Adam(model.parameters(), lr=1e-3)
    load_optimizer_state(path, opt2)
    s1, s2 = opt.state_dict()["state"], opt2.state_dict()["state"]
    assert s1.keys() == s2.keys()
    for i in s1:
        torch.testing.assert_close(s1[i]["exp_avg"], s2[i]["exp_avg"])
        assert float(s1[i]["step"]) == float(s2[i]["step"])


def test_loads_fast(tiny_checkpoint):
    t = time.perf_counter()
    load_checkpoint(tiny_checkpoint)
    assert time.perf_counter() - t < 5  # generous; the real figure is in the benchmark


def test_interrupted_write_keeps_previous_file(tmp_path, monkeypatch):
    model = RowModel(ModelConfig(hidden=16, head_hidden=32))
    path = save_checkpoint(tmp_path / "m.safetensors", model, {"step": 1})
    before = path.read_bytes()

    def crash(*a, **k):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, RowModel(ModelConfig(hidden=16, head_hidden=32)), {"step": 2})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary left behind
    assert read_metadata(path)["metrics"]["step"] == 1


def test_killed_writer_leaves_previous_checkpoint_loadable(tmp_path):
    """A process killed (SIGKILL) while it rewrites a checkpoint in a loop never leaves a torn file."""
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, RowModel(ModelConfig(hidden=64, head_hidden=128)), {"step": 0})
    code = (
        "import sys; from rnnviz import *\n"
        "m = RowModel(ModelConfig(hidden=64, head_hidden=128))\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1; save_checkpoint(sys.argv[1], m, {'step': i}); print(i, flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    proc.stdout.readline()  # at least one rewrite finished
    time.sleep(0.3)
    proc.kill()
    proc.wait()
    load_checkpoint(path)
    assert read_metadata(path)["metrics"]["step"] >= 1


def _write_raw(path, header: dict, data: bytes = b""):
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)


def test_pickle_payload_is_never_run(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.safetensors"
    path.write_bytes(pickle.dumps(Payload()))
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    torch_file = tmp_path / "model.pt"
    torch.save({"x": Payload()}, torch_file)
    with pytest.raises(CheckpointError):
        load_checkpoint(torch_file)
    assert not marker.exists()


@pytest.mark.parametrize("case", ["empty", "short", "huge_header", "not_json", "truncated", "no_meta",
                                  "other_format", "bad_config", "wrong_shape", "wrong_dtype", "missing"])
def test_malformed_files_give_clear_errors(tmp_path, case):
    path = tmp_path / "bad.safetensors"
    good = RowModel(ModelConfig(hidden=16, head_hidden=32))
    if case == "empty":
        path.write_bytes(b"")
        match = "empty"
    elif case == "short":
        path.write_bytes(b"abc")
        match = "too short"
    elif case == "huge_header":
        path.write_bytes(struct.pack("<Q", 50 * 2**30) + b"{}")
        match = "header claims"
    elif case == "not_json":
        path.write_bytes(struct.pack("<Q", 4) + b"\xff\xfe{{")
        match = "not JSON"
    elif case == "truncated":
        data = save_checkpoint(tmp_path / "g.safetensors", good).read_bytes()
        path.write_bytes(data[:len(data) // 2])
        match = "truncated"
    elif case == "no_meta":
        _write_raw(path, {})
        match = "not an rnnviz checkpoint"
    elif case == "other_format":
        _write_raw(path, {"__metadata__": {"format": "pt"}})
        match = "not an rnnviz checkpoint"
    elif case == "bad_config":
        _write_raw(path, {"__metadata__": {"format": "rnnviz", "format_version": "1",
                                           "config": json.dumps({"cell": "lstm", "hidden": -3})}})
        match = "bad model config"
    else:
        sd = {f"model.{k}": v for k, v in good.state_dict().items()}
        key = "model.rnn.weight_hh_l0"
        if case == "wrong_shape":
            sd[key] = torch.zeros(3, 3)
            match = "the config needs"
        elif case == "wrong_dtype":
            sd[key] = sd[key].double()
            match = "the config needs"
        else:
            del sd[key]
            match = "missing"
        from safetensors.torch import save_file
        save_file(sd, str(path), metadata={"format": "rnnviz", "format_version": "1",
                                           "config": json.dumps(good.config.to_dict())})
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)


def test_public_api_exports():
    assert callable(rnnviz.load_checkpoint) and callable(rnnviz.sample_traces)


def test_publish_keeps_the_model_and_its_metrics_and_drops_what_only_resuming_needs(tmp_path):
    """``python -m rnnviz.publish SRC --out DST``: the shipped file of a run with weight
    averaging holds the average alone, scores the same and says what it dropped."""
    torch.manual_seed(0)
    config = ModelConfig(hidden=20, head_hidden=40)
    average, training = RowModel(config).eval(), RowModel(config)
    opt = torch.optim.Adam(training.parameters())
    training.nll((torch.rand(3, 28, 28) < 0.3).float(), torch.tensor([1, 2, 3])).backward()
    opt.step()
    src = save_checkpoint(tmp_path / "run.safetensors", average, {"test_nll": 88.5, "step": 7},
                          optimizer=opt, training=training)
    dst = tmp_path / "shipped.safetensors"
    r = subprocess.run([sys.executable, "-m", "rnnviz.publish", str(src), "--out", str(dst)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert dst.stat().st_size < src.stat().st_size / 2.5  # weights once, no moments
    loaded, meta = load_state(dst)
    assert meta["metrics"]["test_nll"] == 88.5 and meta["metrics"]["step"] == 7 and "optim" not in meta
    assert meta["metrics"]["published_from"] == {"file": "run.safetensors",
                                                 "dropped": ["optimizer state", "training weights"]}
    for k, v in average.state_dict().items():  # the average, not the training weights
        assert torch.equal(loaded.state_dict()[k], v)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_optimizer_state(dst, torch.optim.Adam(RowModel(config).parameters()))
    # over its own source, or from a broken file, it refuses with a message
    r = subprocess.run([sys.executable, "-m", "rnnviz.publish", str(src), "--out", str(src)],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "not over its source" in r.stderr and load_state(src)[1]["metrics"]["step"] == 7
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    r = subprocess.run([sys.executable, "-m", "rnnviz.publish", str(tmp_path / "bad.safetensors"), "--out",
                        str(tmp_path / "x.safetensors")], capture_output=True, text=True)
    assert r.returncode != 0 and r.stderr.startswith("error:") and "Traceback" not in r.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_checkpoints_record_the_cpu_model_where_the_os_names_it():
    from rnnviz.checkpoint import cpu_model, environment

    env = environment()
    assert env["cpu_count"] == os.cpu_count() and env["threads"] == torch.get_num_threads()
    names = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
             if line.startswith("model name")] if os.path.exists("/proc/cpuinfo") else []
    if names and names[0]:
        assert cpu_model() == names[0][:100] and env["cpu"] == names[0][:100]


@pytest.mark.parametrize("over", [1, 100])
def test_a_header_length_past_the_end_of_the_file_is_refused_for_that_reason(tmp_path, over):
    """The 8-byte header length says more bytes than the file holds, though under every header-size
    limit: the refusal names the header length against the file size (not a truncated JSON or a
    negative data section, which is what a reader that skipped the check would run into next)."""
    from rnnviz.checkpoint import APP_LIMITS, CLI_LIMITS, read_header

    raw = json.dumps({"__metadata__": {"format": "rnnviz", "format_version": "1"}}).encode()
    exact = tmp_path / "exact.safetensors"
    exact.write_bytes(struct.pack("<Q", len(raw)) + raw)
    assert read_header(exact) == json.loads(raw)  # the same bytes with the right length are a header
    path = tmp_path / "long.safetensors"
    n = len(raw) + over
    path.write_bytes(struct.pack("<Q", n) + raw)
    size = 8 + len(raw)
    assert n <= min(CLI_LIMITS.header_bytes, APP_LIMITS.header_bytes)
    for limits in (CLI_LIMITS, APP_LIMITS):
        with pytest.raises(CheckpointError) as e:
            load_state(path, limits=limits)
        assert str(e.value) == f"{path}: not a safetensors file (header claims {n} bytes, file has {size})"


# ---- hostile files given to the command line (tests/hostile.py) ----------------------------------
@pytest.mark.parametrize("case", CORE_CASES)
def test_cli_names_the_problem_of_each_hostile_file(tmp_path, case):
    from rnnviz import sample

    path, match = hostile(tmp_path, case)
    with pytest.raises(SystemExit) as e:
        sample.main(["--checkpoint", str(path), "--out", str(tmp_path / "grid.png")])
    assert str(e.value.code).startswith("error: ") and str(path) in str(e.value.code)
    assert re.search(match, str(e.value.code)), e.value.code
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "grid.png").exists()


def test_cli_subprocess_prints_a_message_not_a_traceback(tmp_path):
    path, match = hostile(tmp_path, "pickle")
    r = subprocess.run([sys.executable, "-m", "rnnviz.sample", "--checkpoint", str(path), "--out",
                        str(tmp_path / "g.png")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and match.split(".*")[0] in r.stderr
    assert not (tmp_path / "PWNED").exists()


def test_a_checkpoint_of_another_size_still_works_from_the_cli(tmp_path):
    """The CLI draws any size; only the explorer (28 x 28 views) refuses it."""
    from rnnviz import sample

    path, _ = hostile(tmp_path, "size_32")
    sample.main(["--checkpoint", str(path), "--out", str(tmp_path / "g.png"), "--n", "1", "--digit", "1"])
    assert Image.open(tmp_path / "g.png").size[0] > 32
