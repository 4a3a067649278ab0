"""Reliability and safety of the explorer (issue 4): hostile checkpoint files (uploaded to the app and
given to the CLI), bad input sent straight to the API, training faults seen through the app, many
sessions at once, and what a public deployment must not allow (binding, training on Spaces, names
that try to leave the app's folders).

The core behaviour (checkpoint validation, killed writers, divergence, unwritable folders, resume)
is tested in test_checkpoint.py and test_train.py; here it is driven through the app's API
(gradio_client against an app launched in this process) and the command line.
"""

import json
import os
import pickle
import re
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from rnnviz import ModelConfig, RowModel, save_checkpoint
from rnnviz.app import inputs, uploads
from rnnviz.app.registry import Registry
from rnnviz.app.state import Explorer
from rnnviz.app.training import TrainingRefused, TrainingService

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "mnist_small.npz"
GENERIC = "has raised an exception"  # what gradio_client says when a handler crashed
SMALL = ModelConfig(hidden=16, head_hidden=32)


# ---- hostile checkpoint files ------------------------------------------------------------------------
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


# ---- the app under test ---------------------------------------------------------------------------------
def make_checkpoints(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_checkpoint(folder / "mnist_lstm.safetensors", RowModel(ModelConfig(hidden=32, head_hidden=64)),
                    {"test_nll": 543.2, "dataset": "test"})
    save_checkpoint(folder / "deep_rnn.safetensors", RowModel(ModelConfig(cell="rnn", hidden=16, layers=2,
                                                                          head_hidden=32)), {})
    return folder


class App:
    """An explorer launched in this process, with a gradio_client connected to it."""

    def __init__(self, tmp: Path, training: TrainingService | None = None, **explorer_kw):
        from gradio_client import Client

        from rnnviz.app.ui import build_app, launch_options

        self.tmp = tmp
        # the page allows lr <= 0.05; this app takes up to 10 and skips the warm-up, so that a run can diverge
        self.training = training or TrainingService(tmp / "runs", default_dataset=str(FIXTURE), threads=1,
                                                    max_minutes=1.0, limits={"lr": (1e-5, 10.0)},
                                                    train_options={"warmup_steps": 1})
        self.ex = Explorer(make_checkpoints(tmp / "checkpoints"), tmp / "runs", training=self.training,
                           uploads_dir=tmp / "uploads", **explorer_kw)
        self.demo = build_app(self.ex)
        _, self.url, _ = self.demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1",
                                          **launch_options())
        self.client = Client(self.url, verbose=False)

    def close(self):
        self.client.close()
        self.training.shutdown(60)
        self.demo.close()

    def call(self, api: str, *args):
        """("ok", output) or ("error", message); a crash (generic message) fails the test."""
        from gradio_client.exceptions import AppError

        try:
            return "ok", self.client.predict(*args, api_name=api)
        except AppError as e:
            assert GENERIC not in str(e), f"{api}{args!r:.200}: the handler crashed"
            return "error", str(e)

    def raw(self, api: str, body: str, refused_by_gradio: bool = False) -> tuple[str, object]:
        """Call ``api`` with a raw JSON body (NaN and Infinity included), as a script could.
        ``refused_by_gradio``: Gradio itself rejects the request before any handler (no message)."""
        r = httpx.post(f"{self.url}gradio_api/call/{api.strip('/')}", content=body.encode(),
                       headers={"content-type": "application/json"}, timeout=60)
        r.raise_for_status()
        events = httpx.get(f"{self.url}gradio_api/call/{api.strip('/')}/{r.json()['event_id']}", timeout=120).text
        kind = data = None
        for line in events.splitlines():
            if line.startswith("event: "):
                kind = line[7:].strip()
            elif line.startswith("data: ") and kind in ("complete", "error"):
                data = json.loads(line[6:])
        assert kind in ("complete", "error"), events[:300]
        if kind == "complete":
            return "ok", data
        message = data.get("error") if isinstance(data, dict) else data
        assert message or refused_by_gradio, f"{api} {body}: the handler crashed"
        return "error", message

    def generate_works(self):
        status, out = self.call("/generate", "shipped/mnist_lstm", "7", 1.0, 3)
        assert status == "ok" and "digit **7**" in out[0], out


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    a = App(tmp_path_factory.mktemp("reliability"), max_sessions=32)
    yield a
    a.close()


