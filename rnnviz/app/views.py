"""Pure view builders: traces and training snapshots in, images, HTML and figures out.

Nothing here holds state, touches Gradio or runs a model. The step views (``canvas_html``,
``gates_html``) are sent on every scrub, so they are small: native-resolution PNGs inlined as data
URIs and scaled up by the browser with ``image-rendering: pixelated`` (crisp, a few KB per step, no
temporary files). The units x time figure (``units_time_figure``) is sent once per trace and layer;
its cursor is moved in the browser (see ``CURSOR_JS`` in ``ui.py``), using the shape names below.

Colour scales: sigmoid gates (LSTM i, f, o; GRU r, z) live in [0, 1] and use a sequential scale
(viridis); tanh outputs (g, n, h) live in [-1, 1] and use a diverging scale (blue < 0 < red); the
LSTM cell state c is unbounded, so it gets a diverging scale symmetric around 0 that is fixed per
trace and layer (so colours compare across steps).
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

from ..cells import DESCRIPTIONS
from ..sample import grid_image
from ..trace import Trace

# ---- colour scales -----------------------------------------------------------------------------
VIRIDIS = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
           "#b5de2b", "#fde725")
BLUE_WHITE_RED = ("#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7",
                  "#f4a582", "#d6604d", "#b2182b", "#67001f")
INFERNO = ("#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06",
           "#f7d13d", "#fcffa4")
NAN_RGB = (128, 128, 128)  # padding cells of a unit grid
SIGMOID = frozenset("ifozr")  # gates in [0, 1]

# canvas colours (RGB)
INK, PAPER = (245, 245, 245), (0, 0, 0)  # generated rows
KEPT_INK, KEPT_PAPER = (125, 200, 255), (8, 22, 40)  # rows copied from the given image (completion)
FUTURE = (34, 38, 52)  # rows not drawn yet
ROW_MARK = "#22d3ee"

CURSOR, BAND = "cursor", "band"  # names of the figure shapes that follow the step


def _hex_rgb(c: str) -> tuple[int, int, int]:
    c = c.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


@lru_cache(maxsize=16)
def _lut(anchors: tuple[str, ...], n: int = 256) -> np.ndarray:
    """(n, 3) uint8 lookup table interpolating the anchor colours evenly."""
    rgb = np.array([_hex_rgb(a) for a in anchors], np.float64)
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


GATE_SCALE = Scale(0.0, 1.0, VIRIDIS)
TANH_SCALE = Scale(-1.0, 1.0, BLUE_WHITE_RED)
PROB_SCALE = Scale(0.0, 1.0, INFERNO)


def state_scale(name: str, values: np.ndarray | None = None) -> Scale:
    """The scale for one gate/state. ``values``: all steps of ``c`` (to fix its symmetric range)."""
    if name in SIGMOID:
        return GATE_SCALE
    if name == "c":
        m = 1.0 if values is None or values.size == 0 else float(np.percentile(np.abs(values), 99.5))
        m = max(1.0, math.ceil(m * 2) / 2)  # at least the tanh range, rounded up to 0.5
        return Scale(-m, m, BLUE_WHITE_RED)
    return TANH_SCALE


def colorize(values: np.ndarray, scale: Scale) -> np.ndarray:
    """Map an array of values onto RGB uint8 (shape + (3,)); NaN becomes grey."""
    lut = _lut(scale.anchors)
    v = np.asarray(values, np.float32)
    nan = np.isnan(v)
    x = (np.nan_to_num(v, nan=scale.vmin) - scale.vmin) / max(scale.vmax - scale.vmin, 1e-12)
    idx = np.clip(np.rint(x * (len(lut) - 1)), 0, len(lut) - 1).astype(np.intp)
    out = lut[idx]
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
    """The canvas while row ``step`` is drawn, (H, W, 3) uint8: rows before it as drawn (rows kept
    from a given image in blue), row ``step`` as the probabilities the head gave (inferno), later
    rows empty. ``step == H`` shows the finished image."""
    H, W = trace.image.shape
    step = int(np.clip(step, 0, H))
    rgb = np.empty((H, W, 3), np.uint8)
    rgb[:] = FUTURE
    ink = trace.image.astype(bool)
    kept = min(trace.keep_rows, step)
    _fill(rgb, slice(0, kept), ink[:kept], KEPT_INK, KEPT_PAPER)
    _fill(rgb, slice(kept, step), ink[kept:step], INK, PAPER)
    if step < H:
        rgb[step] = colorize(trace.probs[step], PROB_SCALE)
    return rgb


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
    _fill(rgb, slice(keep, H), ink[keep:], (70, 74, 90), FUTURE)
    return Image.fromarray(upscale(rgb, scale))


# ---- step views (sent on every scrub) ----------------------------------------------------------
def _fmt(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}".replace("-", "\u2212")


def canvas_html(trace: Trace, step: int) -> str:
    """The canvas at ``step`` (large, crisp, the current row outlined), the finished image, a
    legend and a caption with the row's NLL."""
    H = trace.steps
    step = int(np.clip(step, 0, H - 1))
    top, height = 100 * step / H, 100 / H
    kept = " (kept)" if step < trace.keep_rows else ""
    legend = [f'<span class="rv-sw" style="background:rgb{INK}"></span>drawn']
    if trace.keep_rows:
        legend.append(f'<span class="rv-sw" style="background:rgb{KEPT_INK}"></span>kept')
    legend.append(f'<span class="rv-sw" style="background:{PROB_SCALE.css_gradient()}"></span>p(on), row {step}')
    return (
        f'<div class="rv-canvas-wrap" data-step="{step}"><div class="rv-canvas-col">'
        f'<div class="rv-canvas"><img class="rv-px" alt="canvas at step {step}" '
        f'src="{data_uri(canvas_rgb(trace, step))}">'
        f'<div class="rv-rowmark" style="top:{top:.4f}%;height:{height:.4f}%"></div></div>'
        f'<div class="rv-stepinfo"><b>step {step}</b>/{H - 1}: row {step}{kept} cost '
        f'<b>{_fmt(float(trace.row_nll[step]))}</b> nats; {_fmt(float(trace.row_nll[:step + 1].sum()), 1)} '
        f'of {_fmt(trace.nll, 1)} so far</div></div>'
        f'<div class="rv-side"><div class="rv-final"><img class="rv-px" alt="finished image" '
        f'src="{data_uri(image_rgb(trace))}"><span>finished</span></div>'
        f'<div class="rv-legend">{"<br>".join(legend)}</div></div></div>')


