"""The plotly figures' shared parts, and the step views' units x time figure.

Figures are plain dicts (``plotly.graph_objects.Figure(d)`` accepts them; ``components.plot`` sends
one without building a validated figure). Every figure starts from ``base_layout`` (transparent,
no template); a figure that follows a step view's slider marks the step with ``cursor_line`` and
``cursor_band``, shapes named ``CURSOR``/``BAND`` that ``stepview.CURSOR_JS`` moves in the browser
(the figure is sent once per trace, not on every scrub). Each tab's own figures live in its module.
"""

from __future__ import annotations

import base64
import html
import math

import numpy as np

from ..cells import DESCRIPTIONS
from ..render import BAND, CURSOR, ROW_MARK, SIGMOID, Scale, state_scale
from ..trace import Trace

CLEAR = "rgba(0,0,0,0)"


def base_layout(height: int, margin: tuple[int, int, int, int], font: int = 11, hovermode: str = "closest",
                title: str | None = None, **more) -> dict:
    """The layout every figure starts from: ``margin`` is (left, right, top, bottom) pixels;
    ``title`` (HTML) is drawn top left, in the figure (screen readers get the gr.Plot's label)."""
    layout = {"height": height, "template": "none", "hovermode": hovermode, "font": {"size": font},
              "margin": dict(zip("lrtb", margin)), "paper_bgcolor": CLEAR, "plot_bgcolor": CLEAR}
    if title is not None:
        layout["title"] = {"text": title, "x": 0, "xref": "paper", "xanchor": "left", "y": 1, "yref": "container",
                           "yanchor": "top", "pad": {"t": 8}, "font": {"size": 13}}
    layout.update(more)
    return layout


def cursor_line(step: float, xref: str = "x", yref: str = "paper", y0: float = 0, y1: float = 1) -> dict:
    """The slider's step as a vertical line (moved in the browser by ``CURSOR_JS``)."""
    return {"type": "line", "name": CURSOR, "xref": xref, "yref": yref, "x0": step, "x1": step, "y0": y0, "y1": y1,
            "line": {"color": ROW_MARK, "width": 2}}


def cursor_band(step: float, xref: str = "x", yref: str = "paper", y0: float = 0, y1: float = 1,
                opacity: float = 0.2) -> dict:
    """The slider's step as a shaded column one step wide (moved in the browser by ``CURSOR_JS``)."""
    return {"type": "rect", "name": BAND, "xref": xref, "yref": yref, "x0": step - 0.5, "x1": step + 0.5,
            "y0": y0, "y1": y1, "fillcolor": ROW_MARK, "opacity": opacity, "line": {"width": 0}, "layer": "below"}


def typed(a: np.ndarray) -> dict:
    """A plotly.js typed array (base64 float32): a quarter of the size of JSON numbers."""
    a = np.ascontiguousarray(a, dtype="<f4")
    out = {"dtype": "f4", "bdata": base64.b64encode(a.tobytes()).decode("ascii")}
    if a.ndim > 1:
        out["shape"] = ", ".join(str(s) for s in a.shape)
    return out


def empty_figure(message: str) -> dict:
    return {"data": [], "layout": {"template": "none", "height": 200, "xaxis": {"visible": False},
                                   "yaxis": {"visible": False},
                                   "annotations": [{"text": html.escape(message), "showarrow": False,
                                                    "xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5}]}}


def units_time_figure(trace: Trace, layer: int = -1, step: int = 0, cols: int = 3, order=None) -> dict:
    """Every gate/state of one layer, units x timesteps, under a bar chart of each row's NLL. A
    cursor (``cursor_line`` on every panel, ``cursor_band`` on the bars) marks ``step``; hover shows
    unit, step and value. ``order`` (a permutation of the units, ``rnnviz.units.unit_order``) puts
    row k = unit ``order[k]`` (the y axis then lists unit numbers as categories, so hover and clicks
    still name the unit); None: unit u on row u."""
    names = trace.names
    states = trace.layers[layer]
    H, n = states[names[0]].shape
    if order is not None:
        order = np.asarray(order, np.int64)
        if sorted(order.tolist()) != list(range(n)):
            raise ValueError(f"order must be a permutation of the {n} units")
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
    data = [{"type": "bar", "x": typed(steps), "y": typed(trace.row_nll), "xaxis": "x", "yaxis": "y",
             "marker": {"color": bar_colors}, "name": "row NLL",
             "hovertemplate": "row %{x}<br>NLL %{y:.2f} nats<extra></extra>"}]
    layout = base_layout(
        height, (50, 90, margin_t, margin_b), showlegend=False,
        xaxis={"domain": [0, 1], "range": [-0.5, H - 0.5], "anchor": "y", "dtick": 1, "tickfont": {"size": 9}},
        yaxis={"domain": y_dom(0, top_px - 20), "title": {"text": "row NLL"}, "anchor": "x", "rangemode": "tozero"},
        shapes=[], annotations=[])
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
        heat = {"type": "heatmap", "x0": 0, "dx": 1, "xaxis": f"x{ax}", "yaxis": f"y{ax}", "coloraxis": cax,
                "name": name, "hovertemplate": f"unit %{{y}}<br>step %{{x}}<br>{name} = %{{z:.3f}}<extra></extra>"}
        yaxis = {"domain": ydom, "anchor": f"x{ax}", "range": [n - 0.5, -0.5], "showgrid": False,
                 "title": {"text": ("unit" if order is None else "unit (by behaviour)") if c == 0 else ""}}
        if order is None:
            heat.update(z=typed(states[name].T), y0=0, dy=1)
        else:  # rows in the given order, labelled with their unit numbers
            heat.update(z=typed(states[name][:, order].T), y=[str(u) for u in order.tolist()])
            yaxis.update(type="category", nticks=8)
        data.append(heat)
        layout[f"xaxis{ax}"] = {"domain": xdom, "anchor": f"y{ax}", "range": [-0.5, H - 0.5],
                                "showgrid": False, "ticks": "outside", "dtick": 7}
        layout[f"yaxis{ax}"] = yaxis
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
    layout["shapes"] = [cursor_line(step, x, "paper", *ydom) for x, _, ydom in axes]
    layout["shapes"].append(cursor_band(step, "x", "paper", *axes[0][2], opacity=0.25))
    return {"data": data, "layout": layout}
