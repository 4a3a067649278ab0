"""Training throughput: the Trainer against a plain hand-written loop over the same model, and the
fused nn.LSTM against a Python loop of nn.LSTMCell, all in one run on this machine.

    python benchmarks/bench_train.py [--steps 60] [--threads 1]

Prints images/s for each and the ratios. Target: Trainer / plain loop >= 0.9.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch import nn

from rnnviz.data import batches, load_dataset
from rnnviz.model import ModelConfig, RowModel
from rnnviz.train import Trainer, TrainConfig

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mnist_small.npz"


def plain_loop(mc: ModelConfig, ds, steps: int, batch_size: int) -> float:
    """The loop one would write by hand: fresh binarization, Adam, clipping. Returns images/s,
    timed like the Trainer: from building the model to the last step."""
    t = time.perf_counter()
    torch.manual_seed(0)
    model = RowModel(mc)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = batches(ds.train, batch_size, torch.Generator().manual_seed(0))
    for _ in range(steps):
        x, y = next(data)
        loss = model.nll(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return steps * batch_size / (time.perf_counter() - t)


def trainer_loop(mc: ModelConfig, ds, steps: int, batch_size: int) -> float:
    tc = TrainConfig(batch_size=batch_size, max_steps=steps, minutes=60, eval_every_s=1e9,
                     final_eval=False, checkpoint_every_min=1e9, out=None)
    t = time.perf_counter()
    Trainer(mc, tc, dataset=ds).run()  # with its sample snapshots (every 10 s) and metrics
    return steps * batch_size / (time.perf_counter() - t)


class CellLoopRNN(nn.Module):
    """The same LSTM stepped in Python with nn.LSTMCell (what the fused module replaces)."""

    def __init__(self, lstm: nn.LSTM):
        super().__init__()
        self.cell = nn.LSTMCell(lstm.input_size, lstm.hidden_size)
        self.cell.load_state_dict({k.replace("_l0", ""): v for k, v in lstm.state_dict().items()})

    def forward(self, x):
        h = c = x.new_zeros(x.shape[0], self.cell.hidden_size)
        outs = []
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
            outs.append(h)
        return torch.stack(outs, 1), None


def fwd_bwd_ms(rnn: nn.Module, inputs: torch.Tensor, reps: int = 20) -> float:
    for i in range(reps + 3):
        if i == 3:
            t = time.perf_counter()
        out, _ = rnn(inputs)
        out.sum().backward()
    return (time.perf_counter() - t) / reps * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(str(FIXTURE))
    mc = ModelConfig()  # the shipped LSTM's shape: 256 units, 1 layer
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}, {args.steps} steps")

    # Interleave the two so that background load hits both alike; best of 3 each.
    trainer, plain = [], []
    for _ in range(3):
        plain.append(plain_loop(mc, ds, args.steps, args.batch_size))
        trainer.append(trainer_loop(mc, ds, args.steps, args.batch_size))
    p, tr = max(plain), max(trainer)
    print(f"plain loop : {p:8.0f} images/s")
    print(f"Trainer    : {tr:8.0f} images/s   ratio Trainer/plain = {tr / p:.3f} (target >= 0.9)")

    lstm = RowModel(mc).rnn
    inputs = torch.randn(args.batch_size, 28, mc.input_size)
    fused = min(fwd_bwd_ms(lstm, inputs) for _ in range(3))
    loop = min(fwd_bwd_ms(CellLoopRNN(lstm), inputs) for _ in range(3))
    print(f"recurrent layer forward+backward, batch {args.batch_size}, 28 steps: fused nn.LSTM {fused:.1f} ms, "
          f"nn.LSTMCell loop {loop:.1f} ms, speedup {loop / fused:.2f}x")


if __name__ == "__main__":
    main()
