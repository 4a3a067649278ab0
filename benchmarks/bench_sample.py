"""Sampling latency on the CPU: one full sample with its trace, and a batch of 64.

    python -m benchmarks.bench_sample [--checkpoint checkpoints/mnist_lstm.safetensors] [--threads 1]

Baseline in the same run: a naive sampler that re-runs the whole row head for every pixel
(784 head evaluations), which is what the incremental NumPy row sampler replaces.
Target: median <= 30 ms for one sample with its trace.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

import rnnviz

ROOT = Path(__file__).resolve().parents[1]


def timed(fn, reps):
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return statistics.median(out), sorted(out)[int(0.95 * (len(out) - 1))]


@torch.no_grad()
def naive_sample(model, y, seed):
    """Reference sampler: full head forward per pixel, fused module step per row."""
    c = model.config
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([y])
    x = torch.zeros(1, c.height, c.width)
    state, prev = None, torch.zeros(1, 1, c.width)
    cond = model.conditioning(1, labels)
    for t in range(c.height):
        out, state = model.rnn(torch.cat([prev, cond[:, t:t + 1]], -1), state)
        ctx = torch.cat([out[:, 0], prev[:, 0]], -1)
        for j in range(c.width):
            p = torch.sigmoid(model.head(ctx, x[:, t])[0, j])
            x[0, t, j] = float(torch.rand((), generator=g) < p)
        prev = x[:, t:t + 1]
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "mnist_lstm.safetensors"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t = time.perf_counter()
    model = rnnviz.load_checkpoint(args.checkpoint)
    print(f"load_checkpoint: {(time.perf_counter() - t) * 1000:.0f} ms ({args.checkpoint})")
    print(f"torch {torch.__version__}, {args.threads} thread(s), cell {model.config.cell}, hidden {model.config.hidden}")
    seeds = iter(range(10**6))
    one = timed(lambda: rnnviz.sample_traces(model, 1, y=7, seed=next(seeds)), args.reps)
    batch = timed(lambda: rnnviz.sample_traces(model, 64, y=None, seed=next(seeds)), max(5, args.reps // 6))
    naive = timed(lambda: naive_sample(model, 7, next(seeds)), 5)
    print(f"one sample + trace : median {one[0]:6.1f} ms, p95 {one[1]:6.1f} ms (target median <= 30 ms)")
    print(f"64 samples + traces: median {batch[0]:6.1f} ms, p95 {batch[1]:6.1f} ms ({batch[0] / 64:.2f} ms/image)")
    print(f"naive sampler, one sample without trace: median {naive[0]:6.1f} ms; speedup {naive[0] / one[0]:.1f}x")


if __name__ == "__main__":
    main()
