"""Colours and images: how rnnviz turns values into pixels, for the app, the exports and the site.

Pure functions of NumPy arrays and traces; nothing here touches Gradio or runs a model.

Colour scales: sigmoid gates (LSTM i, f, o; GRU r, z) live in [0, 1] and use a sequential scale
(viridis); tanh outputs (g, n, h) live in [-1, 1] and use a diverging scale (blue < 0 < red); the
LSTM cell state c is unbounded, so it gets a diverging scale symmetric around 0 that is fixed per
trace and layer (so colours compare across steps). The head's pixel probabilities use inferno.
"""

from __future__ import annotations

import base64
import io
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

# the palettes and canvas colours are rnnviz.rules', shared with the page's JavaScript
from .rules import (BLUE_WHITE_RED, C_MIN, C_PERCENTILE, C_ROUND, DIFF_ADDED, DIFF_BOTH,  # noqa: F401
                    DIFF_REMOVED, DIM_INK, FUTURE, INFERNO, INK, KEPT_INK, KEPT_PAPER, LUT_SIZE, NAN_RGB,
                    PALETTES, PAPER, ROW_MARK, SCALES, SIGMOID, VIRIDIS)
from .trace import Trace

# ---- colour scales ----------------------------------------------------------------------------


def hex_rgb(c: str) -> tuple[int, int, int]:
    c = c.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


@lru_cache(maxsize=16)
def lut(anchors: tuple[str, ...], n: int = LUT_SIZE) -> np.ndarray:
    """(n, 3) uint8 lookup table interpolating the anchor colours evenly."""
    rgb = np.array([hex_rgb(a) for a in anchors], np.float64)
    pos = np.linspace(0, 1, len(anchors))
    x = np.linspace(0, 1, n)
    return np.stack([np.interp(x, pos, rgb[:, k]) for k in range(3)], axis=1).round().astype(np.uint8)


@dataclass(frozen=True)
class Scale:
    """A colour scale: values in [vmin, vmax] map onto ``anchors``."""

    vmin: float
    vmax: float
    anchors: tuple[str, ...]

    def colorscale(self) -> list[list]:
        """Plotly's colorscale form."""
        n = len(self.anchors)
        return [[k / (n - 1), a] for k, a in enumerate(self.anchors)]

    def css_gradient(self) -> str:
        return f"linear-gradient(to right, {', '.join(self.anchors)})"


def _scale(kind: str) -> Scale:
    lo, hi, palette = SCALES[kind]
    return Scale(lo, hi, PALETTES[palette])


GATE_SCALE, TANH_SCALE, PROB_SCALE = _scale("gate"), _scale("tanh"), _scale("prob")


def state_scale(name: str, values: np.ndarray | None = None) -> Scale:
    """The scale for one gate/state. ``values``: all steps of ``c`` (to fix its symmetric range)."""
    if name in SIGMOID:
        return GATE_SCALE
    if name == "c":
        m = C_MIN if values is None or values.size == 0 else float(np.percentile(np.abs(values), C_PERCENTILE))
        m = max(C_MIN, math.ceil(m / C_ROUND) * C_ROUND)  # at least the tanh range, rounded up
        return Scale(-m, m, BLUE_WHITE_RED)
    return TANH_SCALE


def colorize(values: np.ndarray, scale: Scale) -> np.ndarray:
    """Map an array of values onto RGB uint8 (shape + (3,)); NaN becomes grey."""
    table = lut(scale.anchors)
    v = np.asarray(values, np.float32)
    nan = np.isnan(v)
    x = (np.nan_to_num(v, nan=scale.vmin) - scale.vmin) / max(scale.vmax - scale.vmin, 1e-12)
    idx = np.clip(np.rint(x * (len(table) - 1)), 0, len(table) - 1).astype(np.intp)
    out = table[idx]
    if nan.any():
        out[nan] = NAN_RGB
    return out


# ---- images ------------------------------------------------------------------------------------
def png_bytes(rgb: np.ndarray) -> bytes:
    """PNG of an (H, W, 3) uint8 or (H, W) uint8 array."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def data_uri(rgb: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(rgb)).decode("ascii")


def upscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling (crisp pixels) of an (H, W[, 3]) array."""
    return np.repeat(np.repeat(rgb, factor, axis=0), factor, axis=1)


