"""What the units do, timed on the CPU: unit order, unit profile, pattern search, memory reach and
timescales on 200 test digits for the shipped LSTM, GRU and RNN, with their findings.

    python -m benchmarks.bench_units [--images 200] [--threads 1] [--data-root /work/shared/data]
    python -m benchmarks.bench_units --images 1000 --findings-only   # the README's measured findings

Digits: the first N of the MNIST test set (binarized with seed 0, read with their true labels) when
it is under --data-root (or $RNNVIZ_DATA), else the explorer's 40 shipped digits
(rnnviz/assets/gallery.npz). Baseline in the same run: one teacher-forced ``trace_images`` pass
over the same digits (what the step view computes for them); each figure is also given as a ratio
to it. Target: each computation <= 3 s for 200 digits.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import rnnviz
from rnnviz import units
from rnnviz.data import DataNotFoundError, binarize_fixed, load_dataset

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "rnnviz" / "assets" / "gallery.npz"


def digits(n: int, root: str | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        ds = load_dataset("mnist", root=root, download=False)
        n = min(n, len(ds.test))
        return binarize_fixed(ds.test.images[:n], 0), ds.test.labels[:n], f"first {n} MNIST test digits"
    except DataNotFoundError:
        with np.load(GALLERY, allow_pickle=False) as z:
            imgs, labels = torch.from_numpy(z["images"]), torch.from_numpy(z["labels"].astype(np.int64))
        return binarize_fixed(imgs, 0), labels, f"the {len(labels)} shipped gallery digits (no MNIST found)"


def timed(fn, reps: int) -> float:
    fn()  # warm-up
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def findings(model, x, y) -> dict:
    M = units.memory_reach(model, x, y)
    return {"curve": units.reach_by_distance(M), "bottom": units.reach_by_distance(M, range(20, 28)), "M": M,
            "tau": units.timescales(model, x, y)}


def jobs(m, x, y, trace) -> dict:
    """The computations timed, each a no-argument callable."""
    return {
        "baseline: trace_images": lambda: rnnviz.trace_images(m, x, y=y),
        "unit_order": lambda: units.unit_order(m, x, y),
        "unit_profile (unit 0)": lambda: units.unit_profile(m, x, 0, y),
        "pattern_search (steps 8-14, 0.3)": lambda: units.pattern_search(trace, (8, 14), 0.3, m, x, y),
        "memory_reach": lambda: units.memory_reach(m, x, y),
        "timescales": lambda: units.timescales(m, x, y),
        "unit_order, y=None (argmax class)": lambda: units.unit_order(m, x),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--findings-only", action="store_true", help="skip the timings")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    x, y, where = digits(args.images, args.data_root)
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; torch {torch.__version__}, "
          f"{args.threads} thread(s); {where}; median of {args.reps} runs")
    models = {c: rnnviz.load_checkpoint(ROOT / "checkpoints" / f"mnist_{c}.safetensors")
              for c in ("lstm", "gru", "rnn")}
    if not args.findings_only:
        print(f"\n{'computation':<34}" + "".join(f"{c:>16}" for c in models))
        rows: dict[str, list[str]] = {}
        for c, m in models.items():
            (trace,) = rnnviz.trace_images(m, x[0], y=int(y[0]))
            todo = jobs(m, x, y, trace)
            base = timed(todo["baseline: trace_images"], args.reps)
            for name, fn in todo.items():
                s = base if name.startswith("baseline") else timed(fn, args.reps)
                rows.setdefault(name, []).append(f"{s:7.2f} s {s / base:5.1f}x")
        for name, cols in rows.items():
            print(f"{name:<34}" + "".join(f"{v:>16}" for v in cols))
        print("(seconds, and the ratio to the baseline of the same model; target <= 3 s each)")

    dists = (1, 2, 3, 5, 10, 15, 20, 25)
    print(f"\nwhat the shipped models reveal ({where}, true labels):")
    print("memory reach by distance d = t - s: mean over t of ||d log p(row t) / d row t-d||_2 (teacher forced)")
    print(f"{'cell':<6}" + "".join(f"{'d=' + str(d):>9}" for d in dists) + f"{'d5/d1':>8}{'d10/d1':>8}{'d20/d1':>8}")
    found = {c: findings(m, x, y) for c, m in models.items()}
    for c, f in found.items():
        d = f["curve"]
        print(f"{c:<6}" + "".join(f"{d[k]:9.3g}" for k in dists)
              + f"{d[5] / d[1]:8.3f}{d[10] / d[1]:8.3f}{d[20] / d[1]:8.3f}")
    print("the same with the targets fixed to the bottom rows t = 20..27 (every distance on the same predictions):")
    for c, f in found.items():
        d = f["bottom"]
        print(f"{c:<6}" + "".join(f"{d[k]:9.3g}" for k in dists if k <= 20) + f"{'':>9}"
              f"{d[5] / d[1]:8.3f}{d[10] / d[1]:8.3f}{d[20] / d[1]:8.3f}")
    print("the influence of row 4 (where most digits' ink starts) on row 4 + d, M[4 + d, 4]:")
    for c, f in found.items():
        print(f"{c:<6}" + "".join(f"{f['M'][4 + k, 4]:9.3g}" for k in dists if k <= 23))
    print("(rows 25-27 are blank on almost every digit and predicted with certainty, so nothing moves them)")
    print("timescales tau = -1/log(mean keep factor) in rows, per unit:")
    print(f"{'cell':<6}{'median':>8}{'p10':>8}{'p90':>8}{'max':>9}{'> 5':>6}{'> 28':>6}  keep factor")
    for c, f in found.items():
        tau = f["tau"]
        print(f"{c:<6}{np.median(tau):8.2f}{np.percentile(tau, 10):8.2f}{np.percentile(tau, 90):8.2f}{tau.max():9.3g}"
              f"{int((tau > 5).sum()):6d}{int((tau > 28).sum()):6d}  {units.KEEP[c]}")


if __name__ == "__main__":
    main()
