"""The masked row head: p(row t | the recurrent state, the row above) as a MADE layer (Germain et al.
2015), and its exact sampler.

Pixel j of a row sees the context (the top layer's hidden state and the row above) and pixels 0..j-1
of its own row, never itself or later ones: the masks below make the head autoregressive within the
row, so sum_j log Bernoulli(x_j | head(...)) is an exact log-likelihood of the row. ``RowModel``
(``rnnviz.model``) owns one and reads it at every step.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MaskedRowHead(nn.Module):
    """Autoregressive Bernoulli logits for one row of W pixels, given a context vector.

    Hidden unit k has degree m_k = k mod W and sees pixels d < m_k; output j sees hidden units with
    m_k <= j and, through a direct connection, pixels d < j. The context (recurrent state and the
    row above) reaches every hidden unit and every output.
    """

    def __init__(self, context: int, width: int, hidden: int):
        super().__init__()
        self.width = width
        self.ctx_to_hid = nn.Linear(context, hidden)
        self.ctx_to_out = nn.Linear(context, width)
        self.pix_to_hid = nn.Parameter(torch.empty(hidden, width))
        self.hid_to_out = nn.Parameter(torch.empty(width, hidden))
        self.pix_to_out = nn.Parameter(torch.zeros(width, width))
        nn.init.kaiming_uniform_(self.pix_to_hid, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.hid_to_out, a=math.sqrt(5))
        degree = torch.arange(hidden) % width
        pix = torch.arange(width)
        self.register_buffer("mask_in", (pix[None, :] < degree[:, None]).float(), persistent=False)
        self.register_buffer("mask_out", (degree[None, :] <= pix[:, None]).float(), persistent=False)
        self.register_buffer("mask_direct", (pix[None, :] < pix[:, None]).float(), persistent=False)

    def masked_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        return (self.pix_to_hid * self.mask_in, self.hid_to_out * self.mask_out,
                self.pix_to_out * self.mask_direct)

    def context(self, ctx: Tensor) -> tuple[Tensor, Tensor]:
        """The context's share of the hidden pre-activations and of the logits (fixed per row)."""
        return self.ctx_to_hid(ctx), self.ctx_to_out(ctx)

    def logits(self, context: tuple[Tensor, Tensor], row: Tensor, masked: tuple, dropout: float = 0.0) -> Tensor:
        """Logits of every pixel of ``row`` given the row's ``context`` and ``masked_weights()``;
        ``dropout`` > 0 (training only) drops hidden units."""
        to_hid, to_out = context
        w_in, w_out, w_direct = masked
        hid = F.relu(to_hid + row @ w_in.T)
        if dropout:
            hid = F.dropout(hid, dropout, training=True)
        return to_out + hid @ w_out.T + row @ w_direct.T

    def forward(self, ctx: Tensor, row: Tensor, masked: tuple | None = None, dropout: float = 0.0) -> Tensor:
        """Logits for every pixel of ``row`` (..., W) given ``ctx`` (..., K), teacher forced.
        ``masked``: ``masked_weights()`` computed once by a caller that evaluates the head often."""
        return self.logits(self.context(ctx), row, masked if masked is not None else self.masked_weights(), dropout)

    @torch.no_grad()
    def sample(self, ctx: Tensor, uniforms: Tensor, temperature: float,
               masked: tuple | None = None) -> tuple[Tensor, Tensor]:
        """Sample a row: pixel j is 1 where ``uniforms[:, j] < p_j``, p_j given pixels 0..j-1.

        Returns (row, p) with p the (tempered) probabilities the pixels were drawn with.

        Exact and fast (a fixed-point iteration with the noise held fixed): evaluate the head on a
        guess of the whole row and draw every undecided pixel from the result. Up to the first
        pixel whose draw differs from its guess, every probability was computed from the right
        prefix, so those pixels and the first differing one are final; the rest take their new
        draws as the next guess. A row costs 1 + (number of wrong guesses) head evaluations
        instead of W, each one ``logits`` itself. The bookkeeping between evaluations is index
        work on a few dozen numbers, done in NumPy (a PyTorch op costs more to dispatch).
        """
        masked = masked if masked is not None else self.masked_weights()
        context = self.context(ctx)
        device = ctx.device
        B, W = uniforms.shape
        u = uniforms.float().cpu().numpy()
        row = np.zeros((B, W), np.float32)  # final before ``pos``, a guess from ``pos`` on
        row_t = torch.from_numpy(row)  # shares memory with ``row`` on the CPU
        probs = np.zeros((B, W), np.float32)
        cols = np.arange(W)
        pos = np.zeros(B, np.int64)  # first undecided pixel of each row
        while (pos < W).any():
            logits = self.logits(context, row_t.to(device), masked)
            if temperature > 0:
                p = torch.sigmoid(logits / temperature).float().cpu().numpy()
            else:
                p = (logits > 0).float().cpu().numpy()
            draws = (u < p).astype(np.float32)
            undecided = cols >= pos[:, None]
            wrong = undecided & (draws != row)
            first = np.where(wrong.any(1), wrong.argmax(1), W)  # first wrong guess, or W if none
            now = undecided & (cols <= first[:, None])
            probs[now] = p[now]
            row[undecided] = draws[undecided]
            pos = first + 1
        return torch.from_numpy(row).to(device), torch.from_numpy(probs).to(device)
