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
import math

import numpy as np
from PIL import Image

from ..cells import DESCRIPTIONS
from ..render import (BAND, BLUE_WHITE_RED, CURSOR, FUTURE, GATE_SCALE, INFERNO, INK, KEPT_INK,  # noqa: F401
                      KEPT_PAPER, NAN_RGB, PAPER, PROB_SCALE, ROW_MARK, SIGMOID, TANH_SCALE, VIRIDIS, Scale,
                      canvas_rgb, colorize, data_uri, digit_thumbnail, grid_image, image_rgb, png_bytes,
                      prefix_preview, state_scale, thumbnail, unit_grid_shape, units_to_grid, upscale)
from ..trace import Trace

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


def gates_html(trace: Trace, step: int, layer: int = -1, names: tuple[str, ...] | None = None) -> str:
    """Every gate and state (or only ``names``) of one layer at ``step``, units laid out as a grid,
    with scales."""
    H = trace.steps
    step = int(np.clip(step, 0, H - 1))
    states = trace.layers[layer]
    cards = []
    for name in (names or trace.names):
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


# ---- analyses (results of rnnviz.analysis in, plotly figure dicts out) --------------------------
GATE_COLORS = {"i": "#38bdf8", "f": "#f97316", "o": "#a3e635", "r": "#f472b6", "z": "#facc15"}
GREY_SCALE = [[0.0, "#000000"], [1.0, "#f5f5f5"]]  # binary images: ink white on black, as the canvas


def saturation_figure(sat: dict | None) -> dict:
    """Karpathy et al. (2015) Fig. 4 for one layer: a panel per gate, a point per unit at (fraction
    of steps left-saturated, fraction right-saturated); every point lies in the triangle x + y <= 1.
    Points near the left edge never switch off, near the bottom never fully on; points on the
    diagonal are always saturated one way or the other. Hover shows the unit. ``sat`` is a
    ``rnnviz.analysis.gate_saturation`` result (None: nothing measured yet). Returns a plain dict
    (``plotly.graph_objects.Figure(d)`` accepts it)."""
    if sat is None:
        return empty_figure("no gate saturation measured yet")
    gates = tuple(sat["gates"])
    if not gates:
        return empty_figure(sat.get("message") or "this cell has no gates")
    lo, hi = sat["low_threshold"], sat["high_threshold"]
    n = len(gates)
    gap = 0.06
    width = (1 - gap * (n - 1)) / n
    data, annotations, shapes = [], [], []
    layout = {"height": 360, "template": "none", "hovermode": "closest", "showlegend": False,
              "margin": {"l": 60, "r": 20, "t": 60, "b": 50}, "font": {"size": 11},
              "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)"}
    for k, g in enumerate(gates):
        ax = "" if k == 0 else str(k + 1)
        x0 = k * (width + gap)
        units = np.arange(len(sat["low"][g]))
        data.append({"type": "scatter", "mode": "markers", "x": np.round(sat["low"][g], 4).tolist(),
                     "y": np.round(sat["high"][g], 4).tolist(), "customdata": units.tolist(),
                     "xaxis": f"x{ax}", "yaxis": f"y{ax}", "name": g,
                     "marker": {"color": GATE_COLORS.get(g, "#9aa5b1"), "size": 7, "opacity": 0.75,
                                "line": {"width": 0.5, "color": "#111827"}},
                     "hovertemplate": (f"{g} unit %{{customdata}}<br>&lt; {lo:g}: %{{x:.1%}} of steps<br>"
                                       f"&gt; {hi:g}: %{{y:.1%}} of steps<extra></extra>")})
        layout[f"xaxis{ax}"] = {"domain": [round(x0, 4), round(x0 + width, 4)], "range": [-0.03, 1.03],
                                "anchor": f"y{ax}", "title": {"text": f"fraction &lt; {lo:g} (left-saturated)"},
                                "zeroline": False, "tickformat": ".0%"}
        layout[f"yaxis{ax}"] = {"domain": [0, 1], "range": [-0.03, 1.03], "anchor": f"x{ax}",
                                "title": {"text": f"fraction &gt; {hi:g} (right-saturated)" if k == 0 else ""},
                                "zeroline": False, "tickformat": ".0%", "scaleanchor": f"x{ax}"}
        shapes.append({"type": "line", "xref": f"x{ax}", "yref": f"y{ax}", "x0": 0, "y0": 1, "x1": 1, "y1": 0,
                       "line": {"color": "#9aa5b1", "width": 1, "dash": "dot"}})
        annotations.append({"text": f"<b>{g}</b> {html.escape(DESCRIPTIONS.get(g, g).split(':')[0])}",
                            "xref": "paper", "yref": "paper", "x": x0 + width / 2, "y": 1.02,
                            "xanchor": "center", "yanchor": "bottom", "showarrow": False})
    annotations.append({"text": html.escape(f"{sat['cell'].upper()} layer {sat['layer'] + 1}: {sat['units']} units, "
                                            f"{sat['images']} images \u00d7 {sat['steps']} steps"),
                        "xref": "paper", "yref": "paper", "x": 0, "y": 1.12, "xanchor": "left",
                        "yanchor": "bottom", "showarrow": False, "font": {"size": 12}})
    layout.update(shapes=shapes, annotations=annotations)
    return {"data": data, "layout": layout}