def unhandled(log: str) -> list[str]:
    """The exceptions in a server log that are not a ``gr.Error`` (a message for the visitor)."""
    found = []
    for chunk in log.split("Traceback (most recent call last):")[1:]:
        last = next((line for line in reversed(chunk.strip().splitlines()) if line and not line[0].isspace()), "")
        if not last.startswith("gradio.exceptions.Error"):
            found.append(last)
    return found


def _uploaded(app) -> list[str]:
    folder = app.ex.uploads.folder
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---- checkpoint upload --------------------------------------------------------------------------------
@pytest.mark.parametrize("case", APP_CASES)
def test_each_hostile_upload_is_refused_with_its_reason(app, tmp_path, case, capfd):
    from gradio_client import handle_file

    path, match = hostile(tmp_path, case)
    before = _uploaded(app)
    status, message = app.call("/upload_checkpoint", handle_file(str(path)))
    assert status == "error" and re.search(match, message), message
    assert f"{case}.safetensors" in message and os.environ["GRADIO_TEMP_DIR"] not in message  # no server path
    assert _uploaded(app) == before  # nothing was stored
    assert not (tmp_path / "PWNED").exists()  # the pickle never ran
    app.generate_works()  # and the app keeps serving
    assert not unhandled(capfd.readouterr().err)


def test_a_good_upload_joins_the_model_list_and_generates(app, tmp_path):
    from gradio_client import handle_file

    path = save_checkpoint(tmp_path / "my model (v2).safetensors", RowModel(ModelConfig(cell="gru", hidden=16,
                                                                                         head_hidden=32)))
    status, (dropdown, info) = app.call("/upload_checkpoint", handle_file(str(path)))
    assert status == "ok" and "GRU" in info
    key = dropdown["value"]
    assert key.startswith("upload/my_model_v2_") and key in [k for _, k in app.ex.registry.choices()]
    assert any("(uploaded)" in label for label, k in app.ex.registry.choices() if k == key)
    stored = app.ex.registry.get(key).path
    assert stored.parent == app.ex.uploads.folder and stored.read_bytes() == path.read_bytes()
    status, out = app.call("/generate", key, "3", 1.0, 0)
    assert status == "ok" and "digit **3**" in out[0]
    again = app.call("/upload_checkpoint", handle_file(str(path)))[1][0]["value"]
    assert again == key and len([n for n in _uploaded(app) if n.startswith("my_model")]) == 1  # same file, kept once


def test_uploads_other_than_safetensors_are_refused(app, tmp_path):
    from gradio_client import handle_file

    pt = tmp_path / "model.pt"
    torch.save(RowModel(SMALL).state_dict(), pt)
    status, message = app.call("/upload_checkpoint", handle_file(str(pt)))
    assert status == "error" and ".safetensors" in message
    app.generate_works()


def test_upload_size_is_limited_by_the_server_and_the_handler(app, tmp_path):
    big = tmp_path / "big.safetensors"
    with open(big, "wb") as f:
        f.truncate(uploads.MAX_UPLOAD_BYTES + 1024)  # sparse: quick to make
    with open(big, "rb") as f:
        r = httpx.post(f"{app.url}gradio_api/upload", files={"files": (big.name, f)}, timeout=120)
    assert r.status_code == 413
    store = uploads.UploadStore(tmp_path / "up", max_bytes=1000)
    good = save_checkpoint(tmp_path / "good.safetensors", RowModel(SMALL))
    with pytest.raises(inputs.InputError, match="over the 1000 bytes upload limit"):
        store.add(good, "good.safetensors")
    assert not (tmp_path / "up").exists()
    app.generate_works()