def _scale_labels(scale: Scale) -> tuple[str, str, str]:
    lo, hi = scale.vmin, scale.vmax
    return _fmt(lo, 1 if lo % 1 else 0), _fmt((lo + hi) / 2, 1 if (lo + hi) % 2 else 0), _fmt(hi, 1 if hi % 1 else 0)


def gate_stats(name: str, vec: np.ndarray) -> str:
    """One line of statistics: saturation for gates, mean |value| for the rest."""
    if name in SIGMOID:
        return (f"{100 * float(np.mean(vec < 0.1)):.0f}% &lt;0.1 \u00b7 "
                f"{100 * float(np.mean(vec > 0.9)):.0f}% &gt;0.9")
    return f"mean |{name}| {_fmt(float(np.mean(np.abs(vec))))} \u00b7 max {_fmt(float(np.max(np.abs(vec))))}"


def gates_html(trace: Trace, step: int, layer: int = -1) -> str:
    """Every gate and state of one layer at ``step``, units laid out as a grid, with scales."""
    H = trace.steps
    step = int(np.clip(step, 0, H - 1))
    states = trace.layers[layer]
    cards = []
    for name in trace.names:
        series = states[name]
        scale = state_scale(name, series)
        vec = series[step]
        rgb = colorize(units_to_grid(vec), scale)
        lo, mid, hi = _scale_labels(scale)
        desc = html.escape(DESCRIPTIONS.get(name, name))
        cards.append(
            f'<figure class="rv-gate" title="{desc}"><figcaption><b>{name}</b> '
            f'<span>{html.escape(DESCRIPTIONS.get(name, "").split(":")[0])}</span></figcaption>'
            f'<img class="rv-px" alt="{name} at step {step}" src="{data_uri(rgb)}">'
            f'<div class="rv-cbar" style="background:{scale.css_gradient()}"></div>'
            f'<div class="rv-cbar-labels"><span>{lo}</span><span>{mid}</span><span>{hi}</span></div>'
            f'<div class="rv-stats">{gate_stats(name, vec)}</div></figure>')
    n = series.shape[1]
    rows, cols = unit_grid_shape(n)
    nlayers = len(trace.layers)
    which = f"layer {(layer % nlayers) + 1} of {nlayers}, " if nlayers > 1 else ""
    return (f'<div class="rv-gates-wrap" data-step="{step}"><div class="rv-gates-head">'
            f'{trace.cell.upper()} {which}step {step}: {n} units as a {rows}\u00d7{cols} grid '
            f'(unit 0 top left, row by row)</div><div class="rv-gates">{"".join(cards)}</div></div>')


