"""What the hidden units do: an order that shows structure, a unit inspector, a pattern search,
memory reach (connectivity) and per-unit timescales. Also importable from ``rnnviz.analysis``.

Every function reads test images with teacher forcing (the model sees the true rows, as in the
test NLL), conditioned as ``rnnviz.probes.conditioning`` says: the given labels, else each
image's most likely class argmax_y log p(x | y) (``probes.model_labels``); a VAE reads z = the
mean of q(z | x). Step t's state has read rows 0..t-1 (row t - 1 is its input), and the head turns
it into p(row t).

- ``unit_order``: one permutation of the units of a layer, so that a units x timesteps heatmap
  and a 16 x 16 grid put units that behave alike next to each other (sorted by the step where
  their mean |h| peaks, ties by a 1-D embedding of their mean time courses).
- ``unit_profile``: one unit over many digits (the inspector): its value per step and image, the
  digits where it is most and least active (LSTMVis's dataset examples), which pixels of the rows
  read so far go with its value (a 28 x 28 correlation map per step), and its gates.
- ``pattern_search``: the units that stay above a threshold over a step range of one trace, and
  the test digits on which the same units do (LSTMVis's "select and match", Strobelt et al. 2017).
- ``memory_reach``: M[t, s] = ||d log p(row t) / d row s||, how much row s (s < t) moves the
  prediction of row t, by autograd through the fused module (Distill's "connectivity", 2019);
  ``reach_by_distance`` its mean over t at each distance t - s.
- ``timescales``: one effective memory length in steps per unit, from the gate that keeps the
  unit's own past (LSTM f, GRU z; the tanh RNN's self-loop |dh_t/dh_{t-1}|_uu).

A model of another scan order (``ModelConfig.order``) reads lines of its order: "row t" and "step
t" then mean line t of that order (memory reach is between lines), while images and activity maps
stay as the image is seen.
"""

from __future__ import annotations

import math
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import cells
from .probes import GATES, as_images, conditioning, layer_index
from .model import RowModel, from_order
from .trace import Trace

# What ``timescales`` reads for each cell: the factor by which a unit keeps its own past per step.
KEEP: dict[str, str] = {
    "lstm": "forget gate f (c_t = f * c_{t-1} + ...)",
    "gru": "update gate z (h_t = z * h_{t-1} + (1 - z) * n)",
    "rnn": "self-loop |dh_t[u] / dh_{t-1}[u]| = |(1 - h_t[u]^2) * W_hh[u, u]|",
}


@dataclass
class _Read:
    x: torch.Tensor  # (B, H, W) float32 binary images
    labels: torch.Tensor | None  # (B,) the classes read with (None: unconditional)
    z: torch.Tensor | None  # (B, latent) for a VAE
    source: str | None  # "given", "model argmax p(x|y)" or None
    states: dict[str, np.ndarray]  # the layer's every gate/state: name -> (B, T, U) float32
    layer: int


@torch.no_grad()
def _read(model: RowModel, images, y=None, layer: int = -1, z=None, batch_size: int = 500) -> _Read:
    """Teacher-forced states of one layer over ``images``, with the conditioning used."""
    k = layer_index(model, layer)
    x = as_images(images).to(model.positions)  # the model's device and dtype
    if x.shape[0] == 0:
        raise ValueError("images is empty: give at least one (H, W) image")
    labels, zs, source = conditioning(model, x, y, z)
    parts = []
    for start in range(0, x.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        lines = model.to_order(x[sl])  # step t reads line t - 1 of the model's order
        inputs = model.step_inputs(model.shift_rows(lines), None if labels is None else labels[sl],
                                   None if zs is None else zs[sl])
        parts.append({n: v.float().cpu().numpy() for n, v in cells.unroll(model.rnn, inputs)[k].items()})
    states = {n: np.concatenate([p[n] for p in parts]) for n in parts[0]}
    return _Read(x, labels, zs, source, states, k)


def _unit_index(model: RowModel, unit) -> int:
    U = model.config.hidden
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)) or not 0 <= unit < U:
        raise ValueError(f"unit must be an integer in [0, {U - 1}], got {unit!r}")
    return int(unit)


