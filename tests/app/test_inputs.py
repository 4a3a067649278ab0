"""Input handling (rnnviz.app.inputs): numbers (and the one table of limits the widgets and the
handlers share), digits, drawings from the sketchpad, file names; and bad input sent straight to the
API (numbers of every kind, NaN and infinities, drawings of every size, dtype and format, text where a
choice is due): refused or clamped with a message that names the field, never a crash."""

import json
import struct
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rnnviz.app import inputs
from rnnviz.app.operations import Explorer
from rnnviz.app.training import TrainingService
from tests import FIXTURE
from tests.app import unhandled


# ---- inputs -------------------------------------------------------------------------------------
def test_number_clamps_and_explains():
    assert inputs.number("t", 0.5, 0, 1).value == 0.5
    c = inputs.number("temperature", 9, 0.1, 2)
    assert c.value == 2 and "outside" in c.note
    assert inputs.number("seed", "12", 0, 100, integer=True).value == 12
    assert inputs.number("seed", None, 0, 100, integer=True, default=3).value == 3
    for bad in ("abc", float("nan"), float("inf"), [1]):
        with pytest.raises(inputs.InputError):
            inputs.number("x", bad, 0, 1)


def test_digit_parsing():
    assert inputs.digit("any", 10) is None and inputs.digit(None, 10) is None
    assert inputs.digit("7", 10) == 7 and inputs.digit(3, 10) == 3 and inputs.digit("4.0", 10) == 4
    assert inputs.digit("auto", 10, allow_auto=True) == "auto"
    for bad in ("12", "-1", "seven", "2.5", "auto"):
        with pytest.raises(inputs.InputError, match="digit must be"):
            inputs.digit(bad, 10)
    with pytest.raises(inputs.InputError, match="unconditional"):
        inputs.digit("3", 0)


def _stroke_canvas():
    rgba = np.zeros((280, 280, 4), np.uint8)
    rgba[40:60, 60:200, 3] = 255  # the bar of a 7
    for k in range(60, 240):  # its stem
        x = 200 - (k - 60) // 2
        rgba[k, x - 9:x + 9, 3] = 255
    return rgba


def test_ink_mask_reads_sketchpad_layers_and_composites():
    layer = _stroke_canvas()
    mask = inputs.ink_mask({"background": np.full((280, 280, 4), 255, np.uint8), "layers": [layer],
                            "composite": None})
    assert mask.shape == (280, 280) and mask.max() == 1.0 and mask[0, 0] == 0
    composite = np.full((280, 280, 4), 255, np.uint8)
    composite[layer[..., 3] > 0, :3] = 0
    assert np.allclose(inputs.ink_mask({"layers": [], "composite": composite}), mask)
    assert inputs.ink_mask(None) is None
    with pytest.raises(inputs.InputError):
        inputs.ink_mask(np.zeros((4, 4, 7)))


def test_mnist_like_fits_a_20px_box_and_centres_the_mass():
    digit = inputs.mnist_like(inputs.ink_mask({"layers": [_stroke_canvas()]}))
    assert digit.shape == (28, 28) and digit.dtype == np.uint8 and digit.max() == 255
    rows, cols = np.nonzero(digit > 25)
    assert max(rows.max() - rows.min(), cols.max() - cols.min()) + 1 <= 21
    w = digit.astype(float)
    ys, xs = np.indices(w.shape)
    assert abs((w * ys).sum() / w.sum() - 13.5) < 1.0 and abs((w * xs).sum() / w.sum() - 13.5) < 1.0


@pytest.mark.parametrize("ink,match", [(np.zeros((280, 280)), "empty"), (np.ones((280, 280)), "covers"),
                                       (None, "empty")])
def test_mnist_like_rejects_odd_drawings(ink, match):
    with pytest.raises(inputs.InputError, match=match):
        inputs.mnist_like(ink)


def test_safe_name_cannot_leave_the_folder():
    assert inputs.safe_name("../../etc/passwd", "x") == "etc_passwd"
    assert inputs.safe_name("my run.v2", "x") == "my_run_v2"
    assert inputs.safe_name("///", "fallback") == "fallback"
    assert inputs.safe_name("ü" * 50, "fb") == "fb"
    assert len(inputs.safe_name("a" * 100, "x")) == 40


def test_one_table_of_limits_for_widgets_and_handlers():
    """A widget's range is its LIMITS entry; the handler clamps to the same range (and says so)."""
    from rnnviz.app import components

    for name, lim in inputs.LIMITS.items():
        w = components.number(name) if lim.open_above else components.slider(name)
        top = None if lim.open_above else lim.hi  # open above: a script's huge seed reaches the handler
        assert (w.minimum, w.maximum, w.value, w.label) == (lim.lo, top, lim.default, lim.label)
        c = inputs.checked(name, lim.hi + 5)
        assert c.value == lim.hi and "outside" in c.note and lim.label in c.note
        assert inputs.checked(name, None).value == lim.default
    t, s, notes = inputs.sampling(9, -4)
    assert (t, s) == (inputs.LIMITS["temperature"].hi, 0) and len(notes) == 2
    assert inputs.STEPS == inputs.IMAGE_SIZE[0] == inputs.LIMITS["step"].hi + 1


@pytest.mark.parametrize("value, match", [(int("9" * 401), "at most 300 digits"), ("9" * 401, "finite"),
                                          ("\u096d", "digits 0-9"), ("\uff17", "digits 0-9"), ([1], "a list"),
                                          ({"a": 1}, "a dict"), (True, "must be a number")])
def test_numbers_are_ascii_and_never_overflow(value, match):
    """Issue 11: a 401-digit integer raised OverflowError; float() reads "\u096d" (Devanagari 7) as 7."""
    with pytest.raises(inputs.InputError, match=match) as e:
        inputs.number("seed", value, 0, 10)
    assert len(str(e.value)) < 120  # the value is not echoed in full


def test_components_refuse_huge_and_non_ascii_numbers():
    import gradio as gr

    from rnnviz.app import components

    box = components.number("seed")
    for bad in (int("9" * 401), "\u096d", "9" * 401):
        with pytest.raises(gr.Error, match="seed") as e:
            box.preprocess(bad)
        assert len(str(e.value)) < 120


@pytest.mark.parametrize("value", ["\u096d", "\u0663", [3], {"d": 3}])
def test_digits_are_ascii_and_text(value):
    with pytest.raises(inputs.InputError, match="digit"):
        inputs.digit(value, 10)


def test_unit_lists_take_ascii_digits_only():
    assert inputs.units("3, 5-6", 10) == (3, 5, 6)
    with pytest.raises(inputs.InputError, match="not a unit number"):
        inputs.units("\u0663", 10)


# ---- bad input straight to the API ---------------------------------------------------------------
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
        r = app.post("preview", ["drawing", 0, sketch, 14])
        assert r.status_code == 400 and "URL" in r.json()["error"], r.text[:300]
        r = app.post("upload_checkpoint", [dict(file, orig_name="x.safetensors")])
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
