"""Pure input handling: numbers from the page or the API, and drawings from the sketchpad.

Everything a visitor (or a script calling the API) sends is checked here. ``LIMITS`` is the one
table of the numbers a visitor may choose: the widgets take their range from it
(``components.slider``/``components.number``: out of range is refused with a message) and the
handlers check with it (``checked``: out of range is clamped and reported in ``Clamped.note``, for
callers that skip the widgets). Values that cannot mean anything raise ``InputError`` with a
message for the page.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .. import rules

IMAGE_SIZE = rules.IMAGE_SIZE  # the explorer's views draw MNIST-size models only
STEPS = rules.STEPS  # one step per row
DIGITS = list(rules.DIGITS)
FIRST_TEST_DIGIT = 28  # the gallery digit the tabs that read one open on


class InputError(ValueError):
    """Input that cannot be used; the message is meant for the visitor."""


def short(value, n: int = 40) -> str:
    """``repr(value)`` cut to about ``n`` characters: messages never echo more of what was sent."""
    text = repr(value) if not isinstance(value, (list, dict, tuple, set)) else f"a {type(value).__name__}"
    return text if len(text) <= n else text[:n] + "\u2026"


@dataclass
class Clamped:
    value: float | int
    note: str | None = None  # set when the value was changed


def number(name: str, value, lo: float, hi: float, integer: bool = False, default=None) -> Clamped:
    """``value`` as a finite number in [lo, hi] (an int if ``integer``); None takes ``default``."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is None:
            raise InputError(f"{name} is missing")
        value = default
    if isinstance(value, bool) or not isinstance(value, (int, float, str, np.integer, np.floating)):
        raise InputError(f"{name} must be a number, got {short(value)}")
    if isinstance(value, str) and not value.isascii():  # float() reads "\u096d" as 7
        raise InputError(f"{name} must be a number written with the digits 0-9, got {short(value)}")
    try:
        x = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: a 401-digit integer
        raise InputError(f"{name} must be a number of at most 300 digits, got {short(value)}") from None
    if not math.isfinite(x):
        raise InputError(f"{name} must be a finite number, got {short(value)}")
    y = min(max(x, lo), hi)
    if integer:
        y = int(round(y))
    note = None if y == x else f"{name} {short(value)} is outside [{lo:g}, {hi:g}]; using {y:g}"
    if integer and note is None and y != x:
        note = f"{name} must be a whole number; using {y}"
    return Clamped(y, note)


@dataclass(frozen=True)
class Limit:
    """What a visitor may choose for one number: its range, default and widget step."""
    label: str
    lo: float
    hi: float
    default: float
    step: float | None = None
    integer: bool = False
    open_above: bool = False  # the widget has no maximum: larger values reach the handler, which clamps them


LIMITS = {name: Limit(label, lo, hi, default, step, integer=integer, open_above=(name == "seed"))
          for name, (label, lo, hi, default, step, integer) in rules.LIMITS.items()}  # a script's seed 10**12 is clamped


def checked(name: str, value, label: str | None = None, default=None) -> Clamped:
    """``value`` checked against ``LIMITS[name]`` (clamped, with a note; None takes the default)."""
    lim = LIMITS[name]
    return number(label or lim.label, value, lim.lo, lim.hi, integer=lim.integer,
                  default=lim.default if default is None else default)


def sampling(temperature, seed) -> tuple[float, int, list[str]]:
    """(temperature, seed, notes about clamped values): what every sampling handler checks first."""
    t, s = checked("temperature", temperature), checked("seed", seed)
    return float(t.value), int(s.value), [c.note for c in (t, s) if c.note]


