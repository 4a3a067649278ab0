"""Analyses of a trained model on test digits: gate saturation and teacher forcing vs free running.

- ``gate_saturation``: how often each gate unit sits at its ends. For every unit of every sigmoid
  gate (LSTM i, f, o; GRU r, z) the fraction of (image, step) pairs where the gate is below ``low``
  (left-saturated, "off") and above ``high`` (right-saturated, "on"), read with teacher forcing on
  given test images. Plotted one point per unit, left fraction against right fraction, this is
  Fig. 4 of Karpathy, Johnson & Fei-Fei (2015), "Visualizing and understanding recurrent networks".
  A tanh RNN has no gates: the result says so and holds no units.
- ``forcing_comparison``: one test digit read two ways from the same start (same label, same z).
  Teacher forced, the model sees the true rows (what ``trace_images`` gives); free running, it
  draws its own rows with a seed (optionally after copying the first ``keep_rows`` true rows). Per
  step it reports how far apart the two runs' hidden (and LSTM cell) states are, and the first row
  where the drawn image leaves the true one.
- ``line_log_likelihoods`` / ``marginal_line_nll``: how surprised the model is by each line of a
  digit, per class or with the class summed out (what the "which order?" view compares across
  scan orders; ``rnnviz.mixture.Mixture.which_order``).

What the model is conditioned on when reading a test image:

- a class-conditional model reads the true labels when given (``y``). Without them it reads the
  class it finds most likely itself, argmax_y p(x | y) (Bayes' rule with the uniform class prior
  of training), and the result records ``labels="model argmax p(x|y)"`` so no one mistakes it for
  the truth;
- a VAE reads z = the mean of q(z | x) of each image (the usual deterministic choice), unless a
  ``z`` is given;
- an unconditional model reads nothing.

A model of another scan order (``ModelConfig.order``) reads and writes an image line by line in
that order: "step t" and "row t" below mean line t of its order (a row for the classic "rows"), and
images are always given and returned as they are seen.

Nothing here draws or serves anything; the figures are in the app (``rnnviz/app``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import cells
from .model import RowModel
# What this module shares with rnnviz.units (GATES, conditioning, model_labels are importable from here too)
from .probes import GATES, as_images, conditioning, layer_index, model_labels  # noqa: F401
from .trace import Trace, sample_traces, trace_images
# What the units do lives in rnnviz/units.py; its analyses are importable from here too
from .units import (KEEP, PatternMatch, UnitProfile, activity_map, keep_factors, memory_reach,  # noqa: F401
                    order_from_states, pattern_search, reach_by_distance, timescale_from_keep, timescales,
                    unit_order, unit_profile)

NO_GATES = "a tanh RNN has no gates, so there is nothing to saturate"


def class_posterior(model: RowModel, image, rows: int) -> np.ndarray:
    """p(class | the first ``rows`` rows of a binary (H, W) image) under the model, with a uniform
    prior over the classes, (C,) float64 (what *Complete* guesses the digit from). For a model of
    another scan order, the first ``rows`` lines of its order (what a completion keeps)."""
    ll = model.class_log_likelihoods(torch.as_tensor(np.asarray(image), dtype=torch.float32)[None], rows)[0]
    return torch.softmax(ll.double(), 0).numpy()


@torch.no_grad()
def line_log_likelihoods(model: RowModel, images, y=None) -> torch.Tensor:
    """log p(line t | lines < t, y) of binary ``images`` (B, H, W) for every class y, (B, C, H) nats
    (C = 1 for an unconditional model, or when ``y`` gives each image's class), line t being step
    t of the model's scan order. Summed over t it is ``class_log_likelihoods``."""
    x = as_images(images).to(model.positions)
    B, C = x.shape[0], model.config.num_classes
    if model.config.latent:
        raise ValueError("a VAE's lines depend on z: read it with trace_images")
    if C and y is None:
        xs, ys = x.repeat_interleave(C, dim=0), torch.arange(C, device=x.device).repeat(B)
    else:
        xs, ys, C = x, (model.labels_for(y, B, x.device) if C else None), 1
    lines = model.to_order(xs)
    bits = torch.nn.functional.binary_cross_entropy_with_logits(model.line_logits(lines, ys), lines, reduction="none")
    return -bits.sum(-1).view(B, C, -1)


@torch.no_grad()
def marginal_line_nll(model: RowModel, images) -> np.ndarray:
    """-log p(line t | lines < t) with the class summed out (uniform prior), (B, H) float64 nats per
    line of the model's order: the difference of the exact marginals of the prefixes, so it sums
    over t to -log p(x) (``RowModel.log_prob``) and says where in its order the model is surprised."""
    ll = line_log_likelihoods(model, images).double()  # (B, C, H)
    prefix = torch.logsumexp(ll.cumsum(-1), dim=1) - np.log(ll.shape[1])  # log p(lines <= t), (B, H)
    return -torch.diff(prefix, dim=-1, prepend=torch.zeros_like(prefix[:, :1])).numpy()


# ---- gate saturation ---------------------------------------------------------------------------
@torch.no_grad()
def gate_saturation(model: RowModel, images, y=None, layer: int = -1, low: float = 0.1, high: float = 0.9,
                    z=None, batch_size: int = 500) -> dict:
    """Per unit of each sigmoid gate of ``layer``, the fraction of (image, step) pairs with the
    gate below ``low`` and above ``high``, over binary ``images`` (B, H, W) read with teacher forcing.

    Returns a dict:

    - ``cell``, ``layer`` (the layer's index, 0 = bottom), ``gates`` (names, e.g. ("i", "f", "o"));
    - ``low`` / ``high``: gate name -> (hidden,) float64 fractions in [0, 1], low + high <= 1;
    - ``images``, ``steps``, ``units``: how many images, steps per image and units were counted;
    - ``low_threshold``, ``high_threshold``: the thresholds;
    - ``labels``: "given", "model argmax p(x|y)" (see the module docstring) or None (no classes);
    - ``message``: a one-line description (says so when the cell has no gates).
    """
    if not (0.0 <= low < high <= 1.0):
        raise ValueError(f"need 0 <= low < high <= 1, got low={low}, high={high}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    c = model.config
    k = layer_index(model, layer)
    gates = GATES[c.cell]
    x = as_images(images).to(model.positions.device)
    labels, zs, source = conditioning(model, x, y, z) if gates else (None, None, None)
    count_low = {g: torch.zeros(c.hidden, dtype=torch.float64) for g in gates}
    count_high = {g: torch.zeros(c.hidden, dtype=torch.float64) for g in gates}
    if gates:
        for start in range(0, x.shape[0], batch_size):
            part = slice(start, start + batch_size)
            lines = model.to_order(x[part])  # step t reads line t - 1 of the model's order
            inputs = model.step_inputs(model.shift_rows(lines), None if labels is None else labels[part],
                                       None if zs is None else zs[part])
            states = cells.unroll(model.rnn, inputs)[k]
            for g in gates:
                count_low[g] += (states[g] < low).sum((0, 1)).double().cpu()
                count_high[g] += (states[g] > high).sum((0, 1)).double().cpu()
    pairs = max(1, x.shape[0] * c.height)
    message = (NO_GATES if not gates else
               f"{c.cell.upper()} layer {k}: fraction of {x.shape[0]} images x {c.height} steps with each "
               f"gate unit < {low:g} (left) and > {high:g} (right)")
    return {"cell": c.cell, "layer": k, "gates": gates,
            "low": {g: (count_low[g] / pairs).numpy() for g in gates},
            "high": {g: (count_high[g] / pairs).numpy() for g in gates},
            "images": int(x.shape[0]), "steps": c.height, "units": c.hidden,
            "low_threshold": float(low), "high_threshold": float(high), "labels": source, "message": message}


# ---- teacher forcing vs free running -----------------------------------------------------------
@dataclass
class ForcingComparison:
    """One digit read teacher forced (true rows in) and free running (own rows in), side by side.

    Step t's state has read rows < t, so the two runs' states agree up to and including step
    ``first_diff_row`` (the first row the free run drew differently) and can part from the next.
    """

    true_image: np.ndarray  # (H, W) uint8 in {0, 1}
    forced: Trace  # teacher forced: probs = model_probs = p(pixel = 1 | true rows above and left)
    free: Trace  # free running: its own image, the tempered probabilities it drew with (probs)
    h_distance: np.ndarray  # (layers, H) float32: ||h_forced[t] - h_free[t]||_2 per layer and step
    c_distance: np.ndarray | None  # (layers, H) same for the LSTM cell state; None for GRU/RNN
    row_mismatch: np.ndarray  # (H,) int: pixels of line t (step t) where the free image differs from the true one
    first_diff_row: int | None  # first line with a mismatch; None when the free run drew the true image
    keep_rows: int  # lines copied from the true image before the free run started drawing
    seed: int
    temperature: float
    labels: str | None  # where the label came from: "given", "model argmax p(x|y)" or None

    @property
    def steps(self) -> int:
        return self.true_image.shape[0]

    @property
    def forced_probs(self) -> np.ndarray:
        """(H, W) p(pixel = 1) given the true rows (teacher forcing)."""
        return self.forced.model_probs

    @property
    def free_probs(self) -> np.ndarray:
        """(H, W) the probabilities the free run drew its pixels with (tempered; kept rows: model's)."""
        return self.free.probs

    @property
    def forced_row_nll(self) -> np.ndarray:
        """(H,) -log p(true row t | true rows < t) in nats."""
        return self.forced.row_nll

    @property
    def free_row_nll(self) -> np.ndarray:
        """(H,) -log p(drawn row t | drawn rows < t) in nats, at temperature 1."""
        return self.free.row_nll


def state_distance(a: Trace, b: Trace, name: str = "h") -> np.ndarray:
    """(layers, H) L2 distance between two traces' ``name`` states at every step of every layer."""
    return np.stack([np.linalg.norm(la[name].astype(np.float64) - lb[name].astype(np.float64), axis=-1)
                     for la, lb in zip(a.layers, b.layers)]).astype(np.float32)


@torch.no_grad()
def forcing_comparison(model: RowModel, image, y=None, seed: int = 0, temperature: float = 1.0, z=None,
                       keep_rows: int = 0) -> ForcingComparison:
    """Read one binary test ``image`` (H, W) teacher forced, and let the model run free from the
    same start (same label, same z) with ``seed``, after copying its first ``keep_rows`` true rows.

    ``keep_rows = H`` makes the free run a teacher-forced one (both runs then agree exactly). See
    the module docstring for the label and z used when ``y`` / ``z`` are not given."""
    x = as_images(image)
    if x.shape[0] != 1:
        raise ValueError(f"give one image (H, W), got {x.shape[0]}")
    H = model.config.height
    if not (isinstance(keep_rows, int) and 0 <= keep_rows <= H):
        raise ValueError(f"keep_rows must be an integer in [0, {H}], got {keep_rows!r}")
    x = x.to(model.positions.device)
    labels, zs, source = conditioning(model, x, y, z)
    (forced,) = trace_images(model, x, y=labels, z=zs)
    (free,) = sample_traces(model, 1, y=labels, temperature=temperature, seed=seed, prefix=x,
                            keep_rows=keep_rows, z=zs, kind="free running")
    true = forced.image
    mismatch = (forced.lines(free.image) != forced.lines(true)).sum(1)  # per line of the model's order
    rows = np.flatnonzero(mismatch)
    return ForcingComparison(
        true_image=true, forced=forced, free=free, h_distance=state_distance(forced, free, "h"),
        c_distance=state_distance(forced, free, "c") if model.config.cell == "lstm" else None,
        row_mismatch=mismatch, first_diff_row=int(rows[0]) if rows.size else None, keep_rows=keep_rows,
        seed=int(seed), temperature=float(temperature), labels=source)