# ---- an order that shows structure -------------------------------------------------------------
def order_from_states(h: np.ndarray) -> np.ndarray:
    """The permutation ``unit_order`` computes, from hidden states ``h`` (B, T, U).

    Primary key: the step where the unit's mean |h| over images peaks (units that are silent
    everywhere, max mean |h| < 1e-6, go last). Ties (many units peak at the same row) are broken
    by each unit's coordinate on the first principal component of the standardized mean time
    courses mean_b h[b, :, u], so units whose average trajectory has the same shape sit together;
    that coordinate runs up in one peak group and down in the next. The component's sign is fixed
    (largest loading positive) and the last key is the unit index, so the order is deterministic
    for given states.
    """
    h = np.asarray(h, dtype=np.float64)
    U = h.shape[-1]
    strength = np.abs(h).mean(0)  # (T, U)
    peak = strength.argmax(0)
    peak[strength.max(0) < 1e-6] = h.shape[1]  # silent units last
    course = h.mean(0).T  # (U, T) signed mean time course
    course = (course - course.mean(1, keepdims=True)) / (course.std(1, keepdims=True) + 1e-9)
    course -= course.mean(0, keepdims=True)
    u, s, _ = np.linalg.svd(course, full_matrices=False)
    coord = u[:, 0] * s[0]
    if coord[np.argmax(np.abs(coord))] < 0:
        coord = -coord
    coord = np.round(coord, 9)  # last-bit noise in the SVD does not reorder units
    order = np.lexsort((np.arange(U), coord, peak))
    # Every other peak group runs backwards (a boustrophedon), so the units on either side of a
    # group boundary are alike too (both at the same end of the embedding).
    groups = np.split(order, np.flatnonzero(np.diff(peak[order])) + 1)
    return np.concatenate([g[::-1] if k % 2 else g for k, g in enumerate(groups)]).astype(np.int64)


def unit_order(model: RowModel, images, y=None, layer: int = -1, z=None) -> np.ndarray:
    """A permutation of the ``layer``'s hidden units (np.ndarray of int64, each unit once) computed
    from their teacher-forced hidden states h over binary ``images`` (B, H, W).

    How to read it: ``order[k]`` is the unit drawn k-th; show a units x timesteps heatmap with rows
    ``h[:, order]`` and fill a 16 x 16 grid row by row with ``order``. Units early in the order are
    most active (mean |h|) at early rows of the digit, late ones at its bottom rows; within one
    peak row, units with the same average trajectory are adjacent. See ``order_from_states``.
    ``y=None`` reads a class-conditional model with each image's most likely class.
    """
    return order_from_states(_read(model, images, y, layer, z).states["h"])


# ---- the unit inspector ------------------------------------------------------------------------
@dataclass
class UnitProfile:
    """One unit over many test digits (read with teacher forcing). See ``unit_profile``."""

    unit: int
    layer: int
    cell: str
    name: str  # the state the ranking and the map use ("h" by default)
    states: dict[str, np.ndarray]  # every gate/state of the unit: name -> (B, T) float32 (= the traces')
    images: np.ndarray  # (B, H, W) uint8 the digits read
    labels: np.ndarray | None  # (B,) the class each digit was read with; None: unconditional model
    label_source: str | None  # "given", "model argmax p(x|y)" or None
    most: np.ndarray  # (k, 2) int (image, step): the k digits where it peaks highest, highest first
    least: np.ndarray  # (k, 2) int (image, step): the k digits where it dips lowest, lowest first
    activity_map: np.ndarray  # (T, H, W) float32: corr over digits of value[:, t] with pixel (i, j), NaN for i >= t

    @property
    def values(self) -> np.ndarray:
        """(B, T) the unit's ``name`` at every step of every digit."""
        return self.states[self.name]

    @property
    def gates(self) -> dict[str, np.ndarray]:
        """The unit's sigmoid gates (LSTM i, f, o; GRU r, z; none for the RNN): name -> (B, T)."""
        return {g: self.states[g] for g in GATES[self.cell]}


