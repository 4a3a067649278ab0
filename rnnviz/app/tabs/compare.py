"""Compare cells: the same digit and seed through the LSTM, GRU and RNN side by side.

One slider (and one Play button) drives every model's canvas and its state grids at step t (h for
all, plus the LSTM's f and c and the GRU's z); each column is titled with the model, its test NLL
(and how it was measured) and this sample's NLL. Below, every model's NLL per row with the current
row marked. The models draw with the same random numbers (same seed), so what differs is the cell.

Below, *Memory reach and timescales* (Distill's "connectivity", 2019): how much an earlier row moves
the prediction of a later one, ||d log p(row t) / d row s||, for the chosen models over test digits
(``rnnviz.units.memory_reach`` via ``measurements.UnitStudies``, cached per model): its decay with
the distance t - s as one curve per model, the matrix of one test digit per model, and the units'
timescales from their gates (``rnnviz.units.timescales``) as a histogram per model.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr
import numpy as np

from ... import units
from .. import components as checked
from ...rules import CELL_COLORS, OTHER_COLOR
from ..components import message, plot, sample_controls, warn
from ..figures import base_layout
from .. import links
from ..deeplinks import LinkBar, link_models, link_name, step_of
from ..inputs import DIGITS, FIRST_TEST_DIGIT, STEPS, InputError, sampling
from ..operations import MAX_COMPARE, Explorer
from ..stepview import LinkedViews, entry_json

NAME = "compare"


@dataclass
class Handle:
    ex: Explorer
    view: LinkedViews
    models: gr.Dropdown
    digit: gr.Radio
    temperature: gr.Slider
    seed: gr.Number
    button: gr.Button
    note: gr.Markdown
    reach_button: gr.Button
    reach_digit: gr.Number
    reach_note: gr.Markdown
    reach_fig: gr.Plot
    matrix_fig: gr.Plot
    tau_fig: gr.Plot
    link: LinkBar


    @property
    def reach_outputs(self) -> list:
        return [self.reach_note, self.reach_fig, self.matrix_fig, self.tau_fig]


REACH_HOW = """### Memory reach and timescales
How far back does each cell reach? For test digits read with teacher forcing, **memory reach** is
‖∂ log p(row t) / ∂ row s‖: how much row s moves the model's prediction of a later row t (the gradient
through the recurrence, Distill's *connectivity*). **How to read it:** on the first chart, one curve per
model gives that influence against the distance t − s on a log scale (a slow fall is a long memory; at
distance 1 the head also looks at the row above directly); the matrices show it for one test digit, row t
down and row s across (only s < t can matter); the histograms count the units by their timescale
−1 / log(mean keep factor), the number of rows after which a unit keeps 1/e of its own past (LSTM: forget
gate f; GRU: update gate z; RNN: its self-loop)."""


def build(ex: Explorer, ckpt=None) -> Handle:
    """The tab's layout (call inside its ``gr.Tab``). ``ckpt`` (the page's model menu) is not used:
    this tab picks its own models."""
    view = LinkedViews(ex, NAME, MAX_COMPARE, "Compare")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=240):
            gr.Markdown("The same digit, seed and temperature through each model: the same random numbers, "
                        "so what differs is the cell. One slider drives every column.")
            models = gr.Dropdown(ex.registry.choices(), value=ex.compare_default_keys(), multiselect=True,
                                 max_choices=MAX_COMPARE, label=f"models (up to {MAX_COMPARE})",
                                 elem_id="compare_models",
                                 allow_custom_value=True)  # runs trained later are checked by the registry
            digit, temperature, seed = sample_controls("compare")
            button = gr.Button("Compare", variant="primary", elem_id="compare_btn")
            note = gr.Markdown(elem_id="compare_note")
            link = LinkBar.render(NAME)
        with gr.Column(scale=11, min_width=600):
            view.render()
    gr.Markdown(REACH_HOW, elem_id="compare_reach_explain")
    with gr.Row(equal_height=True):
        reach_button = gr.Button("Measure memory reach", variant="primary", elem_id="compare_reach_btn", scale=0,
                                 min_width=220)
        reach_digit = checked.Number(value=FIRST_TEST_DIGIT, precision=0, minimum=0,
                                     maximum=len(ex.gallery_images) - 1, label="test digit for the matrices (#)",
                                     elem_id="compare_reach_digit", scale=1)
    reach_note = gr.Markdown(elem_id="compare_reach_note")
    # the figures show up once measured (no empty frames before the button is pressed)
    reach_fig = gr.Plot(label="memory reach by distance, one curve per model", show_label=False, visible=False,
                        elem_id="compare_reach_fig")
    matrix_fig = gr.Plot(label="memory reach matrix of one test digit, per model", show_label=False, visible=False,
                         elem_id="compare_matrix_fig")
    tau_fig = gr.Plot(label="timescales of the units, per model", show_label=False, elem_id="compare_tau_fig",
                      visible=False)
    return Handle(ex, view, models, digit, temperature, seed, button, note, reach_button, reach_digit, reach_note,
                  reach_fig, matrix_fig, tau_fig, link)


def run(h: Handle, keys, d, temp, s, request, step: int | None = None) -> list:
    """Draw the digit with every model and load the columns (at ``step``; None: the last). Returns
    the note and the view's payload; InputError says what is wrong."""
    results, notes = h.ex.compare(keys, d, temp, s)
    warn(notes)
    traces = [tr for _, tr in results]
    columns = [{"entry": entry_json(e.name, e.config, e.metrics), "what": "this sample"} for e, _ in results]
    first = traces[0]
    label = "any digit" if first.label is None else f"digit **{first.label}**"
    text = (f"{len(traces)} models, {label}, seed {first.seed}, temperature {first.temperature:g}. "
            "Scrub or press Play: every column shows the same step.")
    if notes:
        text += "\n\n" + "\n".join(f"- {n}" for n in notes)
    return [text] + h.view.load(request, columns, traces, step=step)


