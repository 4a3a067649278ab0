"""The recurrent cells, written out step by step from a fused PyTorch module's own weights.

Training uses the fused ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` (fast). The explorer needs the gates
that the fused kernel computes but does not return, so this file recomputes them with PyTorch's
exact equations and gate order (see the docs of ``torch.nn.LSTM`` and ``torch.nn.GRU``):

LSTM, weight rows stacked as (i | f | g | o)::

    i = sigmoid(W_ii x + b_ii + W_hi h + b_hi)      f = sigmoid(W_if x + b_if + W_hf h + b_hf)
    g = tanh(W_ig x + b_ig + W_hg h + b_hg)         o = sigmoid(W_io x + b_io + W_ho h + b_ho)
    c' = f * c + i * g                              h' = o * tanh(c')

GRU, rows stacked as (r | z | n); the reset gate multiplies *after* the hidden matmul::

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr)      z = sigmoid(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn))   h' = (1 - z) * n + z * h

RNN (tanh)::

    h' = tanh(W_ih x + b_ih + W_hh h + b_hh)

``tests/test_trace.py`` checks that these reproduce the fused module's h (and c) to 1e-5.

Every step function takes an optional ``clamp`` (name -> (units, value)) that overwrites a gate or
state where it is computed, so everything downstream uses the overwritten value: with f = 0 the
LSTM's new cell state is i * g, and a clamped h is the h passed up and on to the next step. This is
how ``rnnviz.interventions`` asks "what if the forget gate were shut here?". Without a clamp the
computation is exactly the one above.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# what each cell exposes per step, and what each value means (one table for both front ends)
from .rules import DESCRIPTIONS, STATE_NAMES  # noqa: F401  (re-exported)

# One layer's clamp for one step: name -> (units, value). ``units`` is a bool mask over the hidden
# units or a tensor of unit indices; ``value`` a number or a tensor broadcastable to the units.
Clamp = Mapping[str, tuple[Tensor, float | Tensor]]


def _check_clamp(cell: str, clamp: Clamp | None) -> None:
    """Raise ValueError if ``clamp`` names something the cell does not compute."""
    unknown = sorted(set(clamp or ()) - set(STATE_NAMES[cell]))
    if unknown:
        raise ValueError(f"cannot clamp {', '.join(map(repr, unknown))}: a {cell} cell computes "
                         f"{', '.join(STATE_NAMES[cell])}")


def _clamped(name: str, value: Tensor, clamp: Clamp | None) -> Tensor:
    """``value`` with the clamped units of ``name`` overwritten; ``value`` itself if none are."""
    if not clamp or name not in clamp:
        return value
    units, fixed = clamp[name]
    units = torch.as_tensor(units, device=value.device)
    if units.dtype != torch.bool:  # unit indices
        units = torch.zeros(value.shape[-1], dtype=torch.bool, device=value.device).index_fill_(0, units, True)
    return torch.where(units, torch.as_tensor(fixed, dtype=value.dtype, device=value.device), value)


def lstm_step(x: Tensor, h: Tensor, c: Tensor, w_ih, w_hh, b_ih, b_hh,
              clamp: Clamp | None = None) -> dict[str, Tensor]:
    """One LSTM step: the four gates, the new cell state and the new hidden state.
    ``clamp`` may overwrite any of i, f, g, o, c, h (see the module docstring)."""
    _check_clamp("lstm", clamp)
    gates = F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)  # W_i* x + b_i* + W_h* h + b_h*
    i, f, g, o = gates.chunk(4, dim=-1)
    i, f = _clamped("i", torch.sigmoid(i), clamp), _clamped("f", torch.sigmoid(f), clamp)
    g, o = _clamped("g", torch.tanh(g), clamp), _clamped("o", torch.sigmoid(o), clamp)
    c = _clamped("c", f * c + i * g, clamp)
    h = _clamped("h", o * torch.tanh(c), clamp)
    return {"i": i, "f": f, "g": g, "o": o, "c": c, "h": h}


def gru_step(x: Tensor, h: Tensor, w_ih, w_hh, b_ih, b_hh, clamp: Clamp | None = None) -> dict[str, Tensor]:
    """One GRU step: reset and update gates, the candidate and the new hidden state.
    ``clamp`` may overwrite any of r, z, n, h."""
    _check_clamp("gru", clamp)
    i_r, i_z, i_n = F.linear(x, w_ih, b_ih).chunk(3, dim=-1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
    r = _clamped("r", torch.sigmoid(i_r + h_r), clamp)
    z = _clamped("z", torch.sigmoid(i_z + h_z), clamp)
    n = _clamped("n", torch.tanh(i_n + r * h_n), clamp)
    h = _clamped("h", (1 - z) * n + z * h, clamp)
    return {"r": r, "z": z, "n": n, "h": h}


def rnn_step(x: Tensor, h: Tensor, w_ih, w_hh, b_ih, b_hh, clamp: Clamp | None = None) -> dict[str, Tensor]:
    """One tanh-RNN step. ``clamp`` may overwrite h."""
    _check_clamp("rnn", clamp)
    return {"h": _clamped("h", torch.tanh(F.linear(x, w_ih, b_ih) + F.linear(h, w_hh, b_hh)), clamp)}


def cell_name(rnn: nn.RNNBase) -> str:
    if isinstance(rnn, nn.LSTM):
        return "lstm"
    if isinstance(rnn, nn.GRU):
        return "gru"
    if isinstance(rnn, nn.RNN) and rnn.nonlinearity == "tanh":
        return "rnn"
    raise TypeError(f"unsupported recurrent module: {rnn!r}")


def initial_state(rnn: nn.RNNBase, batch: int, device=None) -> list[dict[str, Tensor]]:
    """Zero state, one dict per layer: {"h"} (and {"c"} for the LSTM)."""
    zeros = torch.zeros(batch, rnn.hidden_size, device=device)
    keys = ("h", "c") if cell_name(rnn) == "lstm" else ("h",)
    return [{k: zeros for k in keys} for _ in range(rnn.num_layers)]


def _layer_clamps(rnn: nn.RNNBase, clamp: Mapping[int, Clamp] | None) -> dict[int, Clamp]:
    """``clamp`` keyed by layer index 0..L-1 (negative indices count from the top)."""
    out: dict[int, Clamp] = {}
    L = rnn.num_layers
    for layer, spec in (clamp or {}).items():
        if not (isinstance(layer, int) and -L <= layer < L):
            raise ValueError(f"cannot clamp layer {layer!r}: the module has {L} layer(s), 0..{L - 1}")
        if layer % L in out:
            raise ValueError(f"layer {layer % L} is clamped twice (as {layer % L} and {layer % L - L})")
        out[layer % L] = spec
    return out


def step(rnn: nn.RNNBase, x: Tensor, state: list[dict[str, Tensor]],
         clamp: Mapping[int, Clamp] | None = None) -> list[dict[str, Tensor]]:
    """One timestep of the whole stack from the fused module's own weights.

    ``x`` is the step's input (B, D); ``state`` the previous step's per-layer dicts (from
    ``initial_state`` or an earlier ``step``). Returns the new per-layer dicts, each holding every
    name in ``STATE_NAMES[cell]``; pass it back in as the next ``state``. Inter-layer dropout is not
    applied: use a model in eval mode.

    ``clamp`` maps a layer (negative: from the top) to that layer's ``Clamp``, e.g.
    ``{0: {"f": (torch.tensor([3, 5]), 0.0)}}`` shuts the forget gate of units 3 and 5 of layer 0.
    A clamped h is also what the layer above reads.
    """
    cell = cell_name(rnn)
    if rnn.bidirectional or not rnn.batch_first or getattr(rnn, "proj_size", 0):
        raise ValueError("supports unidirectional, batch_first modules without projections")
    clamps = _layer_clamps(rnn, clamp)
    out = []
    for k in range(rnn.num_layers):
        w = (getattr(rnn, f"weight_ih_l{k}"), getattr(rnn, f"weight_hh_l{k}"),
             getattr(rnn, f"bias_ih_l{k}"), getattr(rnn, f"bias_hh_l{k}"))
        if cell == "lstm":
            s = lstm_step(x, state[k]["h"], state[k]["c"], *w, clamp=clamps.get(k))
        elif cell == "gru":
            s = gru_step(x, state[k]["h"], *w, clamp=clamps.get(k))
        else:
            s = rnn_step(x, state[k]["h"], *w, clamp=clamps.get(k))
        out.append(s)
        x = s["h"]
    return out


def unroll(rnn: nn.RNNBase, inputs: Tensor,
           clamps: Mapping[int, Mapping[int, Clamp]] | None = None) -> list[dict[str, Tensor]]:
    """Run ``rnn`` over ``inputs`` (B, T, D) from zero state, step by step from its own weights.

    ``clamps`` maps a timestep to that step's ``clamp`` (see ``step``); steps not in it run as is.
    Returns one dict per layer mapping each name in ``STATE_NAMES[cell]`` to a (B, T, H) tensor.
    """
    clamps = clamps or {}
    state = initial_state(rnn, inputs.shape[0], inputs.device)
    steps = []
    for t in range(inputs.shape[1]):
        state = step(rnn, inputs[:, t], state, clamp=clamps.get(t))
        steps.append(state)
    names = STATE_NAMES[cell_name(rnn)]
    return [{n: torch.stack([s[k][n] for s in steps], dim=1) for n in names}
            for k in range(rnn.num_layers)]
