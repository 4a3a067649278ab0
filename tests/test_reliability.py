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
from rnnviz.app.operations import Explorer
from rnnviz.app.training import TrainingRefused, TrainingService
from tests.apps import call_result, post_call, unhandled

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
        except httpx.HTTPStatusError as e:  # refused by guard.RequestGuard before Gradio read it
            assert e.response.status_code in (400, 413, 503), e
            return "error", e.response.json()["error"]

    def raw(self, api: str, body: str, refused_by_gradio: bool = False) -> tuple[str, object]:
        """Call ``api`` with a raw JSON body (NaN and Infinity included), as a script could.
        ``refused_by_gradio``: Gradio itself rejects the request before any handler (no message)."""
        r = post_call(self.url, api, body)
        if r.status_code in (400, 413, 503):  # refused by guard.RequestGuard before Gradio read it
            return "error", r.json()["error"]
        r.raise_for_status()
        kind, data, events = call_result(self.url, api, r.json()["event_id"], timeout=120)
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
    mine = app.ex.registry.choices(app.client.session_hash)  # listed for the uploading session only
    assert key.startswith("upload/my_model_v2_") and key in [k for _, k in mine]
    assert key not in [k for _, k in app.ex.registry.choices()] + [k for _, k in app.ex.registry.choices("other")]
    assert any("(uploaded)" in label for label, k in mine if k == key)
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
    """A FileData naming a file on the server (not one uploaded) is refused with a message before
    Gradio reads it (Gradio's own InvalidPathError had no message and a traceback in the log)."""
    for target in ("/etc/passwd", str(app.ex.registry.get("shipped/mnist_lstm").path)):
        file_data = json.dumps({"path": target, "meta": {"_type": "gradio.FileData"}})
        status, message = app.raw("/upload_checkpoint", '{"data": [' + file_data + ']}')
        assert status == "error" and "uploaded first" in message, message
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
    calls = [("/generate", K, "7", bad, 0), ("/generate", K, "7", 1.0, bad), ("/generate", K, bad, 1.0, 0),
             ("/generate_with_model", K, "7", bad, bad), ("/generate_new_seed", K, bad, bad, 0),
             ("/copy_link", K, "7", 1.0, 0, bad), ("/copy_link", K, bad, bad, bad, 3),  # the step comes from the page
             ("/open_completion", bad),
             ("/complete", K, "test digit", bad, None, 14, 1, "3", 1.0, 0),
             ("/complete", K, "test digit", 3, None, bad, 1, "3", 1.0, 0),
             ("/complete", K, "test digit", 3, None, 14, bad, "3", 1.0, 0),
             ("/complete", K, "test digit", 3, None, 14, 1, "3", bad, bad),
             ("/preview", "test digit", bad, None, bad),
             ("/train_start", "lstm", bad, 1, 0.002, 32, 0.1, str(FIXTURE), "x", 0.0, False),
             ("/train_start", "lstm", 16, bad, bad, bad, bad, str(FIXTURE), bad, bad, bad)]
    for api, *args in calls:
        app.call(api, *args)  # asserts that no handler crashed
    status, out = app.call("/copy_link", K, "7", 1.0, 0, bad)
    assert (status, "timestep" in str(out)) == (("ok", False) if bad is None else ("error", True)), out
    assert not app.training.active()  # none of those started a run
    app.generate_works()
    assert not unhandled(capfd.readouterr().err)


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "-1", "99999999999"])
def test_out_of_range_and_non_finite_numbers(app, value, capfd):
    K = '"shipped/mnist_lstm"'
    app.call("/generate", "shipped/mnist_lstm", "7", 1.0, 0)
    calls = [("copy_link", f'[{K}, "7", 1.0, 0, {value}]'), ("copy_link", f'[{K}, "7", {value}, {value}, 3]'),
             ("open_completion", f"[{value}]"),
             ("generate", f'[{K}, {value}, 1.0, 0]'), ("generate_with_model", f'[{K}, "7", 1.0, {value}]'),
             ("complete", f'[{K}, "test digit", {value}, null, {value}, {value}, {value}, {value}, {value}]'),
             ("preview", f'["test digit", 3, null, {value}]'),
             ("train_start", f'["lstm", {value}, {value}, {value}, {value}, {value}, "{FIXTURE}", "n", {value}, false]')]
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
    # the Train tab's timer tick: no inputs, reads the visitor's session (what it was last sent); queued,
    # so each visitor joins the queue and reads its answer from its session's stream, as the page does
    fn = next(d.get("id", i) for i, d in enumerate(deps) if d.get("api_name") == "train_tick")
    with httpx.Client(timeout=30) as http:
        for k in range(200):
            r = http.post(app.url + "gradio_api/queue/join",
                          json={"data": [], "fn_index": fn, "session_hash": f"many-{k}", "event_data": None,
                                "trigger_id": None})
            assert r.status_code == 200, r.text
            stream = http.get(app.url + "gradio_api/queue/data", params={"session_hash": f"many-{k}"}).text
            assert '"msg":"process_completed"' in stream.replace(" ", "") and '"success":true' in stream.replace(" ", ""), \
                stream[-300:]
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
    """benchmarks/load_test.py in small: 5 visitors for 10 s while the app trains; no errors. Scrubbing
    sends no request any more (the step views are drawn in the browser), so each visitor generates."""
    from benchmarks.load_test import run_visitors

    status, out = app.call("/train_start", "lstm", 16, 1, 0.002, 32, 1.0, str(FIXTURE), "load")
    assert status == "ok" and app.training.active()
    try:
        res = run_visitors(app.url, users=5, duration=10, scrubs=0, think=0.05)
    finally:
        app.call("/train_stop")
        app.training.run.trainer.join(60)
    assert res["errors"] == 0, res["error_samples"]
    assert res["endpoints"]["/generate"]["n"] >= 5 and set(res["endpoints"]) == {"/generate"}
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