# ---- units x time figure (sent once per trace and layer) ----------------------------------------
def _typed(a: np.ndarray) -> dict:
    """A plotly.js typed array (base64 float32): a quarter of the size of JSON numbers."""
    a = np.ascontiguousarray(a, dtype="<f4")
    out = {"dtype": "f4", "bdata": base64.b64encode(a.tobytes()).decode("ascii")}
    if a.ndim > 1:
        out["shape"] = ", ".join(str(s) for s in a.shape)
    return out


def units_time_figure(trace: Trace, layer: int = -1, step: int = 0, cols: int = 3) -> dict:
    """Plotly figure (as a dict) of every gate/state of one layer, units x timesteps, under a bar
    chart of each row's NLL. A cursor (shapes named ``CURSOR``/``BAND``) marks ``step``; hover shows
    unit, step and value. Returns a plain dict (``plotly.graph_objects.Figure(d)`` accepts it)."""
    names = trace.names
    states = trace.layers[layer]
    H, n = states[names[0]].shape
    cols = max(1, min(cols, len(names)))
    rows = math.ceil(len(names) / cols)
    top_px, panel_px, gap_px, margin_t, margin_b = 120, 230, 48, 30, 40
    height = margin_t + top_px + rows * (panel_px + gap_px) + margin_b
    plot_h = height - margin_t - margin_b

    def y_dom(top: float, h: float) -> list[float]:  # pixels from the top of the plot area -> paper
        return [round(1 - (top + h) / plot_h, 4), round(1 - top / plot_h, 4)]

    steps = np.arange(H, dtype=np.float32)
    kept = trace.keep_rows
    bar_colors = ["#9aa5b1" if t < kept else "#f97316" for t in range(H)]
    data = [{"type": "bar", "x": _typed(steps), "y": _typed(trace.row_nll), "xaxis": "x", "yaxis": "y",
             "marker": {"color": bar_colors}, "name": "row NLL",
             "hovertemplate": "row %{x}<br>NLL %{y:.2f} nats<extra></extra>"}]
    layout = {
        "height": height, "template": "none", "showlegend": False, "hovermode": "closest",
        "margin": {"l": 50, "r": 90, "t": margin_t, "b": margin_b},
        "font": {"size": 11}, "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
        "xaxis": {"domain": [0, 1], "range": [-0.5, H - 0.5], "anchor": "y", "dtick": 1, "tickfont": {"size": 9}},
        "yaxis": {"domain": y_dom(0, top_px - 20), "title": {"text": "row NLL"}, "anchor": "x",
                  "rangemode": "tozero"},
        "shapes": [], "annotations": [],
    }
    axes = [("x", "y", y_dom(0, top_px - 20))]
    coloraxes: dict[str, tuple[str, Scale]] = {}
    col_w, col_gap = 1 / cols, 0.04
    for k, name in enumerate(names):
        r, c = divmod(k, cols)
        ax = k + 2
        xdom = [round(c * col_w + (col_gap / 2 if c else 0), 4),
                round((c + 1) * col_w - (col_gap / 2 if c < cols - 1 else 0), 4)]
        ydom = y_dom(top_px + gap_px * 0.6 + r * (panel_px + gap_px), panel_px)
        scale = state_scale(name, states[name])
        kind = "gate" if name in SIGMOID else ("cell" if name == "c" else "tanh")
        if kind not in coloraxes:
            coloraxes[kind] = (f"coloraxis{len(coloraxes) + 1 if coloraxes else ''}", scale)
        cax = coloraxes[kind][0]
        data.append({"type": "heatmap", "z": _typed(states[name].T), "x0": 0, "dx": 1, "y0": 0, "dy": 1,
                     "xaxis": f"x{ax}", "yaxis": f"y{ax}", "coloraxis": cax, "name": name,
                     "hovertemplate": f"unit %{{y}}<br>step %{{x}}<br>{name} = %{{z:.3f}}<extra></extra>"})
        layout[f"xaxis{ax}"] = {"domain": xdom, "anchor": f"y{ax}", "range": [-0.5, H - 0.5],
                                "showgrid": False, "ticks": "outside", "dtick": 7}
        layout[f"yaxis{ax}"] = {"domain": ydom, "anchor": f"x{ax}", "range": [n - 0.5, -0.5],
                                "showgrid": False, "title": {"text": "unit" if c == 0 else ""}}
        axes.append((f"x{ax}", f"y{ax}", ydom))
        layout["annotations"].append({"text": f"<b>{name}</b>  {DESCRIPTIONS.get(name, '').split(':')[0]}",
                                      "xref": "paper", "yref": "paper", "x": xdom[0], "y": ydom[1],
                                      "xanchor": "left", "yanchor": "bottom", "showarrow": False})
    titles = {"gate": "gates", "tanh": "tanh", "cell": "c"}
    for k, (kind, (cax, scale)) in enumerate(coloraxes.items()):
        length = 0.8 / len(coloraxes)
        layout[cax] = {"colorscale": scale.colorscale(), "cmin": scale.vmin, "cmax": scale.vmax,
                       "colorbar": {"title": {"text": titles[kind]}, "len": length * 0.85, "thickness": 12,
                                    "y": 0.8 - k * length - length / 2, "yanchor": "middle", "x": 1.02}}
    for x, y, ydom in axes:
        layout["shapes"].append({"type": "line", "name": CURSOR, "xref": x, "yref": "paper",
                                 "x0": step, "x1": step, "y0": ydom[0], "y1": ydom[1],
                                 "line": {"color": ROW_MARK, "width": 2}})
    layout["shapes"].append({"type": "rect", "name": BAND, "xref": "x", "yref": "paper", "x0": step - 0.5,
                             "x1": step + 0.5, "y0": axes[0][2][0], "y1": axes[0][2][1],
                             "fillcolor": ROW_MARK, "opacity": 0.25, "line": {"width": 0}, "layer": "below"})
    return {"data": data, "layout": layout}