def test_an_upload_cannot_point_at_a_server_file(app):
    """A FileData naming a file on the server (not one uploaded) is refused by Gradio itself, before
    any handler runs (InvalidPathError: "... it was not uploaded by a user")."""
    for target in ("/etc/passwd", str(app.ex.registry.get("shipped/mnist_lstm").path)):
        file_data = json.dumps({"path": target, "meta": {"_type": "gradio.FileData"}})
        status, message = app.raw("/upload_checkpoint", '{"data": [' + file_data + ']}', refused_by_gradio=True)
        assert status == "error", message
    assert not any(n.startswith("mnist_lstm") for n in _uploaded(app))


def test_uploads_are_bounded(tmp_path):
    store = uploads.UploadStore(tmp_path / "up", max_files=3)
    for k in range(5):
        torch.manual_seed(k)
        store.add(save_checkpoint(tmp_path / f"m{k}.safetensors", RowModel(SMALL)), f"m{k}.safetensors")
    assert sorted(p.name[:2] for p in (tmp_path / "up").iterdir()) == ["m2", "m3", "m4"]


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
BAD_NUMBERS = ["abc", None, [1], True]  # "" is read as None; "1e999" as inf (see the next test)


@pytest.mark.parametrize("bad", BAD_NUMBERS, ids=repr)
def test_numbers_of_every_kind_are_checked(app, bad, capfd):
    K = "shipped/mnist_lstm"
    app.call("/generate", K, "7", 1.0, 0)
    app.call("/gen_pause")
    app.call("/gen_tick", 3)  # a paused tick answers gr.skip(): Gradio rebuilds the slider for this session
    calls = [("/generate", K, "7", bad, 0), ("/generate", K, "7", 1.0, bad), ("/generate", K, bad, 1.0, 0),
             ("/gen_step", bad), ("/gen_tick", bad), ("/gen_play", bad), ("/gen_layer", bad, 3),
             ("/gen_layer", 0, bad), ("/open_completion", bad),
             ("/complete", K, "test digit", bad, None, 14, 1, "3", 1.0, 0),
             ("/complete", K, "test digit", 3, None, bad, 1, "3", 1.0, 0),
             ("/complete", K, "test digit", 3, None, 14, bad, "3", 1.0, 0),
             ("/complete", K, "test digit", 3, None, 14, 1, "3", bad, bad),
             ("/preview", "test digit", bad, None, bad),
             ("/train_start", "lstm", bad, 1, 0.002, 32, 0.1, str(FIXTURE), "x"),
             ("/train_start", "lstm", 16, bad, bad, bad, bad, str(FIXTURE), bad)]
    for api, *args in calls:
        app.call(api, *args)  # asserts that no handler crashed
    assert not app.training.active()  # none of those started a run
    app.generate_works()
    assert not unhandled(capfd.readouterr().err)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "-1", "99999999999"])
def test_out_of_range_and_non_finite_numbers(app, value, capfd):
    K = '"shipped/mnist_lstm"'
    app.call("/generate", "shipped/mnist_lstm", "7", 1.0, 0)
    calls = [("gen_step", f"[{value}]"), ("gen_tick", f"[{value}]"), ("gen_play", f"[{value}]"),
             ("gen_layer", f"[{value}, 3]"), ("gen_layer", f"[0, {value}]"), ("open_completion", f"[{value}]"),
             ("generate", f'[{K}, {value}, 1.0, 0]'), ("generate_with_model", f'[{K}, "7", 1.0, {value}]'),
             ("complete", f'[{K}, "test digit", {value}, null, {value}, {value}, {value}, {value}, {value}]'),
             ("preview", f'["test digit", 3, null, {value}]'),
             ("train_start", f'["lstm", {value}, {value}, {value}, {value}, {value}, "{FIXTURE}", "n"]')]
    for api, args in calls:
        app.raw(api, '{"data": ' + args + "}")  # refused or clamped, with a message; never a crash
    status, out = app.raw("generate", f'{{"data": [{K}, "7", {value}, 0]}}')
    assert status == "error" and "temperature" in out  # NaN, inf, -1, 99999999999 are no temperature
    assert not app.training.active()
    app.generate_works()
    assert not unhandled(capfd.readouterr().err)