# ---- issue 11: a hostile visitor of a public explorer --------------------------------------------------
def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _claims(path: Path, **config) -> Path:
    """A 300-byte file whose header describes a model of ``config`` (and one tiny tensor)."""
    meta = {"format": "rnnviz", "format_version": "1", "config": json.dumps(dict(SMALL.to_dict(), **config))}
    return _raw(path, {"__metadata__": meta, "model.x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}},
                b"\0" * 4)


def _post(app, api: str, data: list, **extra) -> httpx.Response:
    return httpx.post(f"{app.url}gradio_api/call/{api}", json={"data": data, **extra}, timeout=60)


def test_a_model_over_the_explorer_budget_is_refused_from_the_header(app, tmp_path, capfd):
    before = _rss_mb()
    for i, cfg in enumerate([{"hidden": 4096, "layers": 8, "head_hidden": 8192, "num_classes": 1000},
                             {"hidden": 1024, "layers": 4, "head_hidden": 1024},  # each field in range, too many in all
                             {"num_classes": 1000}]):  # a small model of 1000 classes (Complete "auto" scores each)
        path = _claims(tmp_path / f"bomb{i}.safetensors", **cfg)
        status, message = app.call("/upload_checkpoint", __import__("gradio_client").handle_file(str(path)))
        assert status == "error" and "limit" in message, message
    assert _rss_mb() - before < 300  # nothing the header claims was allocated (it was gigabytes)
    shipped = tmp_path / "shipped"  # the registry reads files in its folders within the same budget
    shipped.mkdir()
    _claims(shipped / "big.safetensors", hidden=4096, layers=8, head_hidden=8192)
    reg = Registry({"shipped": shipped})
    assert reg.entries() == [] and "limit" in reg.problems[0] and str(tmp_path) not in reg.problems[0]
    assert not unhandled(capfd.readouterr().err)


def test_start_refuses_a_model_the_explorer_could_not_load(tmp_path):
    svc = TrainingService(tmp_path / "runs", default_dataset=str(FIXTURE), threads=1)
    with pytest.raises(inputs.InputError, match="parameters, over the explorer's limit"):
        svc.start("a", "lstm", 1024, 4, 1e-3, 32, 0.05, None)  # within TRAIN_LIMITS, over APP_LIMITS
    assert svc.run is None and not (tmp_path / "runs").exists()


class _Alive:
    alive = True


def test_finished_runs_are_capped_oldest_first_and_the_live_run_is_kept(tmp_path):
    from rnnviz.app.training import Run

    runs = tmp_path / "runs"
    runs.mkdir()
    for i in range(6):
        p = runs / f"run{i}.safetensors"
        p.write_bytes(b"\0" * 1000)
        (runs / f"run{i}.metrics.jsonl").write_text("{}\n")
        os.utime(p, ns=(i * 10**9, i * 10**9))
    svc = TrainingService(runs, max_runs=3, max_run_bytes=10**6)
    svc._run = Run(_Alive(), "a", "run0", "", "", runs / "run0.safetensors", "x")  # the oldest is still training
    assert svc.prune_runs() == ["run2", "run1"]
    assert sorted(p.name for p in runs.glob("*.safetensors")) == ["run0.safetensors", "run3.safetensors",
                                                                  "run4.safetensors", "run5.safetensors"]
    assert not (runs / "run1.metrics.jsonl").exists()
    assert svc.prune_runs(keep=10, keep_bytes=2500) == ["run3"]  # by bytes too (two runs fit)
    assert (runs / "run0.safetensors").exists()


def test_start_removes_the_oldest_runs_with_a_message(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for i in range(3):
        save_checkpoint(runs / f"old{i}.safetensors", RowModel(SMALL))
        os.utime(runs / f"old{i}.safetensors", ns=(i * 10**9, i * 10**9))
    svc = TrainingService(runs, default_dataset=str(FIXTURE), threads=1, max_runs=2)
    try:
        _, notes = svc.start("a", "lstm", 16, 1, 1e-3, 32, 0.05, None)
    finally:
        svc.shutdown(60)
    assert any("removed the oldest, old1, old0" in n for n in notes), notes
    assert not (runs / "old0.safetensors").exists() and (runs / "old2.safetensors").exists()


def test_a_run_cannot_take_a_shipped_checkpoints_name(app):
    for name in ("mnist_lstm", "MNIST_LSTM", "deep_rnn"):
        assert app.ex.training.checkpoint_path(name, "x").stem.lower() != name.lower()
    assert app.ex.training.checkpoint_path("my_run", "x").stem == "my_run"


def test_visitors_uploads_in_gradios_cache_are_bounded_in_bytes(tmp_path):
    from rnnviz.app.guard import trim_uploads

    class Blocks:
        upload_file_set: set

    files = []
    for i in range(5):
        p = tmp_path / f"up{i}.bin"
        p.write_bytes(b"\0" * 1000)
        os.utime(p, ns=(i * 10**9, i * 10**9))
        files.append(str(p))
    b = Blocks()
    b.upload_file_set = set(files)
    assert sorted(trim_uploads(b, max_bytes=2500)) == files[:3]  # the oldest go first
    assert b.upload_file_set == set(files[3:]) and all(Path(f).exists() for f in files[3:])


def test_uploads_that_reach_no_handler_are_swept(tmp_path, monkeypatch):
    from rnnviz.app.ui import launch_options

    monkeypatch.setenv("RNNVIZ_CACHE_SWEEP", "1,2")  # every second, files older than 2 s
    assert launch_options()["max_file_size"] <= 50 * 2**20
    a = App(tmp_path)
    try:
        assert a.demo.delete_cache == (1, 2)
        r = httpx.post(f"{a.url}gradio_api/upload", files={"files": ("junk.bin", b"\0" * 100_000)}, timeout=30)
        r.raise_for_status()
        (stored,) = r.json()
        assert Path(stored).exists()
        deadline = time.time() + 20
        while Path(stored).exists() and time.time() < deadline:
            time.sleep(0.5)
        assert not Path(stored).exists(), "the upload no handler read is still in Gradio's cache"
    finally:
        a.close()


@pytest.mark.parametrize("api, index", [("generate", 0), ("generate", 1), ("intervene", 1), ("intervene", 4)])
def test_a_huge_string_gets_a_short_message_and_stays_out_of_the_log(app, api, index, capfd):
    data = {"generate": ["shipped/mnist_lstm", "7", 1.0, 0],
            "intervene": ["shipped/mnist_lstm", "clamp forget gate f = 0 (forget)", 5, 8, "all", 0.5, -1, "7", 1.0, 0]}
    for size in (10 * 2**20, 300):  # a 10 MB string, and one of a few hundred characters to a choice
        if size == 300 and index == 4:
            continue  # a text field (units) takes up to 2000 characters and names only 40 of them
        values = list(data[api])
        values[index] = "\u00a7" * size
        r = _post(app, api, values)
        assert r.status_code in (400, 413) and len(r.content) < 500, (r.status_code, r.content[:300])
        assert "too long" in r.json()["error"] or "too large" in r.json()["error"]
    assert "\u00a7" * 100 not in capfd.readouterr().err  # nothing of it reached the log
    app.generate_works()


def test_uploads_are_listed_only_for_the_session_that_made_them(app, tmp_path):
    from gradio_client import Client, handle_file

    path = save_checkpoint(tmp_path / "private.safetensors", RowModel(SMALL))
    other = Client(app.url, verbose=False)
    try:
        status, (dropdown, _) = app.call("/upload_checkpoint", handle_file(str(path)))
        key = dropdown["value"]
        assert status == "ok" and key in [k for _, k in dropdown["choices"]]
        mine, theirs = app.client.session_hash, other.session_hash
        assert key in [k for _, k in app.ex.registry.choices(mine)]
        assert key not in [k for _, k in app.ex.registry.choices(theirs)]
        stored = app.ex.registry.get(key).path
        app.ex.sessions.drop(mine)  # the tab closed (demo.unload)
        assert key not in [k for _, k in app.ex.registry.choices(mine)] and not stored.exists()
    finally:
        other.close()


def test_public_uploads_are_listed_for_everyone(tmp_path):
    from rnnviz.app.__main__ import make_explorer, parse_args

    path = save_checkpoint(tmp_path / "shared.safetensors", RowModel(SMALL))
    args = parse_args(["--public-uploads", "--checkpoint-dir", str(make_checkpoints(tmp_path / "ck")),
                       "--runs-dir", str(tmp_path / "runs" / "explorer")], root=tmp_path)
    ex = make_explorer(args)
    entry = ex.add_upload(path, "shared.safetensors", "visitor-a")
    assert entry.key in [k for _, k in ex.registry.choices("visitor-b")] + [k for _, k in ex.registry.choices()]
    ex.sessions.drop("visitor-a")
    assert entry.path.exists() and entry.key in [k for _, k in ex.registry.choices("visitor-b")]
    default = make_explorer(parse_args(["--checkpoint-dir", str(tmp_path / "ck"), "--runs-dir",
                                        str(tmp_path / "runs" / "explorer")], root=tmp_path))
    assert not default.registry.public_uploads
    help_text = subprocess.run([sys.executable, "-m", "rnnviz.app", "--help"], capture_output=True, text=True,
                               cwd=ROOT, check=True).stdout
    assert "--public-uploads" in help_text and "--open-training-controls" in help_text


EVIL = "<img src=x onerror=alert(1)> ![x](http://evil/) [click](http://evil/) <script>alert(2)</script>"


def test_text_from_a_checkpoints_metadata_is_escaped_wherever_shown(app, tmp_path):
    from gradio_client import handle_file

    from rnnviz.app.cards import model_summary
    from rnnviz.app.stepview import entry_json
    from rnnviz.site import STATIC

    path = save_checkpoint(tmp_path / "evil.safetensors", RowModel(SMALL),
                           {"dataset": EVIL, "test_nll_protocol": EVIL, "test_nll": 100.0})
    status, (dropdown, info) = app.call("/upload_checkpoint", handle_file(str(path)))
    assert status == "ok"
    entry = app.ex.registry.get(dropdown["value"])
    trace = app.ex.generate(entry.key, "3", 1.0, 0)[1][0]
    for text in (info, model_summary(entry.config, entry.metrics, entry.name)):  # Markdown: every sign escaped
        assert not re.search(r"(?<!\\)(<|!\[|\]\()", text), text
    # the page draws a column's title from this record as text (the view modules never set innerHTML)
    record = entry_json(entry.name, entry.config, entry.metrics)
    assert record["metrics"]["test_nll_protocol"] == EVIL[:200] and trace.steps == 28
    for js in STATIC.glob("*.js"):
        assert "innerHTML" not in js.read_text(encoding="utf-8"), js.name


def _fn_index(app, api: str) -> int:
    return next(i for i, fn in app.demo.fns.items() if fn.api_name == api)


def test_one_session_flooding_gets_busy_while_another_is_served(app, monkeypatch):
    from rnnviz.app import guard

    real = app.ex.generate

    def slow(*a, **k):
        time.sleep(0.4)
        return real(*a, **k)

    monkeypatch.setattr(app.ex, "generate", slow)
    assert app.demo._queue.max_size == guard.MAX_QUEUE
    body = {"data": ["shipped/mnist_lstm", "7", 1.0, 0], "fn_index": _fn_index(app, "generate"),
            "session_hash": "flooder", "event_data": None, "trigger_id": None}
    answers = [httpx.post(f"{app.url}gradio_api/queue/join", json=body, timeout=30) for _ in range(8)]
    busy = [r for r in answers if r.status_code == 503]
    assert len(busy) >= 8 - guard.MAX_PENDING_PER_ENDPOINT - 3 and "try again" in busy[0].json()["detail"]
    t0 = time.time()
    app.generate_works()  # another visitor is still served, ahead of the flood's refused jobs
    assert time.time() - t0 < 8


def test_the_drawing_endpoints_share_one_concurrency_group(app):
    from rnnviz.app.components import Sketchpad
    from rnnviz.app.ui import DRAWING_GROUP

    drawing = [fn for fn in app.demo.fns.values() if any(isinstance(b, Sketchpad) for b in fn.inputs)]
    assert len(drawing) >= 4 and {fn.concurrency_id for fn in drawing} == {DRAWING_GROUP}


def _png_claiming(path: Path, w: int, h: int) -> Path:
    """A small PNG whose header says it is w x h pixels (nothing that size is ever written)."""
    import zlib

    Image.fromarray(np.zeros((8, 8), np.uint8)).save(path)
    data = bytearray(path.read_bytes())
    ihdr = data[12:29]  # b"IHDR" + width, height, depth, colour, ...
    ihdr[4:12] = struct.pack(">II", w, h)
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(ihdr)) & 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_drawing_sizes_are_checked_from_the_header_and_urls_are_refused(app, tmp_path, monkeypatch, capfd):
    from gradio import processing_utils

    fetched = []
    monkeypatch.setattr(processing_utils, "async_ssrf_protected_download",
                        lambda *a, **k: fetched.append(a) or (_ for _ in ()).throw(RuntimeError("fetched")))
    big = _png_claiming(tmp_path / "big.png", 9000, 9000)
    t0 = time.time()
    status, message = app.call("/complete", "shipped/mnist_lstm", "drawing", 0,
                               _drawing(tmp_path, None, composite=big), 14, 1, "1", 1.0, 0)
    assert status == "error" and "too large" in message and time.time() - t0 < 5, message
    tiny = "data:image/png;base64," + __import__("base64").b64encode(big.read_bytes()).decode()
    meta = {"_type": "gradio.FileData"}
    for file in ({"path": tiny, "meta": meta}, {"path": "https://example.com/a.png", "meta": meta},
                 {"url": "https://example.com/a.png", "meta": meta}):
        sketch = {"background": None, "layers": [], "composite": file}
        r = _post(app, "preview", ["drawing", 0, sketch, 14])
        assert r.status_code == 400 and "URL" in r.json()["error"], r.text[:300]
        r = _post(app, "upload_checkpoint", [dict(file, orig_name="x.safetensors")])
        assert r.status_code == 400 and "URL" in r.json()["error"], r.text[:300]
    assert not fetched and not unhandled(capfd.readouterr().err)


@pytest.mark.parametrize("body, field", [
    ('["shipped/mnist_lstm", "7", 1.0, ' + "9" * 401 + "]", "seed"),
    ('["shipped/mnist_lstm", "7", 1.0, "' + "9" * 401 + '"]', "seed"),
    ('["shipped/mnist_lstm", "7", "\u096d", 0]', "temperature"),
    ('["shipped/mnist_lstm", "\u096d", 1.0, 0]', "digit"),
])
def test_huge_and_non_ascii_numbers_get_a_message_naming_the_field(app, body, field, capfd):
    status, message = app.raw("/generate", '{"data": ' + body + "}")
    assert status == "error" and (field in message or "list of choices" in message) and len(message) < 300, message
    assert not unhandled(capfd.readouterr().err)


@pytest.mark.parametrize("kind", [["a", "b"], {"a": 1}, 7])
def test_intervene_with_a_kind_that_is_not_text(app, kind, capfd):
    data = ["shipped/mnist_lstm", kind, 5, 8, "all", 0.5, -1, "7", 1.0, 0]
    status, message = app.raw("/intervene", json.dumps({"data": data}))
    assert status == "error" and message, message
    assert not unhandled(capfd.readouterr().err)


def test_messages_show_paths_relative_to_the_apps_folders(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    svc = TrainingService(blocker / "runs", default_dataset=str(FIXTURE), threads=1)
    with pytest.raises(TrainingRefused) as e:
        svc.start("a", "lstm", 16, 1, 1e-3, 32, 0.05, None)
    assert str(tmp_path) not in str(e.value) and "runs" in str(e.value)
    svc = TrainingService(tmp_path / "runs", default_dataset="mnist", data_root=str(tmp_path / "nodata"))
    problem = svc.dataset_problem()
    assert problem and str(tmp_path) not in svc.relative(problem)
    from rnnviz.app.tabs.train import training_status

    snap = {"state": "done", "message": "", "history": [], "step": 1, "seconds": 1, "seconds_left": 0,
            "checkpoint": str(tmp_path / "runs" / "x.safetensors")}
    assert str(tmp_path) not in training_status(snap)


def test_pause_and_stop_belong_to_the_starter_off_loopback(monkeypatch):
    from rnnviz.app.__main__ import training_policy

    env = {}
    assert training_policy(env, "127.0.0.1")[2] is False
    assert training_policy(env, "localhost")[2] is False
    assert training_policy(env, "0.0.0.0")[2] is True
    assert training_policy(env, "192.168.1.5")[2] is True
    assert training_policy(env, "127.0.0.1", share=True)[2] is True
    assert training_policy(env, "0.0.0.0", open_controls=True)[2] is False
    assert training_policy({"SYSTEM": "spaces", "RNNVIZ_ALLOW_TRAINING": "1"}, "0.0.0.0")[2] is True


@pytest.mark.parametrize("owner_only", [True, False])
def test_another_visitor_can_pause_only_when_the_operator_allows_it(tmp_path, owner_only):
    svc = TrainingService(tmp_path / "runs", default_dataset=str(FIXTURE), threads=1, owner_only=owner_only)
    try:
        svc.start("starter", "rnn", 16, 1, 1e-3, 32, 0.5, None)
        if owner_only:
            with pytest.raises(TrainingRefused, match="Only the visitor who started"):
                svc.control("someone-else", "stop")
            assert svc.active()
            assert "Stopping" in svc.control("starter", "stop")
        else:
            assert "Stopping" in svc.control("someone-else", "stop")
        svc.run.trainer.join(60)
        assert not svc.active()
    finally:
        svc.shutdown(60)
