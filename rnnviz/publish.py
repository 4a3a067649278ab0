"""Publish a checkpoint: its model alone, the file to ship or share.

    python -m rnnviz.publish runs/big.safetensors --out checkpoints/mnist_lstm_large.safetensors

A training run's file also holds Adam's moments (twice the weights' size) and, with ``--ema``, the
training weights beside their average, so that ``--resume`` can go on. The published copy keeps the
model (with weight averaging: the average, which is what the recorded test NLL scored), its config
and its metrics, and records what it dropped. It loads, scores and samples the same; ``--init-from``
can start a new run from it, ``--resume`` cannot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .checkpoint import CheckpointError, publish


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="a checkpoint written by rnnviz.train")
    ap.add_argument("--out", required=True, help="where to write the published copy (a new path)")
    args = ap.parse_args(argv)
    try:
        out = publish(args.checkpoint, args.out)
    except (CheckpointError, OSError) as e:
        raise SystemExit(f"error: {e}")
    mb = 2 ** 20
    print(f"wrote {out}: {out.stat().st_size / mb:.1f} MB (the run's file: {Path(args.checkpoint).stat().st_size / mb:.1f} MB)")


if __name__ == "__main__":
    main()