def forcing_figure(cmp, layer: int = -1) -> dict:
    """Teacher forcing vs free running for one digit (``rnnviz.analysis.ForcingComparison``): the
    true image and the model's p(on) given the true rows, beside the image the model drew itself and
    the p(on) it drew with; below, the distance between the two runs' hidden (and cell) states per
    step. A line marks the first row the free run drew differently (the states can part only after
    it); rows copied from the true image are shaded. Returns a plain plotly figure dict."""
    H, W = cmp.true_image.shape
    L = cmp.h_distance.shape[0]
    k = layer % L
    panels = [("true image", cmp.true_image, None), ("teacher forced p(on)", cmp.forced_probs, "coloraxis"),
              ("free running image", cmp.free.image, None), ("free running p(on)", cmp.free_probs, "coloraxis")]
    gap, top = 0.04, 0.42  # the image row takes the top 58% of the plot
    width = (1 - gap * 3) / 4
    data, shapes, annotations = [], [], []
    layout = {"height": 560, "template": "none", "hovermode": "closest", "showlegend": True,
              "legend": {"orientation": "h", "x": 0, "y": -0.12}, "font": {"size": 11},
              "margin": {"l": 50, "r": 70, "t": 40, "b": 50},
              "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
              "coloraxis": {"colorscale": PROB_SCALE.colorscale(), "cmin": 0, "cmax": 1,
                            "colorbar": {"title": {"text": "p(on)"}, "len": 0.5, "y": 0.78, "thickness": 12}}}
    diff, kept = cmp.first_diff_row, cmp.keep_rows
    for j, (title, z, cax) in enumerate(panels):
        ax = str(j + 1) if j else ""
        x0 = j * (width + gap)
        trace = {"type": "heatmap", "z": _typed(np.asarray(z, np.float32)), "x0": 0, "dx": 1, "y0": 0, "dy": 1,
                 "xaxis": f"x{ax}", "yaxis": f"y{ax}", "name": title, "showlegend": False,
                 "hovertemplate": f"row %{{y}}, col %{{x}}<br>{title} %{{z:.2f}}<extra></extra>"}
        trace.update({"coloraxis": cax} if cax else {"colorscale": GREY_SCALE, "zmin": 0, "zmax": 1,
                                                     "showscale": False})
        data.append(trace)
        layout[f"xaxis{ax}"] = {"domain": [round(x0, 4), round(x0 + width, 4)], "range": [-0.5, W - 0.5],
                                "anchor": f"y{ax}", "showgrid": False, "zeroline": False, "showticklabels": False}
        layout[f"yaxis{ax}"] = {"domain": [top + 0.06, 1], "range": [H - 0.5, -0.5], "anchor": f"x{ax}",
                                "showgrid": False, "zeroline": False, "scaleanchor": f"x{ax}",
                                "showticklabels": j == 0, "dtick": 7}
        annotations.append({"text": f"<b>{title}</b>", "xref": "paper", "yref": "paper", "x": x0 + width / 2,
                            "y": 1.0, "xanchor": "center", "yanchor": "bottom", "showarrow": False})
        if j >= 2 and kept:
            shapes.append({"type": "rect", "xref": f"x{ax}", "yref": f"y{ax}", "x0": -0.5, "x1": W - 0.5,
                           "y0": -0.5, "y1": kept - 0.5, "line": {"color": "#7dc8ff", "width": 2}})
        if diff is not None:
            shapes.append({"type": "line", "xref": f"x{ax}", "yref": f"y{ax}", "x0": -0.5, "x1": W - 0.5,
                           "y0": diff - 0.5, "y1": diff - 0.5, "line": {"color": ROW_MARK, "width": 2}})
    steps = np.arange(H).tolist()
    hover = "step %{x}<br>%{y:.3f}<br>row mismatch above: %{customdata} px<extra></extra>"
    above = np.concatenate([[0], np.asarray(cmp.row_mismatch)[:-1]]).tolist()  # step t read row t-1
    lines = [("h", cmp.h_distance[k], "solid")]
    if cmp.c_distance is not None:
        lines.append(("c", cmp.c_distance[k], "dash"))
    for name, dist, dash in lines:
        data.append({"type": "scatter", "mode": "lines+markers", "x": steps, "y": np.round(dist, 5).tolist(),
                     "customdata": above, "xaxis": "x5", "yaxis": "y5", "name": f"\u2016{name} forced \u2212 "
                     f"{name} free\u2016" + (f" (layer {k + 1})" if L > 1 else ""),
                     "line": {"dash": dash, "color": "#f97316" if name == "h" else "#38bdf8"},
                     "marker": {"size": 4}, "hovertemplate": hover})
    layout["xaxis5"] = {"domain": [0, 1], "range": [-0.5, H - 0.5], "anchor": "y5", "dtick": 1,
                        "title": {"text": "step (= row)"}, "tickfont": {"size": 9}}
    layout["yaxis5"] = {"domain": [0, top - 0.04], "anchor": "x5", "rangemode": "tozero",
                        "title": {"text": "L2 distance"}}
    if kept:
        shapes.append({"type": "rect", "xref": "x5", "yref": "paper", "x0": -0.5, "x1": kept - 0.5, "y0": 0,
                       "y1": top - 0.04, "fillcolor": "#7dc8ff", "opacity": 0.15, "line": {"width": 0},
                       "layer": "below"})
    if diff is not None:
        shapes.append({"type": "line", "xref": "x5", "yref": "paper", "x0": diff, "x1": diff, "y0": 0,
                       "y1": top - 0.04, "line": {"color": ROW_MARK, "width": 2, "dash": "dot"}})
        annotations.append({"text": f"first differing row: {diff}", "xref": "x5", "yref": "paper", "x": diff,
                            "y": top - 0.04, "xanchor": "left", "yanchor": "top", "showarrow": False})
    else:
        annotations.append({"text": "the free run drew the true image", "xref": "paper", "yref": "paper",
                            "x": 0, "y": top - 0.04, "xanchor": "left", "yanchor": "top", "showarrow": False})
    layout.update(shapes=shapes, annotations=annotations)
    return {"data": data, "layout": layout}


