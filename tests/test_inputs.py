"""Input handling (rnnviz.app.inputs): numbers (and the one table of limits the widgets and the
handlers share), digits, drawings from the sketchpad, file names."""

import numpy as np
import pytest

from rnnviz.app import inputs


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