def test_clamped_values_are_used_and_reported(app):
    status, out = app.call("/generate", "shipped/mnist_lstm", "2", 1.0, 10**12)  # seed above 2^31 - 1
    assert status == "ok" and "seed 2147483647" in out[0]
    svc = TrainingService(app.tmp / "clamp_runs", default_dataset=str(FIXTURE), threads=1)
    try:
        msg, notes = svc.start("me", "rnn", 8, 1, 10.0, 8, 0.05, None)  # lr 10: outside the page's limits
        assert "lr 0.05" in msg and any("learning rate 10" in n and "using 0.05" in n for n in notes)
    finally:
        svc.shutdown(60)


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def _drawing(tmp: Path, layer: np.ndarray | None, size=(280, 280), composite=None) -> dict:
    """A Sketchpad value as the page sends it: white background, one layer of strokes, composite."""
    from gradio_client import handle_file

    h, w = size
    tmp = Path(tempfile.mkdtemp(dir=tmp))  # files of their own: several drawings are built up front
    out = {"background": handle_file(str(_png(tmp / "bg.png", np.full((h, w, 4), 255, np.uint8)))),
           "layers": [], "composite": None}
    if layer is not None:
        out["layers"] = [handle_file(str(_png(tmp / "layer.png", layer)))]
        comp = np.full((h, w, 4), 255, np.uint8)
        comp[layer[..., 3] > 0, :3] = 0
        out["composite"] = handle_file(str(_png(tmp / "comp.png", comp)))
    if composite is not None:
        out["composite"] = handle_file(str(composite))
    return out


