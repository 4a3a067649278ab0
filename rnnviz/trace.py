"""Traces: everything the model computed while making (or reading) one image, step by step.

A ``Trace`` holds, for one image, per timestep t (= row) and per layer, every gate and state of the
cell (LSTM i, f, g, o, c, h; GRU r, z, n, h; RNN h; see ``cells.STATE_NAMES``), the probability of
every pixel as the head computed it, and the NLL of every row.

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
from .model import RowModel


@dataclass
class Trace:
    cell: str  # "lstm", "gru" or "rnn"
    image: np.ndarray  # (H, W) uint8 in {0, 1}
    label: int | None  # the class it was conditioned on (None: unconditional model)
    probs: np.ndarray  # (H, W) float32: p(pixel = 1) the head gave, tempered as sampled
    model_probs: np.ndarray  # (H, W) float32: the model's own p(pixel = 1) (temperature 1)
    row_nll: np.ndarray  # (H,) float32: -log p(row t | rows < t, label) in nats, at temperature 1
    layers: list[dict[str, np.ndarray]]  # per layer: name -> (H, hidden) float32
    temperature: float = 1.0
    seed: int | None = None
    keep_rows: int = 0  # rows copied from a given image (completion); 0 for a free sample
    meta: dict = field(default_factory=dict)

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

    def canvas(self, step: int) -> np.ndarray:
        """What the image looks like while row ``step`` is being drawn: rows before it as drawn,
        row ``step`` as the head's probabilities, later rows empty. (H, W) float32 in [0, 1]."""
        out = np.zeros(self.image.shape, np.float32)
        out[:step] = self.image[:step]
        if step < self.steps:
            out[step] = self.probs[step]
        return out


def _to_traces(model: RowModel, images, labels, probs, states, temperature, seed, keep_rows, kind):
    """Score the finished images under the model (temperature 1) and split per image."""
    c = model.config
    with torch.no_grad():
        prev = model.shift_rows(images)
        ctx = torch.cat([states[-1]["h"], prev], dim=-1)
        logits = model.head(ctx, images)
        row_nll = F.binary_cross_entropy_with_logits(logits, images, reduction="none").sum(-1)
        model_probs = torch.sigmoid(logits)
    np_states = [{k: v.float().cpu().numpy() for k, v in layer.items()} for layer in states]
    out = []
    for b in range(images.shape[0]):
        out.append(Trace(
            cell=c.cell, image=images[b].cpu().numpy().astype(np.uint8),
            label=None if labels is None else int(labels[b]),
            probs=(model_probs if probs is None else probs)[b].float().cpu().numpy(), model_probs=model_probs[b].cpu().numpy(),
            row_nll=row_nll[b].cpu().numpy(), layers=[{k: v[b] for k, v in layer.items()} for layer in np_states],
            temperature=float(temperature), seed=seed, keep_rows=int(keep_rows), meta={"kind": kind}))
    return out


def sample_traces(model: RowModel, n: int = 1, y=None, temperature: float = 1.0, seed: int = 0,
                  prefix=None, keep_rows: int = 0) -> list[Trace]:
    """Sample ``n`` images with ``model.sample`` and return them as traces (same seed, same images)."""
    s = model.sample(n, y=y, temperature=temperature, seed=seed, prefix=prefix, keep_rows=keep_rows)
    kind = "completion" if keep_rows else "sample"
    return _to_traces(model, s.images, s.labels, s.probs, s.states, temperature, seed, keep_rows, kind)


@torch.no_grad()
def trace_images(model: RowModel, images, y=None) -> list[Trace]:
    """Traces of given binary images (B, H, W) or (H, W), read with teacher forcing."""
    x = torch.as_tensor(np.asarray(images), dtype=torch.float32)
    if x.dim() == 2:
        x = x[None]
    labels = model._labels(y, x.shape[0], x.device)
    states = cells.unroll(model.rnn, model.step_inputs(model.shift_rows(x), labels))
    return _to_traces(model, x, labels, None, states, 1.0, None, 0, "image")