def empty_figure(message: str) -> dict:
    return {"data": [], "layout": {"template": "none", "height": 200, "xaxis": {"visible": False},
                                   "yaxis": {"visible": False},
                                   "annotations": [{"text": html.escape(message), "showarrow": False,
                                                    "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}]}}


# ---- text ------------------------------------------------------------------------------------
def trace_summary(trace: Trace, model_name: str) -> str:
    """Markdown: what this trace is."""
    what = "completion" if trace.keep_rows else "sample"
    label = "unconditional" if trace.label is None else f"digit **{trace.label}**"
    extra = f", first {trace.keep_rows} rows kept" if trace.keep_rows else ""
    seed = "" if trace.seed is None else f", seed {trace.seed}"
    return (f"**{model_name}**: {what} of {label}{extra}, temperature {trace.temperature:g}{seed}. "
            f"NLL {trace.nll:.1f} nats (\u2212log p(image | digit) under the model, temperature 1).")


def model_summary(config, metrics: dict, name: str) -> str:
    """Markdown line describing a checkpoint."""
    nll = metrics.get("test_nll")
    parts = [f"**{name}**: {config.cell.upper()}, {config.layers} \u00d7 {config.hidden} units"]
    if metrics.get("parameters"):
        parts.append(f"{int(metrics['parameters']) / 1e6:.2f} M parameters")
    if nll is not None:
        parts.append(f"test NLL {float(nll):.2f} nats")
    if metrics.get("dataset"):
        parts.append(f"trained on {metrics['dataset']}")
    if metrics.get("train_seconds"):
        parts.append(f"{float(metrics['train_seconds']) / 60:.0f} min, {int(metrics.get('step', 0))} steps")
    return " \u00b7 ".join(parts)


# ---- training --------------------------------------------------------------------------------
def downsample(xs: list, max_points: int) -> list:
    """Every k-th item so that at most ``max_points`` remain (always keeping the last)."""
    if len(xs) <= max_points:
        return list(xs)
    k = math.ceil(len(xs) / max_points)
    out = list(xs[::k])
    if out[-1] is not xs[-1]:
        out.append(xs[-1])
    return out


def curve_rows(history: list[dict], max_points: int = 400) -> list[dict]:
    """Long-format rows {step, nats, series} for a line plot: train loss (downsampled) and every
    test NLL (there are few)."""
    train = [h for h in history if h.get("train_loss") is not None and math.isfinite(h["train_loss"])]
    rows = [{"step": h["step"], "nats": round(float(h["train_loss"]), 3), "series": "train loss"}
            for h in downsample(train, max_points)]
    rows += [{"step": h["step"], "nats": round(float(h["test_nll"]), 3), "series": "test NLL"}
             for h in history if h.get("test_nll") is not None and math.isfinite(h["test_nll"])]
    return rows


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"


def training_status(snap: dict | None, run: dict | None = None) -> str:
    """Markdown status of the training run: state, progress, speed, latest losses."""
    if snap is None:
        return "No training run yet. Choose the settings and press **Start**."
    hist = [h for h in snap["history"] if h.get("samples_per_s")]
    speed = f"{hist[-1]['samples_per_s']:.0f} images/s" if hist else "\u2013"
    loss = next((h["train_loss"] for h in reversed(snap["history"])
                 if h.get("train_loss") is not None and math.isfinite(h["train_loss"])), None)
    test = next((h["test_nll"] for h in reversed(snap["history"]) if h.get("test_nll") is not None), None)
    state = snap["state"] + (" (paused)" if snap.get("paused") and snap["state"] == "running" else "")
    lines = [f"**{state}**: {html.escape(snap.get('message') or '')}"]
    if run:
        lines.append(f"{run['summary']} \u00b7 started {run['started']} by {run['who']}")
    going = snap["state"] in ("running", "paused")
    left = f"{_duration(snap['seconds_left'])} left \u00b7 " if going else ""
    lines.append(f"step {snap['step']} \u00b7 {_duration(snap['seconds'])} trained \u00b7 {left}{speed}")
    dash = "\u2013"
    lines.append(f"train loss {dash if loss is None else f'{loss:.2f}'} nats \u00b7 "
                 f"test NLL {dash if test is None else f'{test:.2f}'} nats")
    if snap.get("checkpoint"):
        lines.append(f"checkpoint: `{snap['checkpoint']}`")
    return "  \n".join(lines)


def sample_grid(samples: np.ndarray | None, cols: int = 10, scale: int = 3) -> Image.Image | None:
    """The trainer's latest samples as one crisp grid image."""
    if samples is None or len(samples) == 0:
        return None
    return grid_image(np.asarray(samples, np.float32), min(cols, len(samples)), scale)