def _one(h: int, w: int) -> np.ndarray:
    """A '1': a vertical bar of ink in an (h, w) RGBA layer."""
    a = np.zeros((h, w, 4), np.uint8)
    a[h // 7: h - h // 7, w // 2 - max(1, w // 20): w // 2 + max(1, w // 20), 3] = 255
    return a


def test_drawings_of_every_kind(app, tmp_path, capfd):
    from gradio_client import handle_file

    def complete(sketch):
        return app.call("/complete", "shipped/mnist_lstm", "drawing", 0, sketch, 14, 1, "1", 1.0, 0)

    def preview(sketch):
        return app.call("/preview", "drawing", 0, sketch, 14)

    full = np.zeros((280, 280, 4), np.uint8)
    full[..., 3] = 255
    cases = {
        "blank": (_drawing(tmp_path, np.zeros((280, 280, 4), np.uint8)), "empty"),
        "all ink": (_drawing(tmp_path, full), "covers 100%"),
        "nothing": ({"background": None, "layers": [], "composite": None}, "empty"),
        "tiny 5x5": (_drawing(tmp_path, _one(5, 5), size=(5, 5)), None),
        "huge 4000x4000": ({"background": None, "composite": None,  # only the strokes: quicker to send
                            "layers": [handle_file(str(_png(tmp_path / "huge.png", _one(4000, 4000))))]}, None),
    }
    rgba = np.full((280, 280, 4), 255, np.uint8)  # an RGBA composite only: dark ink, some transparent
    rgba[40:240, 130:150, :3] = 0
    rgba[:, :20, 3] = 0
    cases["RGBA composite"] = (_drawing(tmp_path, None, composite=_png(tmp_path / "rgba.png", rgba)), None)
    g16 = np.full((280, 280), 65535, np.uint16)  # a 16-bit grayscale image: a different dtype
    g16[40:240, 130:150] = 0
    cases["16-bit gray"] = (_drawing(tmp_path, None, composite=_png(tmp_path / "g16.png", g16)), None)
    bits = np.ones((280, 280), bool)
    bits[40:240, 130:150] = False
    cases["1-bit"] = (_drawing(tmp_path, None, composite=_png(tmp_path / "bits.png", bits)), None)
    (tmp_path / "text.png").write_text("this is not an image")
    cases["not an image"] = ({"background": None, "layers": [], "composite": handle_file(str(tmp_path / "text.png"))},
                             "could not be read")
    for name, (sketch, problem) in cases.items():
        status, out = complete(sketch)
        if problem is None:
            assert status == "ok" and len(out[0]) == 1, (name, out)
        else:
            assert status == "error" and problem in out, (name, out)
        preview(sketch)  # a warning at most
    app.generate_works()
    assert not unhandled(capfd.readouterr().err)


def test_drawing_arrays_of_any_dtype_or_shape(tmp_path):
    """The Python side (Explorer.drawing_binary) takes what a script may pass."""
    one = _one(280, 280)
    ink = one[..., 3] > 0
    for arr in [np.where(ink, 0, 255).astype(np.uint8), np.where(ink, 0, 65535).astype(np.uint16),
                np.where(ink, 0.0, 1.0).astype(np.float32), np.where(ink, 0.0, 255.0), ~ink,
                np.where(ink, 0, 255).astype(np.int64), one, np.where(ink[..., None], 0, 255).astype(np.uint8)]:
        img = Explorer.drawing_binary(arr)
        assert img.shape == (28, 28) and 0 < img.mean() < 0.5, arr.dtype
    for bad, match in [(np.zeros((3, 3, 3, 3)), "shape"), (np.array(["a", "b"]), "shape"),
                       (np.zeros((10, 10), object), "object"), (np.full((28, 28), np.nan), "NaN"),
                       ({"layers": [one, one[:100]]}, "different sizes"), (np.zeros((6000, 6000), bool), "too large")]:
        with pytest.raises(inputs.InputError, match=match):
            Explorer.drawing_binary(bad)


# ---- training faults, through the app ---------------------------------------------------------------------
def _wait_for_run(app, timeout=90) -> str:
    run = app.training.run
    assert run is not None
    assert run.trainer.join(timeout), "the run did not end"
    return app.call("/train_refresh")[1][0]


def test_a_diverging_run_is_stopped_with_a_message(app):
    status, out = app.call("/train_start", "lstm", 16, 1, 10.0, 32, 0.5, str(FIXTURE), "diverge")
    assert status == "ok" and app.training.run is not None and "lr 10," in app.training.run.summary
    text = _wait_for_run(app)
    assert "**failed**" in text and "diverged at step" in text and "learning rate 10" in text
    assert not app.training.run.out.exists()  # nothing bad was saved
    app.generate_works()


def test_an_unwritable_runs_folder_refuses_to_start(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the runs folder should be")
    svc = TrainingService(blocker / "runs", default_dataset=str(FIXTURE), threads=1, max_minutes=1.0)
    app = App(tmp_path, training=svc)
    try:
        status, out = app.call("/train_start", "lstm", 16, 1, 0.002, 32, 0.2, str(FIXTURE), "")
        assert status == "ok" and "Cannot start" in out[0] and "cannot write checkpoints" in out[0]
        assert svc.run is None and not svc.active()  # nothing started
        app.generate_works()
    finally:
        app.close()


def test_a_full_disk_at_the_end_stops_cleanly_with_a_message(app, monkeypatch):
    import rnnviz.checkpoint as ck

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck, "save_checkpoint", full_disk)
    status, out = app.call("/train_start", "gru", 16, 1, 0.002, 32, 1.0, str(FIXTURE), "full")
    assert status == "ok" and app.training.run.name == "full"
    deadline = time.time() + 60
    while app.training.run.trainer.snapshot()["step"] < 3 and time.time() < deadline:
        time.sleep(0.1)
    app.call("/train_stop")
    text = _wait_for_run(app)
    assert "**failed**" in text and "could not write checkpoint" in text and "No space left" in text
    app.generate_works()


# ---- many sessions --------------------------------------------------------------------------------------
def test_the_session_cache_is_bounded_whatever_the_number_of_sessions(app):
    from rnnviz import sample_traces

    ex = Explorer(app.tmp / "checkpoints", app.tmp / "runs", max_sessions=16)
    _, model = ex.model("shipped/mnist_lstm")
    (trace,) = sample_traces(model, 1, y=1, seed=0)
    for k in range(200):
        ex.sessions.get(f"visitor-{k}").view("gen").trace = trace
    assert len(ex.sessions) == 16 and "visitor-199" in ex.sessions and "visitor-0" not in ex.sessions
    assert ex.sessions.drop("visitor-199") and "visitor-199" not in ex.sessions
    assert not ex.sessions.drop("visitor-199")


def test_two_hundred_sessions_through_the_server_stay_within_the_bound(app):
    deps = httpx.get(app.url + "config").json()["dependencies"]
    fn = next(i for i, d in enumerate(deps) if d.get("api_name") == "gen_pause")
    with httpx.Client(timeout=30) as http:
        for k in range(200):
            r = http.post(app.url + "gradio_api/run/predict",
                          json={"data": [], "fn_index": fn, "session_hash": f"many-{k}", "event_data": None,
                                "trigger_id": None})
            assert r.status_code == 200
    assert len(app.ex.sessions) == app.ex.sessions.max_sessions == 32
    assert "many-199" in app.ex.sessions and "many-0" not in app.ex.sessions
    from rnnviz.app.ui import GRADIO_SESSIONS

    assert len(app.demo.state_holder.session_data) <= GRADIO_SESSIONS < 200  # Gradio's own copies too


def test_closing_a_session_drops_its_traces(app, monkeypatch):
    """demo.unload runs when a visitor's connection ends (Gradio 6.31: the heartbeat stream closes)."""
    from gradio_client import Client

    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.3")  # read by the server per connection
    clients = [Client(app.url, verbose=False) for _ in range(3)]
    for c in clients:
        c.predict("shipped/mnist_lstm", "1", 1.0, 0, api_name="/generate")
    hashes = [c.session_hash for c in clients]
    assert all(h in app.ex.sessions for h in hashes)
    for c in clients:
        c.close()
    deadline = time.time() + 20
    while any(h in app.ex.sessions for h in hashes) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(h in app.ex.sessions for h in hashes), "unload did not drop the sessions"
    app.generate_works()


def test_a_short_load_test_serves_every_request(app):
    """benchmarks/load_test.py in small: 5 visitors for 10 s while the app trains; no errors."""
    from benchmarks.load_test import run_visitors

    status, out = app.call("/train_start", "lstm", 16, 1, 0.002, 32, 1.0, str(FIXTURE), "load")
    assert status == "ok" and app.training.active()
    try:
        res = run_visitors(app.url, users=5, duration=10, scrubs=5, think=0.05)
    finally:
        app.call("/train_stop")
        app.training.run.trainer.join(60)
    assert res["errors"] == 0, res["error_samples"]
    assert res["endpoints"]["/generate"]["n"] >= 5 and res["endpoints"]["/gen_step"]["n"] >= 10
    assert app.training.run.trainer.snapshot()["step"] > 0  # it trained meanwhile


# ---- public deployment ------------------------------------------------------------------------------------
def test_binds_to_loopback_unless_told(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import explorer

    for var in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "SYSTEM"):
        monkeypatch.delenv(var, raising=False)
    args = explorer.parse_args([])
    assert args.host == "127.0.0.1" and args.port == 7860 and args.share is False


def test_training_is_off_on_a_space_by_default(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT))
    import explorer

    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.delenv("RNNVIZ_ALLOW_TRAINING", raising=False)
    args = explorer.parse_args(["--checkpoint-dir", str(tmp_path), "--runs-dir", str(tmp_path / "runs"),
                                "--train-dataset", str(FIXTURE)])
    ex = explorer.make_explorer(args)
    assert not ex.training.enabled and ex.training.max_minutes == 15.0
    with pytest.raises(TrainingRefused, match="turned off"):
        ex.training.start("visitor", "lstm", 16, 1, 0.002, 32, 0.1, None)
    monkeypatch.setenv("RNNVIZ_ALLOW_TRAINING", "1")
    ex = explorer.make_explorer(args)
    assert ex.training.enabled and ex.training.owner_only and ex.training.max_minutes == 15.0