def unit_grid_shape(n: int) -> tuple[int, int]:
    """(rows, cols) to lay out n units as a near-square grid: 256 -> 16 x 16, 128 -> 8 x 16."""
    if n <= 0:
        raise ValueError(f"need at least one unit, got {n}")
    root = math.isqrt(n)
    for rows in range(root, 0, -1):
        if n % rows == 0 and n // rows <= 2 * rows:
            return rows, n // rows
    cols = math.ceil(math.sqrt(n))
    return math.ceil(n / cols), cols


def units_to_grid(vec: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Lay a (units,) vector out row-major on a grid; cells past the last unit are NaN."""
    vec = np.asarray(vec, np.float32).ravel()
    rows, cols = shape or unit_grid_shape(vec.size)
    out = np.full(rows * cols, np.nan, np.float32)
    out[:vec.size] = vec
    return out.reshape(rows, cols)


def _fill(rgb: np.ndarray, rows: slice, mask: np.ndarray, on, off):
    rgb[rows] = np.where(mask[..., None], np.array(on, np.uint8), np.array(off, np.uint8))


def canvas_rgb(trace: Trace, step: int) -> np.ndarray:
    """The canvas while line ``step`` of the model's scan order is drawn (a row for "rows"), (H, W, 3)
    uint8 at the image's pixels: lines before it as drawn (lines kept from a given image in blue),
    line ``step`` as the probabilities the head gave (inferno), later lines empty. ``step == steps``
    shows the finished image."""
    step = int(np.clip(step, 0, trace.steps))
    ink, probs = trace.lines(trace.image).astype(bool), trace.lines(trace.probs)
    rgb = np.empty(ink.shape + (3,), np.uint8)
    rgb[:] = FUTURE
    kept = min(trace.keep_rows, step)
    _fill(rgb, slice(0, kept), ink[:kept], KEPT_INK, KEPT_PAPER)
    _fill(rgb, slice(kept, step), ink[kept:step], INK, PAPER)
    if step < trace.steps:
        rgb[step] = colorize(probs[step], PROB_SCALE)
    return np.moveaxis(trace.from_lines(np.moveaxis(rgb, -1, 0)), 0, -1)  # each colour channel as an image


def image_rgb(trace: Trace) -> np.ndarray:
    """The finished image, kept rows in blue."""
    return canvas_rgb(trace, trace.steps)


def thumbnail(trace: Trace, scale: int = 4) -> Image.Image:
    """A crisp PIL thumbnail of the finished image (for galleries)."""
    return Image.fromarray(upscale(image_rgb(trace), scale))


def digit_thumbnail(image: np.ndarray, scale: int = 3) -> Image.Image:
    """A crisp thumbnail of a grayscale (H, W) uint8 digit, white on black."""
    return Image.fromarray(upscale(np.asarray(image, np.uint8), scale))


def prefix_preview(binary: np.ndarray, keep_rows: int, scale: int = 6) -> Image.Image:
    """What the model is given for completion: the kept rows in blue, the rest dimmed."""
    H, W = binary.shape
    keep = int(np.clip(keep_rows, 0, H))
    ink = np.asarray(binary).astype(bool)
    rgb = np.empty((H, W, 3), np.uint8)
    _fill(rgb, slice(0, keep), ink[:keep], KEPT_INK, KEPT_PAPER)
    _fill(rgb, slice(keep, H), ink[keep:], DIM_INK, FUTURE)
    return Image.fromarray(upscale(rgb, scale))


# ---- sample grids ------------------------------------------------------------------------------
def grid_image(images: np.ndarray, cols: int, scale: int = 4, pad: int = 2) -> Image.Image:
    """Tile (N, H, W) images in [0, 1] (white ink on black) into one upscaled greyscale image."""
    n, h, w = images.shape
    rows = math.ceil(n / cols)
    canvas = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), 0.35, np.float32)
    for k in range(n):
        r, c = divmod(k, cols)
        canvas[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = images[k]
    img = Image.fromarray((canvas * 255).round().astype(np.uint8), mode="L")
    return img.resize((img.width * scale, img.height * scale), Image.NEAREST)
