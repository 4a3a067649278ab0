"""The model list (rnnviz/app/registry.py): its fallback when the default is missing, files it skips
(broken, or that the explorer cannot show) with a problem each, and keys that cannot leave its
folders (hostile names, tests/hostile.py)."""

from pathlib import Path

import pytest

from rnnviz import ModelConfig, RowModel, save_checkpoint
from rnnviz.app import inputs
from rnnviz.app.registry import Registry
from tests.app import SMALL
from tests.hostile import HOSTILE_NAMES, hostile


def test_registry_skips_checkpoints_the_explorer_cannot_show(tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    for case in ("size_32", "bad_metric", "metrics_not_object"):
        hostile(folder, case)
    save_checkpoint(folder / "fine.safetensors", RowModel(SMALL), {"test_nll": 100.0})
    reg = Registry({"shipped": folder})
    assert [e.key for e in reg.entries()] == ["shipped/fine"] and len(reg.problems) == 3
    assert any("another dataset size" in p for p in reg.problems)
    reg.choices()  # labels of every entry render


# ---- bad input straight to the API -----------------------------------------------------------------------


def test_checkpoint_keys_cannot_leave_the_folders(app, monkeypatch):
    import rnnviz.app.registry as registry

    opened = []
    real_read, real_load = registry.read_metadata, registry.load_checkpoint
    monkeypatch.setattr(registry, "read_metadata", lambda p, **kw: opened.append(Path(p)) or real_read(p, **kw))
    monkeypatch.setattr(registry, "load_checkpoint", lambda p, **kw: opened.append(Path(p)) or real_load(p, **kw))
    app.ex.registry.clear_cache()
    folders = {p.resolve() for p in app.ex.registry.folders.values()}
    keys = ["shipped/../../etc/passwd", "shipped/..\\..\\x", "upload/../shipped/mnist_lstm", "run/../../../etc/shadow",
            "shipped/mnist_lstm\x00.txt", "shipped//mnist_lstm", "shipped/MNIST_LSTM", " shipped/mnist_lstm"]
    for name in [n for n in HOSTILE_NAMES if n is not None] + keys:
        with pytest.raises(inputs.InputError, match="unknown checkpoint"):
            app.ex.model(name)
        status, message = app.call("/generate", name, "7", 1.0, 0)
        assert status == "error" and ("unknown checkpoint" in message or "too long" in message), message
    assert opened and all(p.resolve().parent in folders for p in opened)


def test_registry_falls_back_and_skips_broken_files(tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    reg = Registry({"shipped": folder, "run": tmp_path / "none"})
    assert reg.default_key() is None and reg.choices() == []
    save_checkpoint(folder / "other.safetensors", RowModel(ModelConfig(hidden=8, head_hidden=16)), {})
    (folder / "junk.safetensors").write_bytes(b"\x80\x04junk" * 10)
    assert reg.default_key() == "shipped/other"
    assert len(reg.problems) == 1 and "pickle" in reg.problems[0]
    entry, model = reg.model("shipped/other")
    assert reg.model("shipped/other")[1] is model  # cached
    with pytest.raises(inputs.InputError, match="unknown checkpoint"):
        reg.model("shipped/../../x")