HOSTILE_NAMES = ["../../etc/passwd", "/etc/passwd", "..\\..\\windows\\system32", "a\x00b", "x" * 5000,
                 "\u00fcnic\u00f8de \u2603 \u0645\u0631\u062d\u0628\u0627", "..", ".", "", "~root/.ssh/authorized_keys",
                 "C:\\Windows\\evil", "name/../../../../tmp/owned", "%2e%2e%2f%2e%2e%2f", "con", None]


def test_checkpoint_keys_cannot_leave_the_folders(app, monkeypatch):
    import rnnviz.app.registry as registry

    opened = []
    real_read, real_load = registry.read_metadata, registry.load_checkpoint
    monkeypatch.setattr(registry, "read_metadata", lambda p: opened.append(Path(p)) or real_read(p))
    monkeypatch.setattr(registry, "load_checkpoint", lambda p: opened.append(Path(p)) or real_load(p))
    app.ex.registry._meta.clear()
    folders = {p.resolve() for p in app.ex.registry.folders.values()}
    keys = ["shipped/../../etc/passwd", "shipped/..\\..\\x", "upload/../shipped/mnist_lstm", "run/../../../etc/shadow",
            "shipped/mnist_lstm\x00.txt", "shipped//mnist_lstm", "shipped/MNIST_LSTM", " shipped/mnist_lstm"]
    for name in [n for n in HOSTILE_NAMES if n is not None] + keys:
        with pytest.raises(inputs.InputError, match="unknown checkpoint"):
            app.ex.model(name)
        status, message = app.call("/generate", name, "7", 1.0, 0)
        assert status == "error" and "unknown checkpoint" in message
    assert opened and all(p.resolve().parent in folders for p in opened)


