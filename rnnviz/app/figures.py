"""The plotly figures' shared parts (the analysis tabs' figures; the step views draw in the browser).

Figures are plain dicts (``plotly.graph_objects.Figure(d)`` accepts them; ``components.plot`` sends
one without building a validated figure). Every figure starts from ``base_layout`` (transparent,
no template). Each tab's own figures live in its module.
"""

from __future__ import annotations

import base64
import html

import numpy as np


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