def link_outputs(h: Handle) -> list:
    """What a deep link sets: the settings, the note and the view."""
    return [h.models, h.digit, h.temperature, h.seed, h.note] + h.view.load_outputs


def open_link(h: Handle, view: links.View, key, request) -> list:
    """The values of ``link_outputs`` for a deep link to this tab."""
    names = link_models(h.ex)
    keys = [names[n] for n in view.models] if view.models else h.ex.compare_default_keys()
    return [keys, view.digit, view.temperature, view.seed] + run(h, keys, view.digit, view.temperature, view.seed,
                                                                 request, step=view.t)


def link_view(h: Handle, keys, d, temp, s, t) -> links.View:
    """The link to the columns the page shows (Copy link)."""
    temp, s, _ = sampling(temp, s)
    names = tuple(link_name(h.ex, k) for k in (keys or h.ex.compare_default_keys()))[:MAX_COMPARE]
    return links.View(models=names, digit=d if d in DIGITS else "7", seed=s, temperature=temp, t=step_of(t),
                      tab=NAME)


def reach_figure(series: list[tuple[str, str, np.ndarray]], title: str = "Memory reach by distance") -> dict:
    """One curve per model: ``series`` is (label, cell, curve) with curve[d] the mean over rows t of
    ||d log p(row t) / d row t-d|| (``units.reach_by_distance``), drawn for d >= 1 on a log y axis."""
    data, dashes, seen = [], ("solid", "dot", "dash", "dashdot"), {}
    H = STEPS
    for label, cell, curve in series:
        curve = np.asarray(curve, np.float64)
        H = curve.size
        d = np.arange(1, H)
        y = curve[1:]
        keep = np.isfinite(y) & (y > 0)
        k = seen[cell] = seen.get(cell, -1) + 1
        data.append({"type": "scatter", "mode": "lines+markers", "name": label, "x": d[keep].tolist(),
                     "y": [float(f"{v:.4g}") for v in y[keep]],
                     "line": {"color": CELL_COLORS.get(cell, OTHER_COLOR), "width": 2.5, "dash": dashes[k % 4]},
                     "marker": {"size": 5},
                     "hovertemplate": f"{html.escape(label)}<br>distance %{{x}} rows: %{{y:.3g}}<extra></extra>"})
    layout = base_layout(
        380, (80, 20, 60, 50), font=12, hovermode="x unified", title=f"<b>{html.escape(title)}</b>",
        legend={"orientation": "h", "x": 1, "xanchor": "right", "y": 1.0, "yanchor": "bottom"},
        xaxis={"range": [0.5, H - 0.5], "dtick": 2, "title": {"text": "distance t − s (rows back)"}},
        yaxis={"type": "log", "dtick": 1, "exponentformat": "power",
               "title": {"text": "‖∂ log p(row t) / ∂ row t−d‖, mean over t"}})
    return {"data": data, "layout": layout}