def test_run_names_cannot_leave_the_runs_folder(tmp_path):
    svc = TrainingService(tmp_path / "runs")
    for name in HOSTILE_NAMES:
        path = svc.checkpoint_path(name, "fallback")
        assert path.parent == tmp_path / "runs" and path.suffix == ".safetensors"
        assert set(path.stem) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
        assert 0 < len(path.stem) <= 40


def test_upload_names_cannot_leave_the_uploads_folder(tmp_path):
    good = save_checkpoint(tmp_path / "src" / "good.safetensors", RowModel(SMALL))
    store = uploads.UploadStore(tmp_path / "deep" / "uploads")
    before = {p for p in tmp_path.rglob("*")}
    with pytest.raises(inputs.InputError, match="only .safetensors"):
        store.add(good, None)
    for name in [n for n in HOSTILE_NAMES if n is not None]:
        stored = store.add(good, f"{name}.safetensors")
        assert stored.parent == store.folder and uploads.STORED.match(stored.name), stored
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(p.parent == store.folder or p == store.folder or p == store.folder.parent for p in created)


def test_gradio_serves_no_file_outside_its_cache(app):
    for target in ("/etc/passwd", str(ROOT / "README.md"), str(app.ex.registry.get("shipped/mnist_lstm").path),
                   "../../../../etc/passwd"):
        r = httpx.get(f"{app.url}gradio_api/file={target}", timeout=30)
        assert r.status_code in (403, 404), (target, r.status_code)
