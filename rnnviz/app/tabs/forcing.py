"""Teacher forcing vs free running: one test digit read two ways by the page's model.

Teacher forced, the model reads the true rows (as in training and in the test NLL); free running,
it draws its own rows from the same start (the same label, or for a VAE the same z: the mean of
q(z | x) of the digit) with a seed, after copying the first ``rows kept`` true rows. The figure
(``forcing_figure``) shows both images and their p(on) and how far the two runs' hidden (and
cell) states drift apart per step; the caption names the first row where the free run parts from
the true image and both NLLs. The work is ``rnnviz.analysis.forcing_comparison`` (via
``measurements.Analyses.forcing``).
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np

from ... import render
from ...render import PROB_SCALE, ROW_MARK
from .. import components as checked
from .. import links
from ..components import message, plot, warn
from ..deeplinks import LinkBar, link_name
from ..figures import base_layout, typed
from ..inputs import FIRST_TEST_DIGIT, InputError, sampling
from ..measurements import Analyses
from ..operations import Explorer

NAME = "forcing"

EXPLAIN = """**Teacher forcing vs free running.** *Teacher forced*, the model reads the true rows of a
test digit and predicts each next row, as in training and in the test NLL. *Free running*, it starts
from the same place (the digit's true label; for a VAE the z its encoder gives this digit) and reads
the rows **it draws itself**. Once its drawing leaves the true image the two runs read different rows
and their hidden states part: the curve below shows how far. *Rows kept* copies the first rows of the
true digit before the model runs free (as *Complete* does). Pick a digit, then **Run**."""


@dataclass
class Handle:
    ex: Explorer
    analyses: Analyses
    ckpt: gr.Dropdown
    gallery: gr.Gallery
    index: gr.Number
    seed: gr.Number
    temperature: gr.Slider
    keep: gr.Slider
    button: gr.Button
    note: gr.Markdown
    plot: gr.Plot
    link: LinkBar


def build(ex: Explorer, ckpt) -> Handle:
    """The tab's layout (call inside its ``gr.Tab``); it runs the page's model (``ckpt``)."""
    thumbs = [render.digit_thumbnail(img) for img in ex.gallery_images]
    with gr.Row(equal_height=False):
        with gr.Column(scale=5, min_width=300):
            gr.Markdown(EXPLAIN)
            gallery = gr.Gallery(thumbs, columns=10, height="auto", allow_preview=False, show_label=False,
                                 object_fit="contain", elem_id="forcing_gallery", buttons=[],
                                 elem_classes="rv-pixelated")
        with gr.Column(scale=3, min_width=240):
            index = checked.Number(FIRST_TEST_DIGIT, precision=0, minimum=0, maximum=len(ex.gallery_images) - 1,
                                   label="test digit # (or click one)", elem_id="forcing_index")
            keep = checked.slider("keep_rows", value=0, label="rows kept (copied before it runs free)",
                                  elem_id="forcing_keep")
            temperature = checked.slider("temperature", label="temperature (free run)", elem_id="forcing_temperature")
            seed = checked.number("seed", label="seed (free run)", elem_id="forcing_seed")
            button = gr.Button("Run", variant="primary", elem_id="forcing_btn")
            link = LinkBar.render("forcing")
    note = gr.Markdown(elem_id="forcing_note")
    fig = gr.Plot(label="teacher forcing vs free running", show_label=False, elem_id="forcing_fig")
    return Handle(ex, ex.analyses, ckpt, gallery, index, seed, temperature, keep, button, note, fig, link)


def caption(entry_name: str, cmp, index: int, label: int, conditioned: str) -> str:
    """Markdown: what was run, where the free run parts from the true image, both NLLs."""
    kept = cmp.keep_rows
    head = (f"**{entry_name}**, test digit #{index} (a {label}), {conditioned}; free run with seed {cmp.seed}, "
            f"temperature {cmp.temperature:g}" + (f", the first {kept} rows kept." if kept else "."))
    if cmp.first_diff_row is None:
        parts = "- The free run drew **the true image** exactly: both runs read the same rows throughout."
    else:
        r = cmp.first_diff_row
        parts = (f"- The free run first parts from the true image at **row {r}** "
                 f"({int(cmp.row_mismatch[r])} of {cmp.true_image.shape[1]} pixels differ there, "
                 f"{int(cmp.row_mismatch.sum())} in all): the states agree up to step {r} and can part from "
                 f"step {r + 1} on.")
    nll = (f"- NLL teacher forced **{cmp.forced.nll:.1f}** nats (\u2212log p(true digit)); free running "
           f"**{cmp.free.nll:.1f}** nats (\u2212log p(the digit it drew), at temperature 1).")
    h = cmp.h_distance[-1]
    drift = f"- \u2016h forced \u2212 h free\u2016 at the last step: {float(h[-1]):.2f} (top layer)."
    return "\n".join([head, "", parts, nll, drift])


def _conditioned(config, label: int) -> str:
    parts = []
    if config.num_classes and label < config.num_classes:
        parts.append(f"given its true label {label}")
    if config.latent:
        parts.append("z = the mean of q(z | x) of this digit")
    return " and ".join(parts) or "unconditional"


GREY_SCALE = [[0.0, "#000000"], [1.0, "#f5f5f5"]]  # binary images: ink white on black, as the canvas


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
    layout = base_layout(560, (50, 70, 40, 50), showlegend=True, legend={"orientation": "h", "x": 0, "y": -0.12},
                         coloraxis={"colorscale": PROB_SCALE.colorscale(), "cmin": 0, "cmax": 1,
                                    "colorbar": {"title": {"text": "p(on)"}, "len": 0.5, "y": 0.78, "thickness": 12}})
    diff, kept = cmp.first_diff_row, cmp.keep_rows
    for j, (title, z, cax) in enumerate(panels):
        ax = str(j + 1) if j else ""
        x0 = j * (width + gap)
        trace = {"type": "heatmap", "z": typed(np.asarray(z, np.float32)), "x0": 0, "dx": 1, "y0": 0, "dy": 1,
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



def forcing(h: Handle, key, index, seed, temperature, keep) -> list:
    """The caption and the figure of teacher forcing vs free running (InputError says what is wrong)."""
    entry, cmp, label, notes = h.analyses.forcing(key, index, seed, temperature, keep)
    warn(notes)
    i = int(round(float(index if index is not None else FIRST_TEST_DIGIT)))
    return [caption(entry.name, cmp, i, label, _conditioned(entry.config, label)), plot(forcing_figure(cmp))]


def link_outputs(h: Handle) -> list:
    """What a deep link sets: the test digit, the settings and the comparison."""
    return [h.index, h.keep, h.seed, h.temperature, h.note, h.plot]


def open_link(h: Handle, view: links.View, key, request) -> list:
    """The values of ``link_outputs`` for a deep link to this tab."""
    return [view.test, view.keep, view.seed, view.temperature] + forcing(h, key, view.test, view.seed,
                                                                         view.temperature, view.keep)


def link_view(h: Handle, key, index, seed, temperature, keep) -> links.View:
    """The link to the comparison the page shows (Copy link)."""
    temperature, seed, _ = sampling(temperature, seed)
    return links.View(model=link_name(h.ex, key), test=int(index or 0), keep=int(keep or 0), seed=seed,
                      temperature=temperature, tab="forcing")


def wire(h: Handle, tab=None):
    def run(key, index, seed, temperature, keep):
        try:
            return forcing(h, key, index, seed, temperature, keep)
        except InputError as e:
            raise message(str(e)) from None

    def pick(evt: gr.SelectData):
        return evt.index

    inputs, outputs = [h.ckpt, h.index, h.seed, h.temperature, h.keep], [h.note, h.plot]
    h.button.click(run, inputs, outputs, api_name="forcing", concurrency_limit=2)
    h.gallery.select(pick, None, [h.index], api_name="forcing_pick", show_progress="hidden").then(
        run, inputs, outputs, api_name="forcing_after_pick", concurrency_limit=2)
    h.index.submit(run, inputs, outputs, api_name="forcing_index", concurrency_limit=2)
    h.link.wire(lambda *a: link_view(h, *a), inputs, "forcing_copy_link")