# ---- linked step views: several traces on one slider (Compare cells, Intervene, Reconstruct) ----
CELL_COLORS = {"lstm": "#f97316", "gru": "#38bdf8", "rnn": "#a3e635"}
COLUMN_STATES = {"lstm": ("f", "c", "h"), "gru": ("z", "h"), "rnn": ("h",)}  # compact columns: memory + h
DIFF_ADDED, DIFF_REMOVED, DIFF_BOTH = (230, 80, 60), (60, 140, 235), (105, 105, 105)  # +1 red, -1 blue


def empty_column_html(button: str = "") -> str:
    """A column before anything was run: an empty canvas and which button to press."""
    hint = f"Press <b>{html.escape(button)}</b>." if button else ""
    return (f'<div class="rv-col rv-col-empty"><div class="rv-canvas"></div>'
            f'<div class="rv-col-hint">{hint}</div></div>')


def column_title_html(name: str, config, metrics: dict, trace: Trace, what: str = "this sample") -> str:
    """A column's title: the model, its test NLL (and how it was measured) and ``trace``'s NLL."""
    nll, protocol = metrics.get("test_nll"), metrics.get("test_nll_protocol")
    arch = f"{config.cell.upper()} {config.layers}\u00d7{config.hidden}"
    if getattr(config, "latent", 0):
        arch += f", VAE z\u2208R<sup>{config.latent}</sup>"
    test = "test NLL not recorded" if nll is None else f"test NLL <b>{float(nll):.2f}</b> nats"
    how = html.escape(str(protocol or "how it was measured is not recorded"))
    given = " | z" if trace.latent is not None else (" | digit" if trace.label is not None else "")
    color = CELL_COLORS.get(trace.cell, "#9aa5b1")
    return (f'<div class="rv-col-title"><div class="rv-line"><span class="rv-dot" style="background:{color}"></span>'
            f'<b>{html.escape(name)}</b> \u00b7 {arch}</div><div>{test}</div>'
            f'<div class="rv-line rv-proto" title="{how}">{how}</div>'
            f'<div>{html.escape(what)}: <b>{_fmt(trace.nll, 1)}</b> nats '
            f'<span class="rv-proto">(\u2212log p(image{given}))</span></div></div>')


