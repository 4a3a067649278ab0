"""Traces: everything the model computed while making (or reading) one image, step by step.

A ``Trace`` holds, for one image, per timestep t and per layer, every gate and state of the cell
(LSTM i, f, g, o, c, h; GRU r, z, n, h; RNN h; see ``cells.STATE_NAMES``), the probability of every
pixel as the head computed it, and the NLL of every step. Step t writes line t of the model's scan
order (``ModelConfig.order``; for the classic "rows", row t): the image and the probabilities are
kept as the image is seen, the states and the per-step NLL per line, and ``Trace.order`` says
which pixels line t is (``line_mask``, ``lines``).

- ``sample_traces``: sample images (any digit or a given one, with temperature and seed; optionally
  keeping the first rows of a given image) and return them with the exact states that made them.
- ``trace_images``: run given images through the model (teacher forcing) and record the same.

Both step the recurrent layers with ``cells.step`` (PyTorch's equations on the fused module's own
weights), so what the explorer shows is what produced the image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from . import cells
from .model import RowModel, from_order, to_order


@dataclass
class Trace:
    cell: str  # "lstm", "gru" or "rnn"
    image: np.ndarray  # (H, W) uint8 in {0, 1}
    label: int | None  # the class it was conditioned on (None: unconditional model)
    probs: np.ndarray  # (H, W) float32: p(pixel = 1) the head gave, tempered as sampled
    model_probs: np.ndarray  # (H, W) float32: the model's own p(pixel = 1) (temperature 1)
    row_nll: np.ndarray  # (H,) float32: -log p(line t | lines < t, label) in nats, at temperature 1
    layers: list[dict[str, np.ndarray]]  # per layer: name -> (H, hidden) float32, step t = line t
    temperature: float = 1.0
    seed: int | None = None
    keep_rows: int = 0  # lines copied from a given image (completion); 0 for a free sample
    latent: np.ndarray | None = None  # (latent,) the z a VAE decoded from; None for other models
    meta: dict = field(default_factory=dict)
    order: str = "rows"  # the model's scan order (rnnviz.model.ORDERS): step t writes line t of it

    @property
    def steps(self) -> int:
        return self.image.shape[0]

    @property
    def nll(self) -> float:
        """-log p(image | label) in nats."""
        return float(self.row_nll.sum())

    @property
    def names(self) -> tuple[str, ...]:
        return cells.STATE_NAMES[self.cell]

    def state(self, name: str, layer: int = -1, step: int | None = None) -> np.ndarray:
        """(H, hidden) for one gate/state, or (hidden,) at one step."""
        a = self.layers[layer][name]
        return a if step is None else a[step]

    def lines(self, a: np.ndarray) -> np.ndarray:
        """An image-shaped array (..., H, W) as the model's lines: ``lines(a)[t]`` is line t (step t),
        its pixels in the order they were written. ``lines(self.image)[t]`` is what step t wrote."""
        return np_order(a, self.order, to_order)

    def from_lines(self, a: np.ndarray) -> np.ndarray:
        """Lines (..., H, W) in the model's order back to an image as seen (undoes ``lines``)."""
        return np_order(a, self.order, from_order)

    def line_mask(self, step: int) -> np.ndarray:
        """(H, W) bool: the pixels of the image that step ``step`` writes (row ``step`` for "rows",
        a column for a column order; all False once ``step`` is past the last line)."""
        mask = np.zeros(self.image.shape, bool)
        if 0 <= step < self.steps:
            mask[step] = True
        return self.from_lines(mask)


def np_order(a, order: str, fn) -> np.ndarray:
    """``to_order`` / ``from_order`` on a NumPy array (a copy, contiguous)."""
    a = np.asarray(a)
    if order == "rows":
        return a.copy()
    return np.ascontiguousarray(fn(torch.from_numpy(np.ascontiguousarray(a)), order).numpy())


