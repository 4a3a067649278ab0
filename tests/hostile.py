"""Hostile files the checkpoint reader, the command-line tools and the explorer's uploads must refuse
(each with a message naming its problem), and hostile names. Shared by tests/test_checkpoint.py,
tests/app/ and benchmarks/load_test.py."""

import json
import os
import pickle
import struct
from pathlib import Path

import torch
from safetensors.torch import save_file

from rnnviz import ModelConfig, RowModel, save_checkpoint

SMALL = ModelConfig(hidden=16, head_hidden=32)


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _raw(path: Path, header: dict, data: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _tensors(path: Path, sd: dict, config: dict | None, metrics=None, **meta) -> Path:
    md = {"format": "rnnviz", "format_version": "1", **meta}
    if config is not None:
        md["config"] = json.dumps(config)
    if metrics is not None:
        md["metrics"] = json.dumps(metrics)
    save_file({f"model.{k}": v.contiguous() for k, v in sd.items()}, str(path), metadata=md)
    return path


def _state(config=SMALL) -> dict:
    torch.manual_seed(0)
    return dict(RowModel(config).state_dict())


def hostile(folder: Path, case: str) -> tuple[Path, str]:
    """(a file named like a checkpoint, a regex its error message must match) for each hostile case.
    Where the payload runs, it creates ``folder/PWNED``."""
    path = folder / f"{case}.safetensors"
    good = _state()
    cfg = SMALL.to_dict()
    if case == "pickle":
        path.write_bytes(pickle.dumps(Payload(folder / "PWNED")))
        return path, "pickle"
    if case == "torch_save":
        torch.save({"x": Payload(folder / "PWNED")}, path)
        return path, "pickle or torch.save"
    if case == "empty":
        path.write_bytes(b"")
        return path, "empty"
    if case == "truncated":
        data = save_checkpoint(folder / "whole.tmp", RowModel(SMALL)).read_bytes()
        (folder / "whole.tmp").unlink()
        path.write_bytes(data[: len(data) // 2])
        return path, "truncated"
    if case == "huge_header":  # claims a 40 GB header
        path.write_bytes(struct.pack("<Q", 40 * 2**30) + b'{"a": 1}')
        return path, "header claims"
    if case == "not_json":
        path.write_bytes(struct.pack("<Q", 6) + b"\xff\xfe{{{{")
        return path, "not JSON"
    if case == "wrong_shape":
        good["rnn.weight_hh_l0"] = torch.zeros(3, 3)
        return _tensors(path, good, cfg), "weight_hh_l0.*the config needs"
    if case == "wrong_dtype":
        good["rnn.weight_hh_l0"] = good["rnn.weight_hh_l0"].double()
        return _tensors(path, good, cfg), "float64.*the config needs"
    if case == "missing_tensor":
        del good["rnn.weight_hh_l0"]
        return _tensors(path, good, cfg), "missing"
    if case == "nan_weights":
        good["rnn.weight_hh_l0"][0, 0] = float("nan")
        return _tensors(path, good, cfg), "NaN"
    if case == "no_metadata":
        save_file({f"model.{k}": v for k, v in good.items()}, str(path))
        return path, "not an rnnviz checkpoint"
    if case == "no_config":
        return _tensors(path, good, None), "no model config"
    if case == "bad_config":
        return _tensors(path, good, dict(cfg, hidden=-3)), "bad model config"
    if case == "config_vs_tensors":  # the metadata says GRU, the tensors are an LSTM's
        return _tensors(path, good, dict(cfg, cell="gru")), "the config needs"
    if case == "metrics_not_object":
        return _tensors(path, good, cfg, metrics=[1, 2]), "metrics.*not a JSON object"
    if case == "other_format":
        return _raw(path, {"__metadata__": {"format": "pt"}}), "not an rnnviz checkpoint"
    # files the core reads, that the explorer cannot show
    if case == "size_32":  # a checkpoint of another dataset size
        return save_checkpoint(path, RowModel(ModelConfig(hidden=16, head_hidden=32, height=32, width=32))), \
            "32\u00d732 images.*another dataset size"
    if case == "contradictory_metrics":
        return save_checkpoint(path, RowModel(SMALL), {"parameters": 999}), "contradictory metadata"
    if case == "bad_metric":
        return save_checkpoint(path, RowModel(SMALL), {"test_nll": "very good"}), "test_nll.*finite number"
    raise ValueError(case)


CORE_CASES = ["pickle", "torch_save", "empty", "truncated", "huge_header", "not_json", "wrong_shape", "wrong_dtype",
              "missing_tensor", "nan_weights", "no_metadata", "no_config", "bad_config", "config_vs_tensors",
              "metrics_not_object", "other_format"]


APP_CASES = CORE_CASES + ["size_32", "contradictory_metrics", "bad_metric"]


def claims(path: Path, **config) -> Path:
    """A 300-byte file whose header describes a model of ``config`` (and one tiny tensor)."""
    meta = {"format": "rnnviz", "format_version": "1", "config": json.dumps(dict(SMALL.to_dict(), **config))}
    return _raw(path, {"__metadata__": meta, "model.x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                b"\0" * 4)


HOSTILE_NAMES = ["../../etc/passwd", "/etc/passwd", "..\\..\\windows\\system32", "a\x00b", "x" * 5000,
                 "\u00fcnic\u00f8de \u2603 \u0645\u0631\u062d\u0628\u0627", "..", ".", "", "~root/.ssh/authorized_keys",
                 "C:\\Windows\\evil", "name/../../../../tmp/owned", "%2e%2e%2f%2e%2e%2f", "con", None]