def step_column_html(trace: Trace, step: int, title: str = "", layer: int = -1,
                     names: tuple[str, ...] | None = None) -> str:
    """One column of a linked view at ``step``: title, canvas and the gate/state grids (``names``:
    which ones; None: all of the cell's)."""
    step = int(np.clip(step, 0, trace.steps - 1))
    return (f'<div class="rv-col" data-step="{step}">{title}{canvas_html(trace, step)}'
            f'{gates_html(trace, step, layer, names)}</div>')


def row_nll_figure(series: list[tuple[str, str, np.ndarray]], step: int = 0,
                   title: str = "NLL of each row (nats)") -> dict:
    """Per-row NLL of a few traces, one line each: ``series`` is (label, cell, row_nll). A cursor
    (shapes named ``CURSOR``/``BAND``) marks ``step``. Returns a plain plotly figure dict."""
    data = []
    H = 0
    dashes = ("solid", "dot", "dash", "dashdot")
    seen: dict[str, int] = {}
    for label, cell, nll in series:
        nll = np.asarray(nll, np.float32)
        H = max(H, nll.size)
        k = seen[cell] = seen.get(cell, -1) + 1  # two models of one cell: another dash
        data.append({"type": "scatter", "mode": "lines+markers", "name": f"{label} ({_fmt(float(nll.sum()), 1)})",
                     "x": list(range(nll.size)), "y": np.round(nll, 3).tolist(),
                     "line": {"color": CELL_COLORS.get(cell, "#9aa5b1"), "width": 2, "dash": dashes[k % 4]},
                     "marker": {"size": 5},
                     "hovertemplate": f"{html.escape(label)}<br>row %{{x}}: %{{y:.2f}} nats<extra></extra>"})
    H = H or 28
    layout = {"height": 320, "template": "none", "hovermode": "x unified", "font": {"size": 12},
              "margin": {"l": 60, "r": 20, "t": 60, "b": 45},
              "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
              "title": {"text": f"<b>{html.escape(title)}</b>", "x": 0, "xref": "paper", "xanchor": "left",
                        "y": 1, "yref": "container", "yanchor": "top", "pad": {"t": 8}, "font": {"size": 13}},
              "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
              "xaxis": {"range": [-0.5, H - 0.5], "dtick": 1, "tickfont": {"size": 10},
                        "title": {"text": "row = step (the band is the slider's step)"}},
              "yaxis": {"rangemode": "tozero", "title": {"text": "nats"}},
              "shapes": [{"type": "rect", "name": BAND, "xref": "x", "yref": "paper", "x0": step - 0.5,
                          "x1": step + 0.5, "y0": 0, "y1": 1, "fillcolor": ROW_MARK, "opacity": 0.2,
                          "line": {"width": 0}, "layer": "below"},
                         {"type": "line", "name": CURSOR, "xref": "x", "yref": "paper", "x0": step, "x1": step,
                          "y0": 0, "y1": 1, "line": {"color": ROW_MARK, "width": 2}}]}
    return {"data": data, "layout": layout}


def intervened_steps(changes, height: int) -> list[int]:
    """The steps any of ``changes`` (``rnnviz.interventions`` Intervention/RowEdit) applies to."""
    steps = set()
    for ch in changes:
        if hasattr(ch, "steps"):
            steps.update(ch.steps(height))
        else:
            steps.add(int(ch.step))
    return sorted(steps)


