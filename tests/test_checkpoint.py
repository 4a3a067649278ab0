import json
import os
import pickle
import struct
import subprocess
import sys
import time

import pytest
import torch

import rnnviz
from rnnviz import CheckpointError, ModelConfig, RowModel, load_checkpoint, save_checkpoint
from rnnviz.checkpoint import load_optimizer_state, load_state, read_metadata


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
