"""What every analysis of test images shares: how images are read, what the model is conditioned on
while reading them, which layer is meant, and which states are gates.

``rnnviz.analysis`` (gate saturation, teacher forcing) and ``rnnviz.units`` (what the units do) both
build on this module and on nothing of each other's:

- ``as_images``: binary images as a float32 (B, H, W) tensor, refused unless every pixel is 0 or 1;
- ``model_labels``: the class the model finds most likely for each image, argmax_y log p(x | y);
- ``conditioning``: what a model reads images with: the given labels, else ``model_labels`` (recorded
  as "model argmax p(x|y)"); a VAE's z = the mean of q(z | x) unless one is given;
- ``layer_index``: a layer number (negative counts from the top) checked against the model;
- ``GATES``: the sigmoid gates of each cell (the ones that can saturate at 0 and 1), in display order.
"""

from __future__ import annotations

import numpy as np
import torch

from .model import RowModel
from .rules import SIGMOID, STATE_NAMES

GATES: dict[str, tuple[str, ...]] = {cell: tuple(n for n in names if n in SIGMOID)
                                     for cell, names in STATE_NAMES.items()}


def as_images(images) -> torch.Tensor:
    """Binary images as a float32 (B, H, W) tensor."""
    x = images.float() if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images), dtype=torch.float32)
    if x.dim() == 2:
        x = x[None]
    if x.dim() != 3:
        raise ValueError(f"images must be (B, H, W) or (H, W), got shape {tuple(x.shape)}")
    if not bool(((x == 0) | (x == 1)).all()):
        raise ValueError("images must be binary (0 or 1): binarize them first (rnnviz.data.binarize_fixed)")
    return x


@torch.no_grad()
def model_labels(model: RowModel, x: torch.Tensor) -> torch.Tensor:
    """The class the model finds most likely for each image: argmax_y log p(x | y), (B,) int64."""
    return model.class_log_likelihoods(x).argmax(1)


@torch.no_grad()
def conditioning(model: RowModel, x: torch.Tensor, y=None, z=None) -> tuple[torch.Tensor | None,
                                                                               torch.Tensor | None, str | None]:
    """(labels, z, where the labels came from) to read images ``x`` with; see the module docstring."""
    labels, source = None, None
    if model.config.num_classes:
        if y is None:
            labels, source = model_labels(model, x), "model argmax p(x|y)"
        else:
            labels, source = model.labels_for(y, x.shape[0], x.device), "given"
    elif y is not None:
        raise ValueError("this model is unconditional: it takes no label y")
    if model.config.latent and z is None:
        z = model.encode(x)[0]
    return labels, model.latents_for(z, x.shape[0], x.device), source


def layer_index(model: RowModel, layer: int) -> int:
    """``layer`` (negative counts from the top) as an index in [0, layers), or ValueError."""
    n = model.config.layers
    if not -n <= layer < n:
        raise ValueError(f"layer must be in [{-n}, {n - 1}], got {layer}")
    return layer % n
