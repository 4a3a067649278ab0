"""Exports: an animated GIF of a trace, a trace as a .npz, a PNG grid of samples.

    python -m rnnviz.export --checkpoint checkpoints/mnist_lstm.safetensors --digit 3 --seed 0 \
        --gif out.gif --npz out.npz --grid grid.png        # any subset of the three outputs

- ``trace_gif``: the image growing row by row (the current row as the head's probabilities) beside
  heatmaps of the layer's gates and states at that step, units on a grid as in the explorer, with
  the explorer's colour scales (sigmoid gates 0..1 viridis, tanh states -1..1 blue-white-red, the
  LSTM cell state symmetric and fixed per trace). One frame per step, then a held frame of the
  finished image. Rendered with NumPy and Pillow.
- ``save_trace_npz`` / ``load_trace_npz``: a ``Trace`` as plain arrays (read back with
  ``allow_pickle=False``; nothing is ever pickled).
- ``sample_grid_png``: samples tiled as ``python -m rnnviz.sample`` does.

Keys of a trace .npz (H rows, W pixels per row; every array is numeric or a fixed-width string):

==========================  ===================  ==================================================
key                         dtype, shape         meaning
==========================  ===================  ==================================================
``format``                  str, ()              ``"rnnviz-trace"``
``version``                 int64, ()            ``1``
``cell``                    str, ()              ``"lstm"``, ``"gru"`` or ``"rnn"``
``image``                   uint8, (H, W)        the image, 0/1
``probs``                   float32, (H, W)      p(pixel = 1) as drawn (tempered)
``model_probs``             float32, (H, W)      the model's p(pixel = 1) at temperature 1
``row_nll``                 float32, (H,)        -log p(row t | rows < t, label) in nats
``label``                   int64, () or (0,)    the class; an empty array when unconditional
``temperature``             float64, ()          sampling temperature
``seed``                    int64, () or (0,)    the seed; an empty array when none (a read image)
``keep_rows``               int64, ()            rows copied from a given image (completion)
``layers``                  int64, ()            number of recurrent layers L
``layer{k}/{name}``         float32, (H, hidden) per layer k < L, every name of
                                                 ``rnnviz.cells.STATE_NAMES[cell]`` (LSTM: i f g o c h)
``latent``                  float32, (latent,)   the z a VAE decoded from; absent otherwise
``meta/{key}``              as stored            ``Trace.meta`` entries that are str, bool, int,
                                                 float or arrays (others are left out)
==========================  ===================  ==================================================
"""

from __future__ import annotations

import argparse
import os
import zipfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .render import (BLUE_WHITE_RED, FUTURE, INFERNO, KEPT_INK, KEPT_PAPER, VIRIDIS, Scale, canvas_rgb,
                     colorize, grid_image, lut, state_scale, unit_grid_shape, units_to_grid, upscale)
from .cells import DESCRIPTIONS, STATE_NAMES
from .cli import check_output, cli_model
from .model import RowModel
from .trace import Trace, sample_traces

FORMAT, VERSION = "rnnviz-trace", 1
BACKGROUND, TEXT, MUTED = (17, 24, 39), (235, 238, 243), (150, 160, 175)
PANEL = 224  # pixels: the largest side of every panel in a GIF frame
PAD, LABEL_H, BAR_H = 10, 18, 8


# ---- GIF ---------------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _font(size: int = 13):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: the fixed bitmap font
        return ImageFont.load_default()


def _fmt(x: float) -> str:
    return f"{x:g}"  # ASCII minus: the default font has no U+2212


