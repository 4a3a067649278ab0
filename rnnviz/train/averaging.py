"""Weight averaging (``TrainConfig.ema``, ``--ema DECAY``): Polyak averaging of the weights.

Late in a run the weights jitter around a minimum; their exponential moving average sits nearer to
it. The average, updated after every step on the main worker, is what is scored, sampled and saved
as the model; the training weights go beside it in the checkpoint, so ``--resume`` continues both.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ..model import RowModel


def ema_decay(decay: float, step: int) -> float:
    """The weight average's decay at ``step`` (0-based): ``decay``, but (1 + step) / (10 + step)
    while that is lower, so that early on, and in a short run, the average follows the recent weights
    instead of holding on to the random start (TensorFlow's ExponentialMovingAverage with
    ``num_updates`` does the same). The average then spans about the last tenth of the steps until
    the full decay takes over (for 0.999 from step 8,990 on)."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """average <- decay * average + (1 - decay) * model, parameter by parameter."""
    for a, p in zip(average.parameters(), model.parameters()):
        a.lerp_(p.detach(), 1.0 - decay)


def start_average(model: RowModel, saved: RowModel | None) -> RowModel:
    """The average at the start of a run: a copy of ``model``, or where a resumed run left it
    (``saved``: the resumed file's model, which with averaging is the average)."""
    average = copy.deepcopy(model).requires_grad_(False)
    if saved is not None:  # go on averaging from the saved average, not from a copy
        average.load_state_dict(saved.state_dict())
    return average
