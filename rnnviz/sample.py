"""Sample a grid of images from a checkpoint and save it as a PNG.

    python -m rnnviz.sample --checkpoint checkpoints/mnist_lstm.safetensors --out grid.png
    python -m rnnviz.sample --checkpoint ... --digit 7 --n 16 --temperature 0.8 --seed 3 --out sevens.png

By default one row per digit (0-9) for a class-conditional model. Same seed, same grid.
"""

from __future__ import annotations

import argparse

import torch

from .checkpoint import CLI_LIMITS, CheckpointError, load_state
from .render import grid_image


def cli_state(checkpoint: str):
    """(model, metadata) of ``checkpoint`` for a command-line tool, within the command line's limits
    (``CLI_LIMITS``, checked from the header before anything is allocated); a bad file exits with
    a one-line message naming the problem, no traceback."""
    try:
        model, meta = load_state(checkpoint, limits=CLI_LIMITS)
    except CheckpointError as e:
        raise SystemExit(f"error: {e}")
    except (MemoryError, RuntimeError) as e:  # a model inside the limits that this machine cannot hold
        raise SystemExit(f"error: {checkpoint}: not enough memory to load the model ({str(e)[:200]})")
    return model, meta


def cli_model(checkpoint: str, digit: int | None):
    """The model of ``checkpoint`` for a command-line tool, checked against ``--digit``; a bad file
    or digit exits with the message (no traceback)."""
    model, _ = cli_state(checkpoint)
    C = model.config.num_classes
    if digit is not None and not (C and 0 <= digit < C):
        raise SystemExit(f"error: --digit must be in [0, {C - 1}]" if C else
                         "error: the model is unconditional: drop --digit")
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--out", required=True, help="PNG path")
    ap.add_argument("--digit", type=int, default=None, help="one class only (default: every class)")
    ap.add_argument("--any", action="store_true", help="any digit: classes drawn at random")
    ap.add_argument("--n", type=int, default=10, help="samples per class (or in all with --digit/--any)")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--scale", type=int, default=4)
    args = ap.parse_args(argv)
    model = cli_model(args.checkpoint, args.digit)
    C = model.config.num_classes
    if not 1 <= args.n <= 1000:
        raise SystemExit("error: --n must be in [1, 1000]")
    if args.digit is not None:
        labels, cols = torch.full((args.n,), args.digit), min(args.n, 10)
    elif args.any or not C:
        labels, cols = None, min(args.n, 10)
    else:
        labels, cols = torch.arange(C).repeat_interleave(args.n), args.n
    n = args.n if labels is None else len(labels)
    try:
        s = model.sample(n, y=labels, temperature=args.temperature, seed=args.seed)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    grid_image(s.images.numpy(), cols, args.scale).save(args.out)
    print(f"wrote {args.out}: {n} samples, temperature {args.temperature}, seed {args.seed}")


if __name__ == "__main__":
    main()