def matrices_figure(series: list[tuple[str, str, np.ndarray]], title: str) -> dict:
    """The memory-reach matrix M[t, s] of one digit per model side by side (row t down, row s across;
    zero for s >= t), on one log colour scale."""
    n = len(series)
    gap = 0.06
    width = (1 - gap * (n - 1)) / n
    peak = max(float(np.max(M)) for _, _, M in series) or 1.0
    lo = np.log10(peak) - 3
    layout = base_layout(360, (50, 70, 70, 45), title=f"<b>{html.escape(title)}</b>",
                         coloraxis={"colorscale": "Viridis", "cmin": lo, "cmax": np.log10(peak),
                                    "colorbar": {"title": {"text": "log10"}, "thickness": 10}})
    data, annotations = [], []
    for k, (label, cell, M) in enumerate(series):
        ax = "" if k == 0 else str(k + 1)
        x0 = k * (width + gap)
        M = np.asarray(M, np.float64)
        H = M.shape[0]
        z = np.where(np.tril(np.ones((H, H), bool), -1) & (M > 0), np.log10(np.maximum(M, 1e-30)), np.nan)
        z = np.maximum(z, lo)
        data.append({"type": "heatmap", "z": [[None if np.isnan(v) else round(float(v), 3) for v in row] for row in z],
                     "customdata": np.round(M, 4).tolist(), "xaxis": f"x{ax}", "yaxis": f"y{ax}",
                     "coloraxis": "coloraxis", "name": label,
                     "hovertemplate": (f"{html.escape(label)}<br>row t = %{{y}}, row s = %{{x}}<br>"
                                       "‖∂ log p(t) / ∂ s‖ = %{customdata:.3g}<extra></extra>")})
        layout[f"xaxis{ax}"] = {"domain": [round(x0, 4), round(x0 + width, 4)], "anchor": f"y{ax}",
                                "range": [-0.5, H - 0.5], "title": {"text": "row s (read)"}, "dtick": 7}
        layout[f"yaxis{ax}"] = {"domain": [0, 1], "anchor": f"x{ax}", "range": [H - 0.5, -0.5], "dtick": 7,
                                "title": {"text": "row t (predicted)" if k == 0 else ""}, "scaleanchor": f"x{ax}"}
        annotations.append({"text": f"<b>{html.escape(label)}</b>", "xref": "paper", "yref": "paper",
                            "x": x0 + width / 2, "y": 1.0, "xanchor": "center", "yanchor": "bottom",
                            "showarrow": False, "font": {"color": CELL_COLORS.get(cell, OTHER_COLOR)}})
    layout["annotations"] = annotations
    return {"data": data, "layout": layout}


TAU_CAP = 28  # timescales above a whole image of rows share the last bin


def tau_counts(tau: np.ndarray, cap: int = TAU_CAP) -> np.ndarray:
    """Counts of units per one-row bin [k, k + 1) for k < ``cap``, and the last bin tau >= cap (inf too)."""
    t = np.asarray(tau, np.float64)
    bins = np.minimum(np.floor(np.where(np.isfinite(t), t, cap)), cap).astype(np.int64)
    return np.bincount(bins, minlength=cap + 1)


def timescales_figure(series: list[tuple[str, str, np.ndarray]], title: str) -> dict:
    """A histogram per model of its units' timescales (``units.timescales``) in one-row bins, the last
    bin holding every tau >= ``TAU_CAP`` rows."""
    n = len(series)
    gap = 0.05
    width = (1 - gap * (n - 1)) / n
    layout = base_layout(300, (55, 20, 70, 50), title=f"<b>{html.escape(title)}</b>", showlegend=False,
                         bargap=0.05)
    data, annotations = [], []
    labels = [f"{k}–{k + 1}" for k in range(TAU_CAP)] + [f"≥ {TAU_CAP}"]
    for k, (label, cell, tau) in enumerate(series):
        ax = "" if k == 0 else str(k + 1)
        x0 = k * (width + gap)
        counts = tau_counts(tau)
        data.append({"type": "bar", "x": list(range(TAU_CAP + 1)), "y": counts.tolist(), "customdata": labels,
                     "xaxis": f"x{ax}", "yaxis": f"y{ax}", "name": label,
                     "marker": {"color": CELL_COLORS.get(cell, OTHER_COLOR)},
                     "hovertemplate": f"{html.escape(label)}<br>tau %{{customdata}} rows: %{{y}} units<extra></extra>"})
        finite = np.asarray(tau)[np.isfinite(tau)]
        med = float(np.median(finite)) if finite.size else float("nan")
        layout[f"xaxis{ax}"] = {"domain": [round(x0, 4), round(x0 + width, 4)], "anchor": f"y{ax}",
                                "range": [-0.6, TAU_CAP + 0.6], "tickvals": [0, 5, 10, 15, 20, 25, TAU_CAP],
                                "ticktext": ["0", "5", "10", "15", "20", "25", f"≥{TAU_CAP}"],
                                "title": {"text": "timescale (rows)"}}
        layout[f"yaxis{ax}"] = {"domain": [0, 1], "anchor": f"x{ax}", "type": "log", "dtick": 1,
                                "title": {"text": "units" if k == 0 else ""}}
        annotations.append({"text": f"<b>{html.escape(label)}</b>: median {med:.2f} rows, {int((finite > 5).sum())} "
                                    f"of {len(tau)} units > 5", "xref": "paper", "yref": "paper",
                            "x": x0, "y": 1.0, "xanchor": "left", "yanchor": "bottom", "showarrow": False})
    layout["annotations"] = annotations
    return {"data": data, "layout": layout}