def _panel(rgb: np.ndarray, title: str, scale: Scale | None) -> tuple[np.ndarray, list]:
    """One panel: ``rgb`` upscaled to fit PANEL x PANEL, a colour bar under it (if ``scale``).
    Returns (the panel's RGB array without text, [(x, y, text, colour)] to draw on it)."""
    h, w = rgb.shape[:2]
    factor = max(1, PANEL // max(h, w))
    img = upscale(rgb, factor)
    out = np.empty((LABEL_H + PANEL + (BAR_H + LABEL_H if scale else 0), PANEL, 3), np.uint8)
    out[:] = BACKGROUND
    x0 = (PANEL - img.shape[1]) // 2
    out[LABEL_H:LABEL_H + img.shape[0], x0:x0 + img.shape[1]] = img
    texts = [(0, 1, title, TEXT)]
    if scale is not None:
        y = LABEL_H + PANEL + 3
        out[y:y + BAR_H] = colorize(np.linspace(scale.vmin, scale.vmax, PANEL), scale)[None]
        font = _font()
        for frac, value in ((0.0, scale.vmin), (0.5, (scale.vmin + scale.vmax) / 2), (1.0, scale.vmax)):
            text = _fmt(value)
            x = round(frac * (PANEL - font.getlength(text)))
            texts.append((x, y + BAR_H + 1, text, MUTED))
    return out, texts


def trace_frames(trace: Trace, names=None, layer: int = -1, hold: bool = True) -> list[Image.Image]:
    """RGB frames of ``trace_gif``: one per step (the canvas while that row is drawn and the
    layer's ``names`` at that step), then (``hold``) the finished image with the last step's states."""
    names = tuple(trace.names if names is None else names)
    unknown = [n for n in names if n not in trace.names]
    if unknown:
        raise ValueError(f"{trace.cell} has no {unknown}: choose from {list(trace.names)}")
    L = len(trace.layers)
    if not -L <= layer < L:
        raise ValueError(f"layer must be in [{-L}, {L - 1}], got {layer}")
    states = trace.layers[layer]
    scales = {n: state_scale(n, states[n]) for n in names}
    units = states[trace.names[0]].shape[1]
    grid = unit_grid_shape(units)
    cols = min(4, 1 + len(names))
    font = _font()
    H = trace.steps
    frames = []
    for step in range(H + 1 if hold else H):
        t = min(step, H - 1)
        what = "finished" if step == H else f"row {step}" + (" (kept)" if step < trace.keep_rows else "")
        panels = [_panel(canvas_rgb(trace, step), f"image: {what}", None)]
        for n in names:
            rgb = colorize(units_to_grid(states[n][t], grid), scales[n])
            panels.append(_panel(rgb, f"{n}: {DESCRIPTIONS.get(n, n).split(':')[0]}", scales[n]))
        ph = max(p.shape[0] for p, _ in panels)
        rows = -(-len(panels) // cols)
        head = LABEL_H + 6
        frame = np.empty((head + rows * (ph + PAD) + PAD, cols * (PANEL + PAD) + PAD, 3), np.uint8)
        frame[:] = BACKGROUND
        texts = []
        for k, (p, ptexts) in enumerate(panels):
            r, c = divmod(k, cols)
            y, x = head + PAD + r * (ph + PAD), PAD + c * (PANEL + PAD)
            frame[y:y + p.shape[0], x:x + PANEL] = p
            texts += [(x + dx, y + dy, s, col) for dx, dy, s, col in ptexts]
        which = f"layer {layer % L} of {L}, " if L > 1 else ""
        label = "" if trace.label is None else f"digit {trace.label}, "
        nll = trace.row_nll[:min(step + 1, H)].sum()
        texts.append((PAD, 6, f"{trace.cell.upper()} {which}step {t}/{H - 1} \u00b7 {label}"
                              f"NLL so far {nll:.1f} of {trace.nll:.1f} nats", TEXT))
        img = Image.fromarray(frame)
        draw = ImageDraw.Draw(img)
        for x, y, s, col in texts:
            draw.text((x, y), s, fill=col, font=font)
        frames.append(img)
    return frames


def _gif_palette() -> Image.Image:
    """One palette for every frame (so colours do not flicker): the colour scales, the canvas and
    text colours, and greys for anti-aliased text."""
    colours = [lut(VIRIDIS), lut(BLUE_WHITE_RED), lut(INFERNO)]
    fixed = [BACKGROUND, TEXT, MUTED, FUTURE, KEPT_INK, KEPT_PAPER, (0, 0, 0), (245, 245, 245), (128, 128, 128)]
    greys = np.linspace(0, 1, 24)[:, None] * (np.array(TEXT) - np.array(BACKGROUND)) + np.array(BACKGROUND)
    strip = np.concatenate(colours + [np.repeat(np.array(fixed, np.uint8), 24, 0), greys.astype(np.uint8)])
    return Image.fromarray(strip[None]).quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def trace_gif(trace: Trace, path: str | os.PathLike, names=None, layer: int = -1, fps: float = 4.0,
              hold_s: float = 2.0) -> Path:
    """Write an animated GIF of ``trace``: the image growing row by row beside the gates/states
    ``names`` (default: all of the cell's) of ``layer`` at that step, ``fps`` steps per second,
    the finished image held for ``hold_s`` seconds. Returns the path."""
    if not (isinstance(fps, (int, float)) and 0.1 <= fps <= 50):
        raise ValueError(f"fps must be in [0.1, 50], got {fps!r}")
    frames = trace_frames(trace, names, layer, hold=hold_s > 0)
    palette = _gif_palette()
    frames = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    step_ms = max(20, round(1000 / fps))
    durations = [step_ms] * trace.steps + ([max(step_ms, round(1000 * hold_s))] if hold_s > 0 else [])
    path = Path(path)
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0,
                   optimize=False, disposal=1)
    return path


# ---- npz ---------------------------------------------------------------------------------------
def _optional_int(v: int | None) -> np.ndarray:
    return np.zeros(0, np.int64) if v is None else np.array(int(v), np.int64)


def _meta_value(v):
    if isinstance(v, (str, bool, int, float, np.ndarray, np.generic)):
        a = np.asarray(v)
        if a.dtype.kind in "biufU":
            return a
    return None


def trace_arrays(trace: Trace) -> dict[str, np.ndarray]:
    """The arrays ``save_trace_npz`` writes (keys in the module docstring)."""
    out = {"format": np.array(FORMAT), "version": np.array(VERSION, np.int64), "cell": np.array(trace.cell),
           "image": np.asarray(trace.image, np.uint8), "probs": np.asarray(trace.probs, np.float32),
           "model_probs": np.asarray(trace.model_probs, np.float32),
           "row_nll": np.asarray(trace.row_nll, np.float32), "label": _optional_int(trace.label),
           "temperature": np.array(float(trace.temperature), np.float64), "seed": _optional_int(trace.seed),
           "keep_rows": np.array(int(trace.keep_rows), np.int64), "layers": np.array(len(trace.layers), np.int64)}
    for k, layer in enumerate(trace.layers):
        for name in trace.names:
            out[f"layer{k}/{name}"] = np.asarray(layer[name], np.float32)
    if trace.latent is not None:
        out["latent"] = np.asarray(trace.latent, np.float32)
    for key, v in trace.meta.items():
        a = _meta_value(v)
        if a is not None and "/" not in str(key):
            out[f"meta/{key}"] = a
    return out


def save_trace_npz(trace: Trace, path: str | os.PathLike) -> Path:
    """Write ``trace`` to ``path`` exactly as given (no ``.npz`` is appended); keys in the module
    docstring. Returns the path."""
    path = Path(path)
    with open(path, "wb") as f:
        np.savez_compressed(f, **trace_arrays(trace))
    return path


def _scalar(a: np.ndarray):
    return a.item() if a.ndim == 0 else a


def load_trace_npz(path: str | os.PathLike) -> Trace:
    """Read a trace written by ``save_trace_npz`` (``allow_pickle=False``: never unpickles).
    Raises ValueError when the file is not a valid trace."""
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive")
        with z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError) as e:
        raise ValueError(f"{path}: not a .npz file ({e})") from None
    except ValueError as e:  # not an archive, or an object array that would need pickle
        raise ValueError(f"{path}: not a trace .npz readable without pickle ({e})") from None
    if "format" not in arrays or arrays["format"].ndim != 0 or str(arrays["format"]) != FORMAT:
        raise ValueError(f"{path}: not an rnnviz trace (no format={FORMAT!r})")
    if "version" not in arrays or arrays["version"].shape != () or int(arrays["version"]) != VERSION:
        raise ValueError(f"{path}: not a version {VERSION} trace (version {arrays.get('version')})")
    required = {"cell", "image", "probs", "model_probs", "row_nll", "label", "temperature", "seed",
                "keep_rows", "layers"}
    missing = required - set(arrays)
    if missing:
        raise ValueError(f"{path}: missing arrays {sorted(missing)}")
    cell = str(arrays["cell"])
    if cell not in STATE_NAMES:
        raise ValueError(f"{path}: unknown cell {cell!r}")
    image = arrays["image"]
    if image.ndim != 2:
        raise ValueError(f"{path}: image must be (H, W), got {image.shape}")
    H, W = image.shape
    for key, shape in (("probs", (H, W)), ("model_probs", (H, W)), ("row_nll", (H,))):
        if arrays[key].shape != shape:
            raise ValueError(f"{path}: {key} must have shape {shape}, got {arrays[key].shape}")
    layers = []
    for k in range(int(arrays["layers"])):
        layer = {}
        for name in STATE_NAMES[cell]:
            a = arrays.get(f"layer{k}/{name}")
            if a is None or a.ndim != 2 or a.shape[0] != H:
                raise ValueError(f"{path}: layer{k}/{name} missing or not (H={H}, hidden)")
            layer[name] = a
        layers.append(layer)
    if not layers:
        raise ValueError(f"{path}: a trace needs at least one layer")
    label, seed = arrays["label"], arrays["seed"]
    meta = {key[len("meta/"):]: _scalar(a) for key, a in arrays.items() if key.startswith("meta/")}
    return Trace(cell=cell, image=image, label=None if label.size == 0 else int(label),
                 probs=arrays["probs"], model_probs=arrays["model_probs"], row_nll=arrays["row_nll"], layers=layers,
                 temperature=float(arrays["temperature"]), seed=None if seed.size == 0 else int(seed),
                 keep_rows=int(arrays["keep_rows"]), latent=arrays.get("latent"), meta=meta)