def _to_traces(model: RowModel, images, labels, probs, states, temperature, seed, keep_rows, kind,
               latents=None):
    """Score the finished images (as seen) under the model (temperature 1) and split per image:
    the per-step NLL is per line of the model's order, the probabilities are mapped back to pixels."""
    c = model.config
    with torch.no_grad():
        lines = model.to_order(images)
        prev = model.shift_rows(lines)
        ctx = torch.cat([states[-1]["h"], prev], dim=-1)  # the head's input, as in RowModel.line_logits
        logits = model.head(ctx, lines)
        row_nll = F.binary_cross_entropy_with_logits(logits, lines, reduction="none").sum(-1)
        model_probs = model.from_order(torch.sigmoid(logits))
    np_states = [{k: v.float().cpu().numpy() for k, v in layer.items()} for layer in states]
    out = []
    for b in range(images.shape[0]):
        out.append(Trace(
            cell=c.cell, image=images[b].cpu().numpy().astype(np.uint8),
            label=None if labels is None else int(labels[b]),
            probs=(model_probs if probs is None else probs)[b].float().cpu().numpy(), model_probs=model_probs[b].cpu().numpy(),
            row_nll=row_nll[b].cpu().numpy(), layers=[{k: v[b] for k, v in layer.items()} for layer in np_states],
            temperature=float(temperature), seed=seed, keep_rows=int(keep_rows), meta={"kind": kind},
            latent=None if latents is None else latents[b].float().cpu().numpy(), order=c.order))
    return out


def sample_traces(model: RowModel, n: int = 1, y=None, temperature: float = 1.0, seed: int = 0,
                  prefix=None, keep_rows: int = 0, z=None, kind: str | None = None,
                  clamps=None, edit_rows=None) -> list[Trace]:
    """Sample ``n`` images with ``model.sample`` and return them as traces (same seed, same images).
    A VAE decodes from ``z`` or, when None, from z drawn from its prior. ``keep_rows`` copies the
    first lines of the model's order from ``prefix`` (an image as seen). ``clamps`` and
    ``edit_rows`` (step -> line, its pixels in the order written) intervene in the run (see
    ``RowModel.sample`` and ``rnnviz.interventions``)."""
    s = model.sample(n, y=y, temperature=temperature, seed=seed, prefix=prefix, keep_rows=keep_rows, z=z,
                     clamps=clamps, edit_rows=edit_rows)
    kind = kind or ("completion" if keep_rows else "sample")
    return _to_traces(model, s.images, s.labels, s.probs, s.states, temperature, seed, keep_rows, kind,
                      s.latents)


@torch.no_grad()
def reconstruct_traces(model: RowModel, images, temperature: float = 1.0, seed: int = 0,
                       n: int = 1, use_mean: bool = True) -> list[Trace]:
    """A VAE redraws an image: encode it to q(z | x), then decode row by row from z = mu
    (``use_mean``) or from one draw of q. ``n`` redraws of the one image (B=1) or one per image."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    if x.dim() == 2:
        x = x[None]
    mu, logvar = model.encode(x)
    z = mu
    if not use_mean:
        gen = torch.Generator().manual_seed(int(seed) + 1)
        z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * logvar).exp()
    if z.shape[0] == 1 and n > 1:
        z = z.expand(n, -1)
    traces = sample_traces(model, z.shape[0], temperature=temperature, seed=seed, z=z, kind="reconstruction")
    for t, src in zip(traces, x.expand(z.shape[0], -1, -1)):
        t.meta["source"] = src.numpy().astype(np.uint8)
    return traces


@torch.no_grad()
def trace_images(model: RowModel, images, y=None, z=None, clamps=None) -> list[Trace]:
    """Traces of given binary images (B, H, W) or (H, W), read with teacher forcing.
    A VAE reads them with ``z`` or, when None, with the mean of q(z | x) of each image.
    ``clamps`` (step -> ``cells.step``'s clamp) reads them with gates or states overwritten."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    if x.dim() == 2:
        x = x[None]
    labels = model.labels_for(y, x.shape[0], x.device)
    if model.config.latent and z is None:
        z = model.encode(x)[0]
    z = model.latents_for(z, x.shape[0], x.device)
    lines = model.to_order(x)  # step t reads line t - 1 of the model's order
    states = cells.unroll(model.rnn, model.step_inputs(model.shift_rows(lines), labels, z), clamps)
    return _to_traces(model, x, labels, None, states, 1.0, None, 0, "image", z)
