"""The row-by-row recurrent image model.

One timestep per image row. At step t the recurrent layers read the previous row (zeros at t=0),
a one-hot of the row index and a one-hot of the class, and a masked autoregressive head predicts
the W pixels of row t as Bernoulli logits: pixel j sees the top layer's hidden state, the row above
and pixels 0..j-1 of its own row (a MADE layer, Germain et al. 2015; ``rnnviz.head``). So

    log p(x | y) = sum_t sum_j log Bernoulli(x[t, j] | head(h_t, x[t-1], x[t, :j]))

exactly, and sampling walks the same factorization pixel by pixel.

With ``latent > 0`` the model is a variational autoencoder (Kingma & Welling 2014): a small CNN
``Encoder`` maps an image to q(z | x) = N(mu, sigma^2), and the recurrent decoder reads z at every
step in place of the class. Its likelihood is a bound: the ELBO for training,
``log_prob(x, samples=K)`` the importance-weighted bound (Burda et al. 2016), tighter as K grows.

Training runs the fused ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN``; the step-by-step gates that the
explorer shows are recomputed from the same weights in ``rnnviz.cells`` and ``rnnviz.trace``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import cells
from .head import MaskedRowHead
from .rules import MODEL_BOUNDS, ORDER_NAMES, ORDERS  # noqa: F401  (the 8 scan orders; re-exported)

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

def to_order(x: Tensor, order: str) -> Tensor:
    """Images (..., H, W) as the model of ``order`` writes them: line t of the result is the model's
    step t, pixel j of a line its j-th pixel. The inverse is ``from_order``."""
    transpose, flip_lines, flip_pixels = ORDERS[order]
    if transpose:
        x = x.transpose(-1, -2)
    dims = [d for d, f in ((-2, flip_lines), (-1, flip_pixels)) if f]
    return x.flip(dims) if dims else x


def from_order(x: Tensor, order: str) -> Tensor:
    """Lines (..., H, W) in the model's order back to images as they are seen (undoes ``to_order``)."""
    transpose, flip_lines, flip_pixels = ORDERS[order]
    dims = [d for d, f in ((-2, flip_lines), (-1, flip_pixels)) if f]
    x = x.flip(dims) if dims else x
    return x.transpose(-1, -2) if transpose else x


@dataclass(frozen=True)
class ModelConfig:
    cell: str = "lstm"  # "lstm", "gru" or "rnn" (tanh)
    hidden: int = 256  # units per recurrent layer
    layers: int = 1  # stacked recurrent layers
    num_classes: int = 10  # 0 for an unconditional model
    head_hidden: int = 512  # hidden units of the masked row head
    height: int = 28  # rows = timesteps
    width: int = 28  # pixels per row
    latent: int = 0  # size of z for a VAE (CNN encoder + this decoder); 0 = no encoder
    order: str = "rows"  # scan order, one of ORDERS (a column order needs height == width)

    def __post_init__(self):
        problems = []
        if self.cell not in CELLS:
            problems.append(f"cell must be one of {sorted(CELLS)}, got {self.cell!r}")
        for name, (lo, hi) in MODEL_BOUNDS.items():
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
                problems.append(f"{name} must be an integer in [{lo}, {hi}], got {v!r}")
        if not isinstance(self.order, str) or self.order not in ORDERS:
            problems.append(f"order must be one of {sorted(ORDERS)}, got {self.order!r}")
        elif ORDERS[self.order][0] and self.height != self.width:
            problems.append(f"a column order needs square images, got {self.height}x{self.width}")
        if self.latent and self.num_classes:
            problems.append("a VAE (latent > 0) is unconditional here: set num_classes=0")
        if self.latent and (self.height < 4 or self.width < 4):
            problems.append("the VAE encoder needs images of at least 4x4")
        if problems:
            raise ValueError("invalid model config: " + "; ".join(problems))

    @property
    def input_size(self) -> int:
        return self.width + self.height + self.num_classes + self.latent

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        return cls(**d)


class Sample(NamedTuple):
    images: Tensor  # (n, H, W) in {0, 1}
    labels: Tensor | None  # (n,) class indices, None for an unconditional model
    probs: Tensor  # (n, H, W) the probability each pixel was drawn with (given rows: the model's)
    states: list[dict[str, Tensor]]  # per layer: name -> (n, H, hidden), see cells.STATE_NAMES
    latents: Tensor | None = None  # (n, latent) the z each image was decoded from (VAE only)