# ---- sample grid -------------------------------------------------------------------------------
def sample_grid_png(model: RowModel, path: str | os.PathLike, digit: int | None = None, n: int = 10,
                    temperature: float = 1.0, seed: int = 0, scale: int = 4, any_class: bool = False) -> Path:
    """Sample and tile a grid (what ``python -m rnnviz.sample`` writes): for a class-conditional model
    one row of ``n`` per class, or ``n`` of ``digit``, or with ``any_class`` ``n`` of classes drawn at
    random; for other models ``n`` samples, 10 per row. Returns the path of the PNG."""
    C = model.config.num_classes
    if digit is not None and not (C and 0 <= digit < C):
        raise ValueError(f"digit must be in [0, {C - 1}]" if C else "this model is unconditional: no digit")
    if not (isinstance(n, int) and 1 <= n <= 1000):
        raise ValueError(f"n must be an integer in [1, 1000], got {n!r}")
    if not (isinstance(scale, int) and 1 <= scale <= 32):
        raise ValueError(f"scale must be an integer in [1, 32], got {scale!r}")
    if digit is not None:
        labels, cols = torch.full((n,), digit), min(n, 10)
    elif C and not any_class:
        labels, cols = torch.arange(C).repeat_interleave(n), n
    else:
        labels, cols = None, min(n, 10)
    s = model.sample(n if labels is None else len(labels), y=labels, temperature=temperature, seed=seed)
    path = Path(path)
    grid_image(s.images.cpu().numpy(), cols, scale).save(path, format="PNG")
    return path


