"""Sample a grid of images from a checkpoint and save it as a PNG.

    python -m rnnviz.sample --checkpoint checkpoints/mnist_lstm.safetensors --out grid.png
    python -m rnnviz.sample --checkpoint ... --digit 7 --n 16 --temperature 0.8 --seed 3 --out sevens.png

By default one row per digit (0-9) for a class-conditional model. Same seed, same grid.
"""

from __future__ import annotations

import argparse

from .cli import check_output, cli_model
from .export import sample_grid_png


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
    check_output(args.out, "--out")
    model = cli_model(args.checkpoint, args.digit)
    if not 1 <= args.n <= 1000:
        raise SystemExit("error: --n must be in [1, 1000]")
    C = model.config.num_classes
    n = args.n * C if C and args.digit is None and not args.any else args.n
    try:
        sample_grid_png(model, args.out, digit=args.digit, n=args.n, temperature=args.temperature, seed=args.seed,
                        scale=args.scale, any_class=args.any)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    except OSError as e:
        raise SystemExit(f"error: cannot write: {e}")
    print(f"wrote {args.out}: {n} samples, temperature {args.temperature}, seed {args.seed}")


if __name__ == "__main__":
    main()