def activity_map(values: np.ndarray, images: np.ndarray, order: str = "rows") -> np.ndarray:
    """(T, H, W) float32: for each step t, the Pearson correlation across the B digits between
    ``values[:, t]`` (B, T) and each pixel of ``images`` (B, H, W) in the rows read so far (i < t;
    for a model of another scan ``order``, the pixels of its lines 0..t-1, wherever they are).

    How to read it: at step t, a positive pixel is one whose ink goes with a high value of the
    unit, a negative one whose ink goes with a low value, near 0 one the unit ignores (or that
    varies too little over the digits to tell); draw it on a diverging scale from -1 to 1. Rows
    i >= t are NaN: step t has not read them, so they cannot cause its value (the correlation
    with them would only say what the unit predicts). A pixel or step that never varies over the
    digits has no correlation and shows 0.
    """
    v = np.asarray(values, np.float64)
    x = np.asarray(images, np.float64)
    B, T = v.shape
    H = x.shape[1]
    vc = v - v.mean(0)
    xc = x - x.mean(0)
    cov = np.einsum("bt,bij->tij", vc, xc) / B
    sd = np.sqrt((vc ** 2).mean(0))[:, None, None] * np.sqrt((xc ** 2).mean(0))[None]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(sd > 1e-12, cov / np.where(sd > 1e-12, sd, 1.0), 0.0)
    unread = np.broadcast_to(np.arange(H)[None, :, None] >= np.arange(T)[:, None, None], corr.shape)
    if order != "rows":  # line i of the order is not read yet at step t: mark its pixels in the image
        unread = from_order(torch.from_numpy(np.ascontiguousarray(unread)), order).numpy()
    return np.where(unread, np.nan, corr).astype(np.float32)


def _extremes(v: np.ndarray, k: int, largest: bool) -> np.ndarray:
    """(k, 2) (image, step) of the k images whose max (min) value is largest (smallest), with the step."""
    step = v.argmax(1) if largest else v.argmin(1)
    peak = v[np.arange(len(v)), step]
    key = -peak if largest else peak
    idx = np.lexsort((np.arange(len(v)), key))[:k]
    return np.stack([idx, step[idx]], 1).astype(np.int64)


def unit_profile(model: RowModel, images, unit: int, y=None, layer: int = -1, name: str = "h",
                 top_k: int = 8, z=None) -> UnitProfile:
    """Everything the inspector shows about ``unit`` of ``layer`` over binary ``images`` (B, H, W).

    How to read it:

    - ``states[name][b, t]``: the unit's value at step t of digit b (plot a line per digit,
      coloured by ``labels``); ``gates`` holds its i, f, o (or r, z) alongside;
    - ``most`` / ``least``: the ``top_k`` digits (one row per digit) where the unit's ``name``
      reaches its highest (lowest) value, with the step where it does; step t has read rows < t,
      so show the digit with rows 0..t-1 marked;
    - ``activity_map[t]``: which pixels of the rows read so far go with its value at step t (see
      ``activity_map``).
    """
    unit = _unit_index(model, unit)
    if name not in cells.STATE_NAMES[model.config.cell]:
        raise ValueError(f"name must be one of {cells.STATE_NAMES[model.config.cell]}, got {name!r}")
    if not (isinstance(top_k, int) and top_k >= 1):
        raise ValueError(f"top_k must be an integer >= 1, got {top_k!r}")
    r = _read(model, images, y, layer, z)
    states = {n: np.ascontiguousarray(a[:, :, unit]) for n, a in r.states.items()}
    images_u8 = r.x.cpu().numpy().astype(np.uint8)
    v = states[name]
    return UnitProfile(
        unit=unit, layer=r.layer, cell=model.config.cell, name=name, states=states, images=images_u8,
        labels=None if r.labels is None else r.labels.cpu().numpy().astype(np.int64), label_source=r.source,
        most=_extremes(v, top_k, True), least=_extremes(v, top_k, False),
        activity_map=activity_map(v, images_u8, model.config.order))