class Encoder(nn.Module):
    """q(z | x): two stride-2 convolutions and a linear layer to the mean and log-variance of z."""

    def __init__(self, latent: int, height: int, width: int, channels: int = 32, hidden: int = 256):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(1, channels, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten())
        h, w = (height + 3) // 4, (width + 3) // 4
        self.fc = nn.Sequential(nn.Linear(2 * channels * h * w, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(B, H, W) images -> (mu, logvar), each (B, latent)."""
        mu, logvar = self.fc(self.conv(x[:, None])).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)


class RowModel(nn.Module):
    """p(image | class) as a recurrent model over rows with a masked row head."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        c = config
        self.rnn = CELLS[c.cell](c.input_size, c.hidden, num_layers=c.layers, batch_first=True)
        self.head = MaskedRowHead(c.hidden + c.width, c.width, c.head_hidden)
        self.encoder = Encoder(c.latent, c.height, c.width) if c.latent else None
        self.register_buffer("positions", torch.eye(c.height), persistent=False)
        # Training-time regularizer, set by the trainer: in train mode, drop this fraction of the
        # recurrent output, of what each stacked layer passes to the next, and of the head's hidden
        # units. Not part of the config: in eval mode (scoring, sampling, the explorer's trace) the
        # function is the same for any value.
        self.dropout = 0.0

    @property
    def dropout(self) -> float:
        return self._dropout

    @dropout.setter
    def dropout(self, p: float) -> None:
        self._dropout = float(p)
        # nn.LSTM/GRU/RNN apply their own ``dropout`` between stacked layers, in train mode only.
        self.rnn.dropout = float(p) if self.config.layers > 1 else 0.0

    # ---- inputs -------------------------------------------------------------------------------
    def labels_for(self, y, n: int, device) -> Tensor | None:
        """Class indices (n,) as a tensor, or None for an unconditional model."""
        if self.config.num_classes == 0:
            return None
        if y is None:
            raise ValueError("this model is class-conditional: give y (use log_prob for the marginal)")
        y = torch.as_tensor(y, device=device).long().reshape(-1)
        if y.numel() == 1:
            y = y.expand(n)
        if y.numel() != n:
            raise ValueError(f"got {y.numel()} labels for {n} images")
        if (y < 0).any() or (y >= self.config.num_classes).any():
            raise ValueError(f"labels must be in [0, {self.config.num_classes - 1}]")
        return y

    def latents_for(self, z, n: int, device) -> Tensor | None:
        """z (n, latent) as a tensor, or None for a model without an encoder."""
        if not self.config.latent:
            if z is not None:
                raise ValueError("this model has no latent z (latent=0)")
            return None
        if z is None:
            raise ValueError("this VAE decodes from a latent z: give z (encode an image or draw from the prior)")
        z = torch.as_tensor(z, dtype=torch.float32, device=device).reshape(-1, self.config.latent)
        if z.shape[0] == 1:
            z = z.expand(n, -1)
        if z.shape[0] != n:
            raise ValueError(f"got {z.shape[0]} latents for {n} images")
        if not torch.isfinite(z).all():
            raise ValueError("z must be finite")
        return z

    def conditioning(self, n: int, y: Tensor | None, z: Tensor | None = None) -> Tensor:
        """What the recurrent layers read at every step besides the row above: a one-hot of the
        step, for a class-conditional model a one-hot of the class, for a VAE the latent z.
        (n, H, H + C + latent)."""
        H = self.config.height
        parts = [self.positions.expand(n, -1, -1)]
        if y is not None:
            parts.append(F.one_hot(y, self.config.num_classes).to(self.positions)[:, None].expand(n, H, -1))
        if z is not None:
            parts.append(z.to(self.positions)[:, None].expand(n, H, -1))
        return torch.cat(parts, dim=-1)

    def step_inputs(self, prev_rows: Tensor, y: Tensor | None, z: Tensor | None = None) -> Tensor:
        """Recurrent inputs (B, H, D) for all steps, given the row before each step."""
        return torch.cat([prev_rows, self.conditioning(prev_rows.shape[0], y, z)], dim=-1)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """q(z | x) of a VAE: (mu, logvar), each (B, latent), for images (B, H, W) or (H, W)."""
        if self.encoder is None:
            raise ValueError("this model has no encoder (latent=0)")
        x = torch.as_tensor(x, dtype=torch.float32, device=self.positions.device)
        return self.encoder(x if x.dim() == 3 else x[None])

    @staticmethod
    def shift_rows(x: Tensor) -> Tensor:
        """Row t-1 at position t, zeros at t=0."""
        return F.pad(x, (0, 0, 1, 0))[:, :-1]

    # ---- likelihood ---------------------------------------------------------------------------
    def to_order(self, x: Tensor) -> Tensor:
        """Images (..., H, W) as lines in this model's scan order (identity for "rows")."""
        return to_order(x, self.config.order)

    def from_order(self, x: Tensor) -> Tensor:
        """Lines in this model's scan order back to images (identity for "rows")."""
        return from_order(x, self.config.order)

    def forward(self, x: Tensor, y=None, z=None) -> Tensor:
        """Bernoulli logits (B, H, W) for binary images ``x`` (B, H, W), teacher forced, each at its
        pixel of the image whatever the scan order."""
        return self.from_order(self.line_logits(self.to_order(x), y, z))

    def line_logits(self, x: Tensor, y=None, z=None) -> Tensor:
        """Bernoulli logits (B, H, W) for lines ``x`` (B, H, W) already in the model's scan order."""
        y = self.labels_for(y, x.shape[0], x.device)
        z = self.latents_for(z, x.shape[0], x.device)
        prev = self.shift_rows(x)
        out, _ = self.rnn(self.step_inputs(prev, y, z))
        p = self.dropout if self.training else 0.0
        if p:
            out = F.dropout(out, p, training=True)
        return self.head(torch.cat([out, prev], dim=-1), x, dropout=p)

    def nll(self, x: Tensor, y=None, reduce: bool = True, z=None) -> Tensor:
        """-log p(x | y) (a VAE: -log p(x | z)) in nats per image (mean over the batch if ``reduce``)."""
        logits = self.forward(x, y, z)
        per_image = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2))
        return per_image.mean() if reduce else per_image

    @staticmethod
    def kl_per_dim(mu: Tensor, logvar: Tensor) -> Tensor:
        """KL(N(mu, exp(logvar)) || N(0, 1)) per dimension, (B, latent)."""
        return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)

    def loss(self, x: Tensor, y=None, free_bits: float = 0.0) -> tuple[Tensor, Tensor]:
        """(objective to minimise, -bound reported) as batch means in nats per image.

        Without an encoder both are -log p(x | y). For a VAE the reported value is the negative
        ELBO, -E_q[log p(x | z)] + KL(q(z | x) || p(z)) with one reparameterized z; the objective
        is the same with each dimension's batch-mean KL held at least ``free_bits`` nats
        (Kingma et al. 2016), so the decoder cannot learn to ignore z.
        """
        if self.encoder is None:
            nll = self.nll(x, y)
            return nll, nll
        mu, logvar = self.encoder(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = self.nll(x, z=z)
        kl = self.kl_per_dim(mu, logvar).mean(0)
        return rec + kl.clamp(min=free_bits).sum(), rec + kl.sum()

    @torch.no_grad()
    def log_prob(self, x: Tensor, y=None, samples: int = 1, seed: int = 0) -> Tensor:
        """log p(x) in nats per image for binary images (B, H, W).

        For a class-conditional model and ``y=None`` this is the exact marginal
        log((1/C) * sum_y p(x | y)) over the C classes. For a VAE it is a lower bound: the
        importance-weighted bound with ``samples`` draws from q(z | x) (1 = the ELBO), the draws
        seeded with ``seed``.
        """
        x = torch.as_tensor(x).float()
        if x.dim() == 2:
            x = x[None]
        if self.encoder is not None:
            return self._iw_bound(x, samples, seed)
        C = self.config.num_classes
        if C == 0 or y is not None:
            return -self.nll(x, y, reduce=False)
        return torch.logsumexp(self.class_log_likelihoods(x), dim=1) - math.log(C)

    @torch.no_grad()
    def class_log_likelihoods(self, x: Tensor, rows: int | None = None) -> Tensor:
        """log p(x | y) for every class y, (B, C) nats: each image scored once per class. With
        ``rows``, only the first ``rows`` lines the model writes count (log p(x_0..x_{rows-1} | y); rows
        for the classic order); the marginal,
        the most likely class and the class posterior of a prefix are all read from this."""
        C = self.config.num_classes
        if C == 0:
            raise ValueError("this model is unconditional: it has no classes to score")
        x = torch.as_tensor(x).float()
        if x.dim() == 2:
            x = x[None]
        B = x.shape[0]
        xs = x.repeat_interleave(C, dim=0)
        ys = torch.arange(C, device=x.device).repeat(B)
        if rows is None:
            return (-self.nll(xs, ys, reduce=False)).view(B, C)
        lines = self.to_order(xs)  # "the first rows" are the first lines the model writes
        bits = F.binary_cross_entropy_with_logits(self.line_logits(lines, ys), lines, reduction="none")
        return (-bits[:, :rows].sum((1, 2))).view(B, C)

    def _iw_bound(self, x: Tensor, samples: int, seed: int) -> Tensor:
        """log (1/K) sum_k p(x | z_k) p(z_k) / q(z_k | x), z_k ~ q(z | x): a lower bound on log p(x)."""
        if not (isinstance(samples, int) and samples >= 1):
            raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
        B, K = x.shape[0], samples
        mu, logvar = self.encoder(x)
        std = (0.5 * logvar).exp()
        gen = torch.Generator().manual_seed(int(seed))
        eps = torch.randn(K, B, self.config.latent, generator=gen).to(x.device)
        z = mu + eps * std  # (K, B, latent)
        log_q = (-0.5 * eps.pow(2) - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_prior = (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)
        log_px = torch.stack([-self.nll(x, z=z[k], reduce=False) for k in range(K)])
        return torch.logsumexp(log_px + log_prior - log_q, dim=0) - math.log(K)

    # ---- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int = 1, y=None, temperature: float = 1.0, seed: int = 0,
               prefix: Tensor | None = None, keep_rows: int = 0, z=None,
               clamps: Mapping[int, Mapping[int, cells.Clamp]] | None = None,
               edit_rows: Mapping[int, Tensor] | None = None):
        """Draw ``n`` images, stepping the recurrent layers with ``cells.step``.

        Returns a ``Sample``: the images (n, H, W), their labels, the probabilities each pixel was
        drawn with and every layer's gates and states per step (the exact ones that made it).

        ``y``: a class, a tensor of n classes, or None for any class (drawn uniformly). The first
        ``keep_rows`` lines of the model's scan order (rows, for the classic order) are copied from
        ``prefix`` (n or 1 images) and the rest sampled. Images and probabilities come back as
        images; step t of the states is the model's line t. The same
        seed gives the same images: all randomness comes from one generator seeded with ``seed``.
        A VAE decodes from ``z`` (n or 1 latents, e.g. ``encode(x)[0]`` to reconstruct x), or
        from z drawn from its prior N(0, I) when ``z`` is None.

        Interventions (see ``rnnviz.interventions``): ``clamps`` maps a step to the ``clamp`` that
        ``cells.step`` applies there, and ``edit_rows`` a step t to a line (W,) that replaces line
        t instead of being sampled. Everything else, the random numbers included, stays the same, so
        up to the first intervened step the images and states equal those without them.
        """
        c = self.config
        clamps, edit_rows = clamps or {}, edit_rows or {}
        outside = sorted(t for t in {*clamps, *edit_rows} if not (isinstance(t, int) and 0 <= t < c.height))
        if outside:
            raise ValueError(f"intervened steps must be in [0, {c.height - 1}], got {outside}")
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0, got {temperature!r}")
        if not 0 <= keep_rows <= c.height:
            raise ValueError(f"keep_rows must be in [0, {c.height}], got {keep_rows}")
        device = self.positions.device
        gen = torch.Generator().manual_seed(int(seed))
        labels = None
        if c.num_classes:
            labels = (torch.randint(c.num_classes, (n,), generator=gen) if y is None
                      else self.labels_for(y, n, "cpu"))
            labels = labels.to(device)
        latents = None
        if c.latent:  # the prior draw is always taken, so a given z leaves the pixel noise unchanged
            prior = torch.randn(n, c.latent, generator=gen)
            latents = self.latents_for(prior if z is None else z, n, device)
        elif z is not None:
            raise ValueError("this model has no latent z (latent=0)")
        uniforms = torch.rand(n, c.height, c.width, generator=gen).to(device)
        images = torch.zeros(n, c.height, c.width, device=device)
        probs = torch.zeros_like(images)
        if keep_rows:
            if prefix is None:
                raise ValueError("keep_rows > 0 needs a prefix image")
            prefix = self.to_order(torch.as_tensor(prefix).float().to(device).reshape(-1, c.height, c.width))
            images[:, :keep_rows] = prefix[:, :keep_rows].expand(n, -1, -1)
        for t, row in edit_rows.items():
            images[:, t] = torch.as_tensor(row, dtype=images.dtype, device=device)
        given = set(range(keep_rows)) | set(edit_rows)  # rows read, not sampled

        masked = self.head.masked_weights()
        state = cells.initial_state(self.rnn, n, device)
        prev = torch.zeros(n, 1, c.width, device=device)
        cond = self.conditioning(n, labels, latents)
        steps = []
        for t in range(c.height):
            state = cells.step(self.rnn, torch.cat([prev[:, 0], cond[:, t]], dim=-1), state, clamps.get(t))
            steps.append(state)
            ctx = torch.cat([state[-1]["h"], prev[:, 0]], dim=-1)
            if t in given:
                probs[:, t] = torch.sigmoid(self.head(ctx, images[:, t], masked))
            else:
                images[:, t], probs[:, t] = self.head.sample(ctx, uniforms[:, t], temperature, masked)
            prev = images[:, t:t + 1]
        names = cells.STATE_NAMES[c.cell]
        states = [{k: torch.stack([s[layer][k] for s in steps], dim=1) for k in names}
                  for layer in range(c.layers)]
        return Sample(self.from_order(images), labels, self.from_order(probs), states, latents)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- growing --------------------------------------------------------------------------------
    @torch.no_grad()
    def widened(self, hidden: int | None = None, head_hidden: int | None = None, seed: int = 0) -> "RowModel":
        """A copy with more recurrent units per layer and/or more head units that computes exactly
        the same function (Net2Net-style growth, Chen et al. 2016): every old weight is kept, a new
        unit's incoming weights start as a fresh layer's would (seeded), and its outgoing weights
        start at zero, so it changes nothing until training moves them."""
        c = self.config
        new = ModelConfig(**{**c.to_dict(), "hidden": hidden or c.hidden, "head_hidden": head_hidden or c.head_hidden})
        if new.hidden < c.hidden or new.head_hidden < c.head_hidden:
            raise ValueError(f"can only widen: {c.hidden}x{c.head_hidden} -> {new.hidden}x{new.head_hidden}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            grown = RowModel(new).to(self.positions.device)
        old_h, new_h, gates = c.hidden, new.hidden, self.rnn.weight_hh_l0.shape[0] // c.hidden
        for k in range(c.layers):
            for name in (f"weight_ih_l{k}", f"weight_hh_l{k}", f"bias_ih_l{k}", f"bias_hh_l{k}"):
                src, dst = getattr(self.rnn, name), getattr(grown.rnn, name)
                for g in range(gates):
                    old_rows, new_rows = slice(g * old_h, (g + 1) * old_h), slice(g * new_h, g * new_h + old_h)
                    if src.dim() == 1:
                        dst[new_rows] = src[old_rows]
                        continue
                    dst[new_rows] = 0.0  # an old unit does not hear the new units (of this layer or below)
                    dst[new_rows, :src.shape[1]] = src[old_rows]
        # the head reads [top hidden state | row above]: new state columns are zero, the row moves
        ho, hn = c.head_hidden, new.head_hidden
        for name in ("ctx_to_hid", "ctx_to_out"):
            src, dst = getattr(self.head, name), getattr(grown.head, name)
            rows = slice(0, src.weight.shape[0])
            dst.weight[rows] = 0.0
            dst.weight[rows, :old_h] = src.weight[:, :old_h]
            dst.weight[rows, new_h:] = src.weight[:, old_h:]
            dst.bias[rows] = src.bias
        grown.head.pix_to_hid[:ho] = self.head.pix_to_hid
        grown.head.hid_to_out[:, ho:hn] = 0.0  # new head units start silent
        grown.head.hid_to_out[:, :ho] = self.head.hid_to_out
        grown.head.pix_to_out.copy_(self.head.pix_to_out)
        if self.encoder is not None:
            grown.encoder.load_state_dict(self.encoder.state_dict())
        return grown
