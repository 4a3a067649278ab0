"""Test-set likelihood under the project's protocol.

The test images are binarized once with a fixed, recorded seed; a class-conditional model is scored
by its exact marginal -log((1/C) * sum_y p(x | y)), never by p(x | y_true). Nats per image.

    python -m rnnviz.evaluate --checkpoint checkpoints/mnist_lstm.safetensors [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from .data import DEFAULT_EVAL_SEED, binarize_fixed, load_dataset


@torch.no_grad()
def evaluate(model, images: torch.Tensor, seed: int = DEFAULT_EVAL_SEED, batch_size: int = 500,
             device: str | torch.device = "cpu", samples: int = 1) -> float:
    """Mean test NLL (nats per image) of ``model`` on uint8 ``images``, exact marginal over classes;
    for a VAE the importance-weighted bound with ``samples`` draws per image (1 = the ELBO)."""
    was_training = model.training
    model.eval()
    x = binarize_fixed(images, seed)
    total = 0.0
    for start in range(0, len(x), batch_size):
        kw = {"samples": samples, "seed": seed + start} if model.config.latent else {}
        total += -model.log_prob(x[start:start + batch_size].to(device), **kw).sum().item()
    model.train(was_training)
    return total / len(x)


def protocol(config, samples: int = 1) -> str:
    """How ``evaluate`` scored a model of this config, in words (stored with every test NLL)."""
    if config.latent:
        return (f"importance-weighted bound, K={samples} samples of q(z|x) (an upper bound on the NLL; "
                f"K=1 is the negative ELBO), nats/image")
    if config.num_classes:
        return "exact marginal over classes, nats/image"
    return "exact NLL, nats/image"


def main(argv=None):
    from .sample import cli_state

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--dataset", default=None, help="default: the checkpoint's own dataset")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--seed", type=int, default=DEFAULT_EVAL_SEED, help="test binarization seed")
    ap.add_argument("--limit", type=int, default=0, help="first N test images only (0 = all)")
    ap.add_argument("--samples", type=int, default=100, help="VAE only: importance samples per image")
    args = ap.parse_args(argv)
    model, meta = cli_state(args.checkpoint)
    name = args.dataset or meta["metrics"].get("dataset")
    if not isinstance(name, str) or not name:  # the file's own record may be anything
        name = "mnist"
    try:
        ds = load_dataset(name, args.data_root)
    except (ValueError, OSError, RuntimeError) as e:
        raise SystemExit(f"error: {e}")
    if ds.shape != (model.config.height, model.config.width):
        raise SystemExit(f"error: {name} images are {ds.shape[0]}x{ds.shape[1]}, the model draws "
                         f"{model.config.height}x{model.config.width}: pass --dataset")
    images = ds.test.images[:args.limit] if args.limit else ds.test.images
    t = time.perf_counter()
    nll = evaluate(model, images, args.seed, samples=args.samples)
    print(json.dumps({"checkpoint": args.checkpoint, "test_nll": round(nll, 3), "images": len(images),
                      "binarization_seed": args.seed, "protocol": protocol(model.config, args.samples),
                      "seconds": round(time.perf_counter() - t, 1)}))


if __name__ == "__main__":
    main()