def reach_caption(rows: list[tuple], digit: int, label: int) -> str:
    """Markdown: on which digits each model was measured, its reach at a few distances."""
    lines = ["| model | reach at d = 1 | d = 2 | d = 5 | d = 10 | d = 20 | d10 / d1 | median timescale |",
             "|---|---|---|---|---|---|---|---|"]
    sources = []
    for entry, d, curve, tau, seconds in rows:
        finite = tau[np.isfinite(tau)]
        lines.append(f"| **{html.escape(entry.name)}** ({entry.config.cell.upper()}) | "
                     + " | ".join(f"{curve[k]:.3g}" for k in (1, 2, 5, 10, 20))
                     + f" | {curve[10] / curve[1]:.3f} | {float(np.median(finite)) if finite.size else float('nan'):.2f} rows |")
        took = f"measured in {seconds:.1f} s" if seconds else "cached"
        sources.append(f"{html.escape(entry.name)}: {len(d.images)} digits, {took}")
    first = rows[0][1]
    return (f"Averaged over {first.source}, read with teacher forcing"
            f"{' given their true labels' if first.y is not None else ''} ({'; '.join(sources)}). "
            f"The matrices: test digit **#{digit}** (a {label}).\n\n" + "\n".join(lines))


def wire(h: Handle, tab=None):
    ex, view = h.ex, h.view

    def do_run(keys, d, temp, s, request: gr.Request):
        try:
            return run(h, keys, d, temp, s, request)
        except InputError as e:
            raise message(str(e)) from None

    def models():
        return gr.Dropdown(choices=ex.registry.choices())

    def reach(keys, index):
        studies = ex.unit_studies
        try:
            if not keys:
                raise InputError("models: pick at least one model to measure")
            keys = list(keys)[:MAX_COMPARE]
            rows, mats, label = [], [], 0
            for key in keys:
                entry, d, M, seconds = studies.reach(key)
                _, _, tau = studies.timescales(key)
                _, M1, label = studies.digit_reach(key, index if index is not None else FIRST_TEST_DIGIT)
                rows.append((entry, d, units.reach_by_distance(M), tau, seconds))
                mats.append((entry.name, entry.config.cell, M1))
        except InputError as e:
            raise message(str(e)) from None
        digit = int(index if index is not None else FIRST_TEST_DIGIT)
        curves = [(e.name, e.config.cell, c) for e, _, c, _, _ in rows]
        taus = [(e.name, e.config.cell, t) for e, _, _, t, _ in rows]
        n = len(rows[0][1].images)
        return (reach_caption(rows, digit, label),
                gr.Plot(plot(reach_figure(curves, f"Memory reach by distance, mean over {n} test digits")), visible=True),
                gr.Plot(plot(matrices_figure(mats, f"Memory reach of test digit #{digit} (a {label}): row t down, "
                                                   "row s across")), visible=True),
                gr.Plot(plot(timescales_figure(taus, f"Timescales of the units (top layer), {n} test digits")),
                        visible=True))

    h.reach_button.click(reach, [h.models, h.reach_digit], h.reach_outputs, api_name="compare_reach",
                         concurrency_limit=1, concurrency_id="reach")
    h.button.click(do_run, [h.models, h.digit, h.temperature, h.seed], [h.note] + view.load_outputs,
                   api_name="compare", concurrency_limit=2)
    h.link.wire(lambda *a: link_view(h, *a), [h.models, h.digit, h.temperature, h.seed, view.t],
                "compare_copy_link", NAME)
    if tab is not None:  # runs trained or uploaded meanwhile join the menu
        tab.select(models, None, [h.models], api_name="compare_models", show_progress="hidden")
