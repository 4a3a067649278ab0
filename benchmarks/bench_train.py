"""Training throughput: the Trainer against a plain hand-written loop over the same model, and the
fused nn.LSTM against a Python loop of nn.LSTMCell, all in one run on this machine.

    python -m benchmarks.bench_train [--steps 100] [--rounds 5] [--threads 1]

Three ways to train the shipped LSTM's shape (1 x 256) for the same steps, run in turn in every
round (the order rotates, so that background load on a shared machine hits all alike):
- the plain loop one would write by hand;
- the Trainer as the CLI runs it (nobody reads its snapshots);
- the Trainer as the app runs it: another thread reads ``snapshot()`` every second (the Train
  tab's timer), so it also draws sample grids and measures gate saturation every
  ``snapshot_every_s`` (10 s by default; the app asks for 5 s).
Prints the median images/s of each and the median of the per-round ratios, by the wall clock and
by CPU time (images per CPU-second of the process, all its threads): on a shared machine the wall
clock swings with the neighbours' load, the CPU time much less. Target: the Trainer (CLI) / plain
loop >= 0.95. DDP: ``python -m benchmarks.bench_ddp``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from rnnviz.data import batches, load_dataset
from rnnviz.model import ModelConfig, RowModel
from rnnviz.train import TrainConfig, Trainer

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mnist_small.npz"


class Timer:
    """Wall-clock and CPU time of a block; ``rates(n)`` gives (images/s, images per CPU-second)."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu

    def rates(self, images: int) -> tuple[float, float]:
        return images / self.wall, images / max(self.cpu, 1e-9)


def plain_loop(mc: ModelConfig, ds, steps: int, batch_size: int) -> tuple[float, float]:
    """The loop one would write by hand: fresh binarization, Adam, clipping. Returns (images/s,
    images per CPU-second), timed like the Trainer: from building the model to the last step."""
    with Timer() as t:
        _plain(mc, ds, steps, batch_size)
    return t.rates(steps * batch_size)


def _plain(mc: ModelConfig, ds, steps: int, batch_size: int):
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


def trainer_loop(mc: ModelConfig, ds, steps: int, batch_size: int, watched: bool = False,
                 snapshot_every_s: float = 10.0) -> tuple[float, float]:
    tc = TrainConfig(batch_size=batch_size, max_steps=steps, minutes=60, eval_every_s=1e9,
                     final_eval=False, checkpoint_every_min=1e9, out=None, snapshot_every_s=snapshot_every_s)
    with Timer() as t:
        tr = Trainer(mc, tc, dataset=ds)
        if not watched:
            tr.run()
        else:  # as the app: the trainer in its thread, a reader polling once a second
            tr.start()
            while not tr.join(1.0):
                tr.snapshot()
    return t.rates(steps * batch_size)


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


def warm_up(mc: ModelConfig, ds, batch_size: int):
    """Pay the one-time costs (the first Adam imports torch._dynamo, ~2 s) before any timing."""
    _plain(mc, ds, 2, batch_size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--snapshot-every", type=float, default=10.0, help="seconds, for the watched Trainer")
    ap.add_argument("--no-layer", action="store_true", help="skip the fused-vs-cell-loop comparison")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(str(FIXTURE))
    mc = ModelConfig()  # the shipped LSTM's shape: 256 units, 1 layer
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size}, {args.steps} steps, "
          f"{args.rounds} rounds, {time.strftime('%Y-%m-%d %H:%M')}")
    warm_up(mc, ds, args.batch_size)

    runs = {"plain": lambda: plain_loop(mc, ds, args.steps, args.batch_size),
            "trainer": lambda: trainer_loop(mc, ds, args.steps, args.batch_size),
            "watched": lambda: trainer_loop(mc, ds, args.steps, args.batch_size, True, args.snapshot_every)}
    names = list(runs)
    got = {k: [] for k in names}  # (images/s, images per CPU-second) per round
    for r in range(args.rounds):
        for k in names[r % 3:] + names[:r % 3]:  # rotate the order
            got[k].append(runs[k]())
        print(f"round {r + 1}: " + ", ".join(f"{k} {got[k][-1][0]:.0f} ({got[k][-1][1]:.0f} per CPU-s)"
                                              for k in names) + " images/s", flush=True)
    for i, clock in enumerate(("wall clock", "CPU time")):
        med = {k: statistics.median(v[i] for v in got[k]) for k in names}
        ratio = {k: statistics.median(t[i] / p[i] for t, p in zip(got[k], got["plain"])) for k in ("trainer", "watched")}
        unit = "images/s" if i == 0 else "images/CPU-s"
        print(f"-- by {clock} (medians of {args.rounds} rounds)")
        print(f"plain loop            : {med['plain']:8.0f} {unit}")
        print(f"Trainer (CLI)         : {med['trainer']:8.0f} {unit}   ratio Trainer/plain = "
              f"{ratio['trainer']:.3f} (target >= 0.95)")
        print(f"Trainer (app, watched): {med['watched']:8.0f} {unit}   ratio = {ratio['watched']:.3f} "
              f"(samples and gate saturation every {args.snapshot_every:g} s)")

    if not args.no_layer:
        lstm = RowModel(mc).rnn
        inputs = torch.randn(args.batch_size, 28, mc.input_size)
        fused = min(fwd_bwd_ms(lstm, inputs) for _ in range(3))
        loop = min(fwd_bwd_ms(CellLoopRNN(lstm), inputs) for _ in range(3))
        print(f"recurrent layer forward+backward, batch {args.batch_size}, 28 steps: fused nn.LSTM {fused:.1f} ms, "
              f"nn.LSTMCell loop {loop:.1f} ms, speedup {loop / fused:.2f}x")


if __name__ == "__main__":
    main()