def digit(value, num_classes: int, allow_auto: bool = False) -> int | str | None:
    """A class choice: an int in [0, num_classes), None for "any", or "auto" (if allowed)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float, np.integer)):
        raise InputError(f"digit must be a digit or 'any', got {short(value)}")
    text = str(value).strip().lower()
    if not text.isascii():
        raise InputError(f"digit must be written with the digits 0-9, got {short(value)}")
    if text in ("", "any", "none", "random"):
        return None
    if allow_auto and text == "auto":
        return "auto"
    if num_classes == 0:
        raise InputError("this model is unconditional: choose 'any'")
    try:
        d = float(text)
    except (ValueError, OverflowError):
        d = float("nan")
    if not (d.is_integer() and 0 <= d < num_classes):
        choices = "'any', " + ("'auto', " if allow_auto else "") + f"or 0-{num_classes - 1}"
        raise InputError(f"digit must be {choices}; got {short(value)}")
    return int(d)


# ---- drawings ---------------------------------------------------------------------------------
MIN_INK_FRACTION = 0.002  # of the canvas: less is an empty drawing
MAX_INK_FRACTION = 0.5  # more is a filled canvas, not a digit
MAX_DRAWING_PIXELS = 25_000_000  # 5000 x 5000


def _unit(a: np.ndarray) -> np.ndarray:
    """Pixel values of any numeric dtype as float32 in [0, 1] (1 = full intensity)."""
    if a.dtype == bool:
        return a.astype(np.float32)
    if np.issubdtype(a.dtype, np.integer):  # 8-bit values, 16-bit values (e.g. I;16 PNGs), or other
        top = float(a.max(initial=0))
        scale = 255.0 if top <= 255 else 65535.0 if top <= 65535 else top
        return np.clip(a.astype(np.float32) / scale, 0, 1)
    if np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float32)
        if not np.isfinite(f).all():
            raise InputError("The drawing holds NaN or infinite values.")
        return np.clip(f / 255.0 if f.max(initial=0) > 1 else f, 0, 1)
    raise InputError(f"cannot read a drawing made of {a.dtype} values")


def _image(a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise InputError(f"cannot read a drawing of shape {a.shape}")
    if a.shape[0] * a.shape[1] > MAX_DRAWING_PIXELS:
        raise InputError(f"The drawing is too large ({a.shape[1]}\u00d7{a.shape[0]} pixels).")
    return a


def ink_mask(sketch) -> np.ndarray | None:
    """Ink in [0, 1] (H, W) from a ``gr.Sketchpad`` value ({"background", "layers", "composite"},
    numpy (H, W, 4) arrays), a plain RGBA/RGB/gray array of any numeric dtype, or None. The strokes'
    alpha is used where there are layers; otherwise darkness of the composite."""
    if sketch is None:
        return None
    if isinstance(sketch, dict):
        layers = [_image(a) for a in (sketch.get("layers") or []) if a is not None]
        layers = [a for a in layers if a.ndim == 3 and a.shape[2] == 4]
        if layers:
            if len({a.shape for a in layers}) > 1:
                raise InputError("The drawing's layers have different sizes: send one layer, or the composite.")
            return np.max(np.stack([_unit(a[..., 3]) for a in layers]), axis=0)
        sketch = sketch.get("composite")
        if sketch is None:
            return None
    a = _image(sketch)
    if a.size == 0:
        return None
    if a.ndim == 2 or a.shape[2] == 1:
        light = _unit(a.reshape(a.shape[:2]))
    else:
        light = _unit(a[..., :3]).mean(-1)
        if a.shape[2] == 4:  # transparent pixels are paper
            light = np.where(_unit(a[..., 3]) > 0, light, 1.0)
    return 1.0 - light


def mnist_like(ink: np.ndarray | None, size: int = 28, box: int = 20) -> np.ndarray:
    """A drawing as an MNIST digit: (size, size) uint8 grayscale, white ink on black.

    As MNIST was made: the ink's bounding box is scaled (keeping its aspect ratio, anti-aliased)
    to fit a ``box`` x ``box`` square, then placed so that its centre of mass is the image centre.
    Raises ``InputError`` for an empty or (nearly) filled canvas.
    """
    if ink is None or ink.size == 0:
        raise InputError("The drawing is empty: draw a digit first.")
    ink = np.clip(np.asarray(ink, np.float32), 0, 1)
    on = ink > 0.1
    frac = float(on.mean())
    if frac < MIN_INK_FRACTION:
        raise InputError("The drawing is empty: draw a digit first.")
    if frac > MAX_INK_FRACTION:
        raise InputError(f"The drawing covers {100 * frac:.0f}% of the canvas: that is not a digit. "
                         "Clear it and draw one digit with the brush.")
    rows, cols = np.nonzero(on)
    crop = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    h, w = crop.shape
    s = box / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    small = np.asarray(Image.fromarray(crop, mode="F").resize((nw, nh), Image.BOX), np.float32)
    peak = float(small.max())
    if peak <= 0:
        raise InputError("The drawing is too faint to read: draw with the brush.")
    small = np.clip(small / peak, 0, 1)
    ys, xs = np.indices(small.shape)
    cy, cx = (small * ys).sum() / small.sum(), (small * xs).sum() / small.sum()
    top = int(np.clip(round((size - 1) / 2 - cy), 0, size - nh))
    left = int(np.clip(round((size - 1) / 2 - cx), 0, size - nw))
    out = np.zeros((size, size), np.float32)
    out[top:top + nh, left:left + nw] = small
    return (out * 255).round().astype(np.uint8)


def safe_name(text: str | None, fallback: str, max_len: int = 40) -> str:
    """A file-name stem made of letters, digits, '-' and '_' only (no dots, no slashes)."""
    text = "" if text is None else str(text)
    keep = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "_" for ch in text)
    keep = re.sub(r"_+", "_", keep).strip("_-")[:max_len]
    return keep or fallback


# ---- interventions ----------------------------------------------------------------------------
MAX_UNITS_TEXT = 2000  # characters of a unit list


def units(text, hidden: int) -> tuple[int, ...] | None:
    """Hidden units from text such as ``"3, 17, 200-210"`` (ranges include both ends); ``"all"``,
    ``"*"`` or nothing mean every unit (None). Raises ``InputError`` saying what is wrong."""
    if text is None:
        return None
    if not isinstance(text, (str, int)) or isinstance(text, bool):
        raise InputError(f"units must be text such as '3, 17, 200-210' or 'all', got {str(text)[:40]!r}")
    text = str(text).strip()
    if text.lower() in ("", "all", "*", "every", "all units"):
        return None
    if len(text) > MAX_UNITS_TEXT:
        raise InputError(f"the unit list is too long ({len(text)} characters; at most {MAX_UNITS_TEXT})")
    out: set[int] = set()
    text = re.sub(r"\s*(-|\.\.|:|\u2013)\s*", r"\1", text)  # "200 - 210" is one range
    for part in re.split(r"[,;\s]+", text):
        if not part:
            continue
        m = re.fullmatch(r"([0-9]+)(?:\s*(?:-|\.\.|:|\u2013)\s*([0-9]+))?", part)  # ASCII digits only
        if m is None:
            raise InputError(f"units: {part[:40]!r} is not a unit number or range; write e.g. '3, 17, 200-210' "
                             f"(units 0-{hidden - 1}) or 'all'")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise InputError(f"units: the range {part[:40]!r} runs backwards; write it as {hi}-{lo}")
        if hi >= hidden:
            raise InputError(f"units: unit {hi} does not exist: this layer has units 0-{hidden - 1}")
        out.update(range(lo, hi + 1))
    if not out:
        raise InputError("units: no unit given; write e.g. '3, 17, 200-210' or 'all'")
    return tuple(sorted(out))


def step_range(start, stop, height: int) -> tuple[int, int]:
    """(first, last) steps, both in [0, height - 1] and first <= last; anything else is an error
    (a step range is not silently clamped)."""
    vals = []
    for name, v in (("first step", start), ("last step", stop)):
        c = number(name, v, -math.inf, math.inf)
        x = float(c.value)
        if not x.is_integer():
            raise InputError(f"{name} must be a whole number, got {short(v)}")
        if not 0 <= x <= height - 1:
            raise InputError(f"{name} {int(x)} is outside the image: steps are rows 0-{height - 1}")
        vals.append(int(x))
    if vals[1] < vals[0]:
        raise InputError(f"the last step ({vals[1]}) comes before the first ({vals[0]})")
    return vals[0], vals[1]