# ---- pattern search (LSTMVis select and match) -------------------------------------------------
@dataclass
class PatternMatch:
    """The units that follow a selected pattern in one trace, and the test digits where they do."""

    steps: tuple[int, int]  # the selected step range, both ends included
    threshold: float
    name: str
    layer: int
    units: np.ndarray  # (n,) int: units whose value is > threshold at every selected step of the trace
    values: np.ndarray  # (n, b - a + 1) float32: their values there, exactly the trace's
    on: np.ndarray | None  # (B, n) bool: which of the units are > threshold over the steps on each test digit
    matched: np.ndarray | None  # (B,) int: how many of the units do so on each test digit
    score: np.ndarray | None  # (B,) float: Jaccard of the units with all units that do so on the digit
    ranking: np.ndarray | None  # (m,) int: test digits with matched > 0, best score first
    labels: np.ndarray | None  # (B,) the class each test digit was read with (None: unconditional/no match)


def _trace_values(trace_or_states, name: str, layer: int) -> np.ndarray:
    if isinstance(trace_or_states, Trace):
        if name not in trace_or_states.names:
            raise ValueError(f"name must be one of {trace_or_states.names} for this {trace_or_states.cell} "
                             f"trace, got {name!r}")
        n = len(trace_or_states.layers)
        if not -n <= layer < n:
            raise ValueError(f"layer must be in [{-n}, {n - 1}], got {layer}")
        return np.asarray(trace_or_states.state(name, layer))
    a = np.asarray(trace_or_states)
    if a.ndim != 2:
        raise ValueError(f"give a Trace or a (steps, units) array of one state, got shape {a.shape}")
    return a


def pattern_search(trace_or_states, steps: tuple[int, int], threshold: float, model: RowModel | None = None,
                   images=None, y=None, name: str = "h", layer: int = -1, z=None) -> PatternMatch:
    """LSTMVis's select-and-match on one trace (a ``Trace``, or its (T, U) state array).

    Select: the units whose ``name`` (default h) of ``layer`` is above ``threshold`` at every step
    of ``steps = (a, b)`` (inclusive). Match (when ``model`` and test ``images`` are given): read
    each test digit with teacher forcing and find, at the same steps, the units that are above the
    threshold throughout; a digit's ``score`` is the Jaccard index |selected & on| / |selected | on|
    (1 = exactly these units and no others hold the pattern there), ``ranking`` lists the digits
    with at least one selected unit on, best first (ties: more units matched, then index).

    How to read it: ``units`` share a behaviour over those rows of this digit; the top of
    ``ranking`` are the digits where the same units do the same thing at the same rows, so what
    those digits have in common (a stroke, a loop closing at that height) is what the units track.
    """
    values = _trace_values(trace_or_states, name, layer)
    T = values.shape[0]
    a, b = steps
    integers = all(isinstance(s, (int, np.integer)) and not isinstance(s, bool) for s in (a, b))
    if not integers or not 0 <= a <= b < T:
        raise ValueError(f"steps must be two integers with 0 <= a <= b < {T}, got {steps!r}")
    if not (isinstance(threshold, (int, float, np.floating)) and math.isfinite(threshold)):
        raise ValueError(f"threshold must be a finite number, got {threshold!r}")
    a, b = int(a), int(b)
    held = (values[a:b + 1] > threshold).all(0)
    units = np.flatnonzero(held).astype(np.int64)
    sel = values[a:b + 1, units].T.astype(np.float32)
    on = matched = score = ranking = labels = None
    if model is not None and images is not None:
        r = _read(model, images, y, layer, z)
        if r.states[name].shape[1] != T:
            raise ValueError(f"the trace has {T} steps but the model reads {r.states[name].shape[1]}")
        every = (r.states[name][:, a:b + 1] > threshold).all(1)  # (B, U) units on over the steps
        on = every[:, units]
        matched = on.sum(1).astype(np.int64)
        union = held[None] | every
        score = np.where(union.any(1), (held[None] & every).sum(1) / np.maximum(union.sum(1), 1), 0.0)
        order = np.lexsort((np.arange(len(score)), -matched, -score))
        ranking = order[matched[order] > 0].astype(np.int64)
        labels = None if r.labels is None else r.labels.cpu().numpy().astype(np.int64)
    elif (model is None) != (images is None):
        raise ValueError("give both model and images to match the pattern on test digits (or neither)")
    if model is not None:
        layer = layer_index(model, layer)
    elif isinstance(trace_or_states, Trace):
        layer = layer % len(trace_or_states.layers)
    return PatternMatch((a, b), float(threshold), name, layer, units, sel, on, matched, score, ranking, labels)