def _runs(steps: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted steps as (first, last)."""
    out: list[tuple[int, int]] = []
    for t in steps:
        if out and t == out[-1][1] + 1:
            out[-1] = (out[-1][0], t)
        else:
            out.append((t, t))
    return out


def diff_rgb(original: np.ndarray, intervened: np.ndarray) -> np.ndarray:
    """(H, W, 3): red where only the intervened image has ink (+1), blue where only the original
    has (-1), grey where both have, black where neither."""
    a, b = np.asarray(original).astype(bool), np.asarray(intervened).astype(bool)
    rgb = np.zeros(a.shape + (3,), np.uint8)
    rgb[a & b] = DIFF_BOTH
    rgb[b & ~a] = DIFF_ADDED
    rgb[a & ~b] = DIFF_REMOVED
    return rgb


def _delta_scale(diff: np.ndarray) -> Scale:
    m = float(np.percentile(np.abs(diff), 99.5)) if diff.size else 0.0
    m = max(0.05, math.ceil(m * 20) / 20)  # fixed per comparison, rounded up to 0.05
    return Scale(-m, m, BLUE_WHITE_RED)


def diff_html(cmp, step: int, layer: int = -1) -> str:
    """The difference column of an intervention (``rnnviz.interventions.Comparison``) at ``step``:
    the image difference (+1 red, -1 blue, both grey) with the intervened steps bracketed and the
    current row outlined, and the change of h (and c) at ``step`` as unit grids."""
    orig, new = cmp.original, cmp.intervened
    H = orig.steps
    step = int(np.clip(step, 0, H - 1))
    d = cmp.image_diff
    added, removed = int((d > 0).sum()), int((d < 0).sum())
    first = cmp.first_changed_row
    brackets = "".join(
        f'<div class="rv-ivbar" title="intervened steps {a}-{b}" style="top:{100 * a / H:.4f}%;'
        f'height:{100 * (b - a + 1) / H:.4f}%"></div>' for a, b in _runs(intervened_steps(cmp.changes, H)))
    top, height = 100 * step / H, 100 / H
    steps_note = "; yellow: the intervened steps"
    if first is None:
        caption, short = "the two images are identical" + steps_note, "identical images"
    else:
        caption = (f'<span style="color:rgb{DIFF_ADDED}">+1: {added} pixels</span> only with the intervention, '
                   f'<span style="color:rgb{DIFF_REMOVED}">\u22121: {removed}</span> only without{steps_note}')
        short = f"first changed row {first}"
    cards = []
    for name in [n for n in ("c", "h") if n in orig.names]:
        series = cmp.state_diff(name, layer)
        scale = _delta_scale(series)
        vec = series[step]
        lo, mid, hi = _scale_labels(scale)
        cards.append(
            f'<figure class="rv-gate" title="{name} with the intervention minus without, at step {step}">'
            f'<figcaption><b>\u0394{name}</b> <span>change</span></figcaption>'
            f'<img class="rv-px" alt="change of {name} at step {step}" src="{data_uri(colorize(units_to_grid(vec), scale))}">'
            f'<div class="rv-cbar" style="background:{scale.css_gradient()}"></div>'
            f'<div class="rv-cbar-labels"><span>{lo}</span><span>{mid}</span><span>{hi}</span></div>'
            f'<div class="rv-stats">mean |\u0394{name}| {_fmt(float(np.mean(np.abs(vec))), 3)}</div></figure>')
    legend = "<br>".join([f'<span class="rv-sw" style="background:rgb{DIFF_ADDED}"></span>+1',
                          f'<span class="rv-sw" style="background:rgb{DIFF_REMOVED}"></span>\u22121',
                          f'<span class="rv-sw" style="background:rgb{DIFF_BOTH}"></span>both',
                          '<span class="rv-sw rv-sw-iv"></span>steps'])
    return (f'<div class="rv-col rv-diff" data-step="{step}"><div class="rv-col-title"><div><b>difference</b> '
            f'(with \u2212 without)</div><div>NLL {_fmt(orig.nll, 1)} \u2192 {_fmt(new.nll, 1)} nats '
            f'(<b>{"+" if new.nll >= orig.nll else ""}{_fmt(new.nll - orig.nll, 1)}</b>)</div>'
            f'<div class="rv-line rv-proto">{short}</div></div>'
            f'<div class="rv-canvas-wrap"><div class="rv-canvas-col"><div class="rv-canvas">'
            f'<img class="rv-px" alt="image difference" src="{data_uri(diff_rgb(orig.image, new.image))}">'
            f'<div class="rv-rowmark" style="top:{top:.4f}%;height:{height:.4f}%"></div>{brackets}</div>'
            f'<div class="rv-stepinfo">{caption}</div></div>'
            f'<div class="rv-side"><div class="rv-legend">{legend}</div></div></div>'
            f'<div class="rv-gates-wrap"><div class="rv-gates-head">change at step {step} (unit grids as on the '
            f'left)</div><div class="rv-gates">{"".join(cards)}</div></div></div>')


def intervention_figure(cmp, layer: int = -1, step: int = 0) -> dict:
    """Where an intervention's two runs part: mean |Δh| (and |Δc| for an LSTM) over the units per
    step, the intervened steps shaded and the first changed row marked; below, both runs' NLL per
    row. A cursor (shapes named ``CURSOR``/``BAND``) marks ``step``. A plain plotly figure dict."""
    orig = cmp.original
    H = orig.steps
    x = list(range(H))
    data = []
    for name, color in (("h", "#f97316"), ("c", "#38bdf8")):
        if name in orig.names:
            data.append({"type": "scatter", "mode": "lines+markers", "x": x, "xaxis": "x", "yaxis": "y",
                         "y": np.round(cmp.step_change(name, layer), 5).tolist(), "name": f"mean |\u0394{name}|",
                         "line": {"color": color, "width": 2, "dash": "solid" if name == "h" else "dash"},
                         "marker": {"size": 5},
                         "hovertemplate": f"step %{{x}}: mean |\u0394{name}| %{{y:.4f}}<extra></extra>"})
    for label, tr, color in (("without", orig, "#9aa5b1"), ("with", cmp.intervened, "#e6503c")):
        data.append({"type": "scatter", "mode": "lines+markers", "x": x, "xaxis": "x2", "yaxis": "y2",
                     "y": np.round(tr.row_nll, 3).tolist(), "name": f"row NLL {label} ({_fmt(tr.nll, 1)})",
                     "line": {"color": color, "width": 2}, "marker": {"size": 4},
                     "hovertemplate": f"row %{{x}} {label}: %{{y:.2f}} nats<extra></extra>"})
    top, bottom = [0.55, 1.0], [0.0, 0.4]
    shapes, annotations = [], []
    for a, b in _runs(intervened_steps(cmp.changes, H)):
        for yref, dom in (("y domain", top), ("y2 domain", bottom)):
            shapes.append({"type": "rect", "xref": "x", "yref": yref, "x0": a - 0.5, "x1": b + 0.5, "y0": 0,
                           "y1": 1, "fillcolor": "#facc15", "opacity": 0.15, "line": {"width": 0},
                           "layer": "below"})
    first = cmp.first_changed_row
    if first is not None:
        shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": first - 0.5, "x1": first - 0.5,
                       "y0": 0, "y1": 1, "line": {"color": "#e6503c", "width": 1.5, "dash": "dot"}})
        annotations.append({"text": f"first changed row {first}", "xref": "x", "yref": "paper", "x": first - 0.5,
                            "y": 0.47, "xanchor": "left", "yanchor": "middle", "showarrow": False,
                            "font": {"color": "#e6503c"}})
    for xr, yr in (("x", "y domain"), ("x2", "y2 domain")):
        shapes.append({"type": "line", "name": CURSOR, "xref": xr, "yref": yr, "x0": step, "x1": step,
                       "y0": 0, "y1": 1, "line": {"color": ROW_MARK, "width": 2}})
    shapes.append({"type": "rect", "name": BAND, "xref": "x2", "yref": "y2 domain", "x0": step - 0.5,
                   "x1": step + 0.5, "y0": 0, "y1": 1, "fillcolor": ROW_MARK, "opacity": 0.2,
                   "line": {"width": 0}, "layer": "below"})
    layout = {"height": 470, "template": "none", "hovermode": "x unified", "font": {"size": 12},
              "margin": {"l": 60, "r": 20, "t": 80, "b": 45}, "showlegend": True,
              "paper_bgcolor": "rgba(0,0,0,0)", "plot_bgcolor": "rgba(0,0,0,0)",
              "title": {"text": "<b>where the runs part</b>: mean change of the states over the units per step "
                                "(top); each row's NLL without and with (bottom)",
                        "x": 0, "xref": "paper", "xanchor": "left", "y": 1, "yref": "container", "yanchor": "top",
                        "pad": {"t": 8}, "font": {"size": 13}},
              "legend": {"orientation": "h", "x": 0, "xanchor": "left", "y": 1.02, "yanchor": "bottom"},
              "xaxis": {"domain": [0, 1], "range": [-0.5, H - 0.5], "dtick": 1, "anchor": "y", "matches": "x2",
                        "showticklabels": False},
              "yaxis": {"domain": top, "rangemode": "tozero", "title": {"text": "mean |\u0394| over units"},
                        "anchor": "x"},
              "xaxis2": {"domain": [0, 1], "range": [-0.5, H - 0.5], "dtick": 1, "anchor": "y2",
                         "tickfont": {"size": 10}, "title": {"text": "step = row (shaded: intervened steps)"}},
              "yaxis2": {"domain": bottom, "rangemode": "tozero", "title": {"text": "row NLL (nats)"},
                         "anchor": "x2"},
              "shapes": shapes, "annotations": annotations}
    return {"data": data, "layout": layout}


def comparison_summary(cmp, model_name: str, descriptions: list[str]) -> str:
    """Markdown: what was changed and what it did (the two NLLs, where the runs part)."""
    orig, new = cmp.original, cmp.intervened
    label = "unconditional" if orig.label is None else f"digit **{orig.label}**"
    what = "; ".join(descriptions) or "nothing"
    diff = new.nll - orig.nll
    parts = [f"**{model_name}**, {label}, seed {orig.seed}, temperature {orig.temperature:g}: *{html.escape(what)}*.",
             f"NLL without **{orig.nll:.1f}** nats, with **{new.nll:.1f}** nats ({'+' if diff >= 0 else ''}{diff:.1f};"
             " each under the run that drew it)."]
    first = cmp.first_changed_row
    start = cmp.first_step
    if first is None:
        moved = max(float(np.abs(cmp.state_diff("h")).max()), 0.0)
        parts.append(f"The images are **identical** (h moved by at most {moved:.3f}).")
    else:
        d = cmp.image_diff
        parts.append(f"The runs agree up to step {start}; the images first differ at **row {first}** "
                     f"(+{int((d > 0).sum())} / \u2212{int((d < 0).sum())} pixels).")
    return " ".join(parts)


def binary_image(binary: np.ndarray, scale: int = 8) -> Image.Image:
    """A crisp image of a binary (H, W) digit, white on black."""
    return digit_thumbnail(np.asarray(binary).astype(np.uint8) * 255, scale)


def reconstruction_summary(trace: Trace, model_name: str, source: str) -> str:
    """Markdown: what a VAE's redraw (or prior sample) is, and its NLL given z."""
    kind = trace.meta.get("kind", "sample")
    if kind == "reconstruction":
        head = f"**{model_name}** encoded {source} and redrew it row by row from z"
        src = trace.meta.get("source")
        if src is not None:
            wrong = int((np.asarray(src).astype(bool) != trace.image.astype(bool)).sum())
            head += f"; {wrong} of {trace.image.size} pixels differ from the source"
    else:
        head = f"**{model_name}** drew a new digit from z sampled from the prior N(0, I)"
    seed = "" if trace.seed is None else f", seed {trace.seed}"
    return (f"{head} (temperature {trace.temperature:g}{seed}). NLL {trace.nll:.1f} nats "
            "(\u2212log p(image | z) under the decoder, temperature 1).")


def run_title_html(label: str, trace: Trace, detail: str = "") -> str:
    """A column title for one of two runs of one model (e.g. without / with an intervention)."""
    return (f'<div class="rv-col-title"><div><b>{html.escape(label)}</b></div>'
            f'<div>NLL <b>{_fmt(trace.nll, 1)}</b> nats</div>'
            f'<div class="rv-line rv-proto" title="{html.escape(detail)}">{html.escape(detail) or "&nbsp;"}</div></div>')