# ---- command line ------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--digit", type=int, default=None, help="class of the traced sample (default: drawn by the seed)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--gif", default=None, help="animated GIF of the sample growing, with its gates")
    ap.add_argument("--npz", default=None, help="the sample's trace as .npz (see the keys in rnnviz/export.py)")
    ap.add_argument("--grid", default=None, help="PNG grid of samples")
    ap.add_argument("--layer", type=int, default=-1, help="GIF: which recurrent layer (default: the top one)")
    ap.add_argument("--names", default=None, help="GIF: comma-separated gates/states, e.g. i,f,o (default: all)")
    ap.add_argument("--fps", type=float, default=4.0, help="GIF: steps per second")
    ap.add_argument("--grid-n", type=int, default=10, help="grid: samples per class (or in all)")
    ap.add_argument("--scale", type=int, default=4, help="grid: pixels per image pixel")
    args = ap.parse_args(argv)
    outputs = [(args.gif, "--gif"), (args.npz, "--npz"), (args.grid, "--grid")]
    if not any(p for p, _ in outputs):
        raise SystemExit("error: nothing to write: give --gif, --npz and/or --grid")
    for p, flag in outputs:
        if p:
            check_output(p, flag)
    model = cli_model(args.checkpoint, args.digit)
    names = None if args.names is None else tuple(s.strip() for s in args.names.split(",") if s.strip())
    try:
        if args.gif or args.npz:
            (trace,) = sample_traces(model, 1, y=args.digit, temperature=args.temperature, seed=args.seed)
            if args.gif:
                trace_gif(trace, args.gif, names=names, layer=args.layer, fps=args.fps)
                print(f"wrote {args.gif}: {trace.steps} steps + the finished image")
            if args.npz:
                save_trace_npz(trace, args.npz)
                print(f"wrote {args.npz}: trace of a {'sample' if trace.label is None else f'digit {trace.label}'}, "
                      f"seed {args.seed}")
        if args.grid:
            sample_grid_png(model, args.grid, digit=args.digit, n=args.grid_n, temperature=args.temperature,
                            seed=args.seed, scale=args.scale)
            print(f"wrote {args.grid}")
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    except OSError as e:
        raise SystemExit(f"error: cannot write: {e}")


if __name__ == "__main__":
    main()