# ---- memory reach (connectivity) ---------------------------------------------------------------
_ONEDNN = threading.Lock()  # the flag is process-wide: one reach at a time toggles it and puts it back


@contextmanager
def _plain_cpu_rnn():
    """Run the fused CPU RNN without oneDNN: its backward always computes the weight gradients
    (about 2.5x slower for the LSTM here); without it autograd computes only what is asked.
    Same numbers either way (checked in the tests against an autograd through ``cells.unroll``).
    Other threads running meanwhile just compute without oneDNN too."""
    with _ONEDNN, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns about TF32 on Intel GPUs when the flag is set
        with torch.backends.mkldnn.flags(enabled=False):
            yield


def _reach_batch(model: RowModel, x: torch.Tensor, labels, zs) -> torch.Tensor:
    """(H, H) sum over the batch of ||d log p(row t) / d row s||_2, s < t (lines of the model's order)."""
    H = model.config.height
    x = model.to_order(x).contiguous()  # the lines, in the order the model writes them
    x_in = x.clone().requires_grad_(True)  # the rows as the recurrence reads them
    inputs = model.step_inputs(model.shift_rows(x_in), labels, zs)
    # The fused module one step per call, carrying its state: the graph of h_t then holds steps
    # <= t only, so the backward for row t does not walk the later steps (half the work).
    state, steps = None, []
    for t in range(H):
        o, state = model.rnn(inputs[:, t:t + 1], state)
        steps.append(o[:, 0])
    out = torch.stack(steps, dim=1)
    # The head sees h_t and the row above; d log p(row t) / d h_t for all t in one pass (each
    # log p(row t) depends on h_t and row t-1 only), its own row's terms (s = t) left out.
    h = out.detach().requires_grad_(True)
    above = model.shift_rows(x).requires_grad_(True)
    logits = model.head(torch.cat([h, above], dim=-1), x)
    row_logp = -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)  # (B, H)
    g_h, g_above = torch.autograd.grad(row_logp.sum(), [h, above])
    total = torch.zeros(H, H, dtype=torch.float64)
    for t in range(1, H):  # row 0 has no past
        (g,) = torch.autograd.grad(steps[t], x_in, g_h[:, t], retain_graph=t < H - 1)
        g[:, t - 1] += g_above[:, t]  # the head's direct look at the row above
        total[t, :t] = g[:, :t].norm(dim=-1).sum(0).double()
    return total


