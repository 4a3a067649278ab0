"""Pure input handling: numbers from the page or the API, and drawings from the sketchpad.

Everything a visitor (or a script calling the API) sends is checked here. Numbers out of range are
clamped and reported (``Clamped.note``); values that cannot mean anything raise ``InputError`` with
a message for the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image


class InputError(ValueError):
    """Input that cannot be used; the message is meant for the visitor."""


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
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(x):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    y = min(max(x, lo), hi)
    if integer:
        y = int(round(y))
    note = None if y == x else f"{name} {value!r} is outside [{lo:g}, {hi:g}]; using {y:g}"
    if integer and note is None and y != x:
        note = f"{name} must be a whole number; using {y}"
    return Clamped(y, note)


def digit(value, num_classes: int, allow_auto: bool = False) -> int | str | None:
    """A class choice: an int in [0, num_classes), None for "any", or "auto" (if allowed)."""
    if value is None:
        return None
    text = str(value).strip().lower()
    if text in ("", "any", "none", "random"):
        return None
    if allow_auto and text == "auto":
        return "auto"
    if num_classes == 0:
        raise InputError("this model is unconditional: choose 'any'")
    try:
        d = float(text)
    except ValueError:
        d = float("nan")
    if not (d.is_integer() and 0 <= d < num_classes):
        choices = "'any', " + ("'auto', " if allow_auto else "") + f"or 0-{num_classes - 1}"
        raise InputError(f"digit must be {choices}; got {value!r}")
    return int(d)


# ---- drawings ---------------------------------------------------------------------------------
MIN_INK_FRACTION = 0.002  # of the canvas: less is an empty drawing
MAX_INK_FRACTION = 0.5  # more is a filled canvas, not a digit


def ink_mask(sketch) -> np.ndarray | None:
    """Ink in [0, 1] (H, W) from a ``gr.Sketchpad`` value ({"background", "layers", "composite"},
    numpy (H, W, 4) arrays), a plain RGBA/RGB/gray array, or None. The strokes' alpha is used where
    there are layers; otherwise darkness of the composite."""
    if sketch is None:
        return None
    if isinstance(sketch, dict):
        layers = [np.asarray(a) for a in (sketch.get("layers") or []) if a is not None]
        layers = [a for a in layers if a.ndim == 3 and a.shape[2] == 4]
        if layers:
            return np.max(np.stack([a[..., 3] for a in layers]), axis=0).astype(np.float32) / 255.0
        sketch = sketch.get("composite")
        if sketch is None:
            return None
    a = np.asarray(sketch)
    if a.ndim == 2:
        gray = a.astype(np.float32)
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        gray = a[..., :3].astype(np.float32).mean(-1)
        if a.shape[2] == 4:  # transparent pixels are paper
            gray = np.where(a[..., 3] > 0, gray, 255.0)
    else:
        raise InputError(f"cannot read a drawing of shape {a.shape}")
    if gray.size == 0:
        return None
    return 1.0 - np.clip(gray, 0, 255) / 255.0


def mnist_like(ink: np.ndarray | None, size: int = 28, box: int = 20) -> np.ndarray:
    """A drawing as an MNIST digit: (size, size) uint8 grayscale, white ink on black.

    As MNIST was made: the ink's bounding box is scaled (keeping its aspect ratio, anti-aliased)
    to fit a ``box`` x ``box`` square, then placed so that its centre of mass is the image centre.
    Raises ``InputError`` for an empty or (nearly) filled canvas.
    """
    if ink is None or ink.size == 0:
        raise InputError("The drawing is empty: pick the brush and draw a digit first.")
    ink = np.clip(np.asarray(ink, np.float32), 0, 1)
    on = ink > 0.1
    frac = float(on.mean())
    if frac < MIN_INK_FRACTION:
        raise InputError("The drawing is empty: pick the brush and draw a digit first.")
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
    keep = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_") else "_" for ch in (text or ""))
    keep = keep.strip("_-")[:max_len]
    return keep or fallback