def memory_reach(model: RowModel, images, y=None, z=None, batch_size: int = 250) -> np.ndarray:
    """(H, H) float64 M[t, s] = ||d log p(row t) / d row s||_2 (row t, column s), the L2 norm over
    row s's pixels of the gradient, averaged over binary ``images`` (B, H, W) read with teacher
    forcing (the rows enter as float inputs). Zero where s >= t: a row cannot influence the rows
    before it, and a row's own term (s = t: its pixels as targets and as the head's left context)
    is not memory.

    Autograd through the fused ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (called one step at a time with
    its state; use a model in eval mode): one forward per batch, one backward per target row t
    through steps <= t. Row s reaches log p(row t) through the recurrence (it is the input of step
    s + 1) and, for s = t - 1 only, also through the head, which sees the row above; so distance 1
    includes that direct path, distances >= 2 are the recurrence's memory alone. The class (or a
    VAE's z, the encoder's mean) is held fixed: the path x -> z is not recurrence.

    For a model of another scan order, "row" means line of that order: M[t, s] is between its
    lines t and s (step t and the line step s wrote).

    How to read it: row t of M is how strongly each earlier row moves the prediction of row t;
    ``reach_by_distance(M)`` summarizes how that decays with the distance t - s.
    """
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    x = as_images(images).to(model.positions)  # the model's device and dtype
    if x.shape[0] == 0:
        raise ValueError("images is empty: give at least one (H, W) image")
    labels, zs, _ = conditioning(model, x, y, z)
    H = model.config.height
    total = torch.zeros(H, H, dtype=torch.float64)
    with _plain_cpu_rnn(), torch.enable_grad():
        for start in range(0, x.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            total += _reach_batch(model, x[sl], None if labels is None else labels[sl],
                                  None if zs is None else zs[sl].detach())
    return (total / x.shape[0]).numpy()


def reach_by_distance(reach: np.ndarray, targets=None) -> np.ndarray:
    """(H,) float64: entry d is the mean over target rows t of ``reach[t, t - d]`` (d = 1..H-1), entry 0 is 0.

    ``targets``: the target rows t to average over (e.g. ``range(20, 28)``), None = every t >= d.
    With None, distance d averages over the source rows 0..H-1-d, so at large d only the top rows
    (blank on most MNIST digits) are sources; fixing ``targets`` compares every distance on the
    same predictions (entries with no t - d >= 0 among them are NaN).

    How to read it: the influence of a row d rows back on the prediction of the current row,
    averaged over positions; a fast fall means short memory. Plot d >= 1 on a log y axis to compare
    cells (a straight line is an exponential forgetting, its slope the rate).
    """
    M = np.asarray(reach, np.float64)
    H = M.shape[0]
    if M.ndim != 2 or M.shape != (H, H):
        raise ValueError(f"reach must be a square (H, H) matrix, got shape {M.shape}")
    rows = np.arange(H) if targets is None else np.asarray(list(targets), np.int64)
    if rows.size == 0 or rows.min() < 0 or rows.max() >= H:
        raise ValueError(f"targets must be rows in [0, {H - 1}], got {targets!r}")
    out = np.zeros(H)
    for d in range(1, H):
        t = rows[rows >= d]
        out[d] = M[t, t - d].mean() if t.size else np.nan
    return out


# ---- timescales --------------------------------------------------------------------------------
def keep_factors(model: RowModel, images, y=None, layer: int = -1, z=None) -> np.ndarray:
    """(U,) float64: the mean over steps and images of the factor by which each unit keeps its own
    past per step (``KEEP[cell]``): LSTM f, GRU z, tanh RNN |(1 - h_t^2) W_hh[u, u]|."""
    r = _read(model, images, y, layer, z)
    cell = model.config.cell
    if cell == "lstm":
        keep = r.states["f"]
    elif cell == "gru":
        keep = r.states["z"]
    else:
        w = getattr(model.rnn, f"weight_hh_l{r.layer}").detach().cpu().double().numpy().diagonal()
        keep = np.abs((1.0 - r.states["h"].astype(np.float64) ** 2) * w)
    return keep.astype(np.float64).mean((0, 1))


def timescale_from_keep(keep: np.ndarray) -> np.ndarray:
    """-1 / log(keep) in steps, for keep factors in [0, 1]: the e-folding time of a memory kept by
    ``keep`` per step (keep^tau = 1/e). keep = 0 gives 0, keep >= 1 gives inf (never forgets, or
    for the RNN a self-loop that amplifies)."""
    k = np.clip(np.asarray(keep, np.float64), 0.0, 1.0)
    tau = np.full(k.shape, np.inf)
    finite = k < 1.0
    with np.errstate(divide="ignore"):
        tau[finite] = -1.0 / np.log(k[finite])  # log(0) = -inf gives 0
    return tau


def timescales(model: RowModel, images, y=None, layer: int = -1, z=None) -> np.ndarray:
    """(U,) float64: one effective memory length in steps (rows) per unit of ``layer``,
    tau = -1 / log(k), k the unit's mean keep factor over steps and binary ``images`` (B, H, W):

    - LSTM: k = mean forget gate f (the cell keeps f of its content each step);
    - GRU: k = mean update gate z (z = keep the old h);
    - tanh RNN (no gates): k = mean |(1 - h_t^2) W_hh[u, u]|, the unit's self-loop, i.e. the
      diagonal of dh_t / dh_{t-1}; it ignores what other units feed back, as f and z do.

    How to read it: a unit keeps about 1/e of what it held tau rows ago through its own loop;
    tau > 28 means it keeps more than a whole image's worth. k >= 1 gives inf (f or z saturated at
    1 in float32: it never forgets); histograms should put those in a last ">= cap" bin.
    """
    return timescale_from_keep(keep_factors(model, images, y, layer, z))
