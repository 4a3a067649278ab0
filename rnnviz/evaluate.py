"""Test-set likelihood under the project's protocol.

The test images are binarized once with a fixed, recorded seed; a class-conditional model is scored
by its exact marginal -log((1/C) * sum_y p(x | y)), never by p(x | y_true). Nats per image.

An equal-weight mixture (``rnnviz.mixture``: a mixture file, or several checkpoints scored as their
equal mixture) is scored exactly too, -log((1/K) * sum_k p_k(x)) with each part's exact marginal:
every part's per-image log-likelihoods are computed once and combined, and the report gives the
mixture's NLL, every part's NLL (name, order) on the same images, and the mixture's gain over the
best part and over the mean of the parts.

    python -m rnnviz.evaluate --checkpoint checkpoints/mnist_lstm.safetensors [--seed 0]
    python -m rnnviz.evaluate --checkpoint checkpoints/mnist_mixture.safetensors          # a mixture file
    python -m rnnviz.evaluate --checkpoint a.safetensors --checkpoint b.safetensors      # their mixture
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from .data import DEFAULT_EVAL_SEED, binarize_fixed, load_dataset


@torch.inference_mode()
def log_likelihoods(model, x: torch.Tensor, batch_size: int = 500, device: str | torch.device = "cpu",
                    samples: int = 1, seed: int = DEFAULT_EVAL_SEED) -> torch.Tensor:
    """log p(x) of every binary image ``x`` (N, H, W) under ``model``, (N,) float64 nats: the exact
    marginal over classes; for a VAE the importance-weighted bound with ``samples`` draws per image,
    the batch starting at image ``start`` drawing with seed ``seed + start``."""
    was_training = model.training
    model.eval()
    out = torch.empty(len(x), dtype=torch.float64)
    for start in range(0, len(x), batch_size):
        kw = {"samples": samples, "seed": seed + start} if model.config.latent else {}
        out[start:start + batch_size] = model.log_prob(x[start:start + batch_size].to(device), **kw).double().cpu()
    model.train(was_training)
    return out


def evaluate(model, images: torch.Tensor, seed: int = DEFAULT_EVAL_SEED, batch_size: int = 500,
             device: str | torch.device = "cpu", samples: int = 1) -> float:
    """Mean test NLL (nats per image) of ``model`` on uint8 ``images``, exact marginal over classes;
    for a VAE the importance-weighted bound with ``samples`` draws per image (1 = the ELBO)."""
    x = binarize_fixed(images, seed)
    return -log_likelihoods(model, x, batch_size, device, samples, seed).mean().item()


def protocol(config, samples: int = 1) -> str:
    """How ``evaluate`` scored a model of this config, in words (stored with every test NLL)."""
    if config.latent:
        return (f"importance-weighted bound, K={samples} samples of q(z|x) (an upper bound on the NLL; "
                f"K=1 is the negative ELBO), nats/image")
    if config.num_classes:
        return "exact marginal over classes, nats/image"
    return "exact NLL, nats/image"


def mixture_protocol(mixture) -> str:
    """How ``score_mixture`` scored ``mixture``, in words."""
    each = "its exact marginal over classes" if mixture.num_classes else "its exact NLL"
    return (f"exact equal-weight mixture of {len(mixture)} parts, -log((1/K) sum_k p_k(x)) with each "
            f"part's p_k(x) {each}, nats/image")


def score_mixture(mixture, images: torch.Tensor, seed: int = DEFAULT_EVAL_SEED, batch_size: int = 500,
                  device: str | torch.device = "cpu") -> dict:
    """The test NLL of ``mixture`` (an ``rnnviz.mixture.Mixture``) and of each of its parts on uint8
    ``images``, binarized with ``seed``; each part scores every image once, the mixture combines.

    Returns {"test_nll", "parts": [{"name", "order", "cell", "size", "test_nll"}], "best_part",
    "gain_over_best_part", "mean_part_nll", "gain_over_mean_of_parts", "images",
    "binarization_seed", "protocol"} (NLLs in nats per image; a gain is how much lower the
    mixture's NLL is)."""
    from .mixture import combine

    x = binarize_fixed(images, seed)
    per_part = torch.stack([log_likelihoods(p, x, batch_size, device) for p in mixture.parts], dim=1)  # (N, K)
    nll = -combine(per_part).mean().item()
    part_nll = (-per_part.mean(0)).tolist()
    parts = [dict(d, test_nll=round(v, 4)) for d, v in zip(mixture.describe(), part_nll)]
    for d in parts:
        d.pop("order_name")
    best = min(range(len(parts)), key=lambda k: part_nll[k])
    mean = sum(part_nll) / len(part_nll)
    return {"test_nll": round(nll, 4), "parts": parts, "best_part": parts[best]["name"],
            "gain_over_best_part": round(part_nll[best] - nll, 4), "mean_part_nll": round(mean, 4),
            "gain_over_mean_of_parts": round(mean - nll, 4), "images": len(x), "binarization_seed": int(seed),
            "protocol": mixture_protocol(mixture)}


def load_test_images(name, data_root, shape: tuple[int, int], limit: int = 0) -> torch.Tensor:
    """The first ``limit`` (0 = all) uint8 test images of dataset ``name`` (or a .npz path), checked
    to be ``shape``; a problem exits with a one-line message."""
    if not isinstance(name, str) or not name:  # a file's own record may be anything
        name = "mnist"
    try:
        ds = load_dataset(name, data_root)
    except (ValueError, OSError, RuntimeError) as e:
        raise SystemExit(f"error: {e}")
    if ds.shape != tuple(shape):
        raise SystemExit(f"error: {name} images are {ds.shape[0]}x{ds.shape[1]}, the model draws "
                         f"{shape[0]}x{shape[1]}: pass --dataset")
    if limit < 0:
        raise SystemExit("error: --images must be >= 0")
    return ds.test.images[:limit] if limit else ds.test.images


def score_mixture_cli(mixture, dataset, data_root, seed, limit: int = 0, batch_size: int = 500) -> dict:
    """``score_mixture`` on the test set of ``dataset`` (default: the mixture's recorded one), with
    the time it took and the dataset, as a mixture file records it in its metrics."""
    name = dataset or mixture.metrics.get("dataset") or next(
        (m.get("dataset") for m in mixture.part_metrics if m.get("dataset")), None)
    images = load_test_images(name, data_root, mixture.shape, limit)
    seed = DEFAULT_EVAL_SEED if seed is None else seed
    t = time.perf_counter()
    result = score_mixture(mixture, images, seed, batch_size)
    result["dataset"] = name if isinstance(name, str) and name else "mnist"
    result["seconds"] = round(time.perf_counter() - t, 1)
    return result


def report_mixture(result: dict, source) -> dict:
    """The printed report of a mixture's score: ``source`` (the file or files) first."""
    return {"mixture": source, **{k: v for k, v in result.items() if k != "dataset"}}


def main(argv=None):
    from .checkpoint import CheckpointError
    from .mixture import is_mixture_file, load_mixture, mixture_of_checkpoints
    from .cli import cli_state

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, action="append",
                    help="a checkpoint or a mixture file; repeat to score several checkpoints as their equal mixture")
    ap.add_argument("--dataset", default=None, help="default: the checkpoint's own dataset")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--seed", type=int, default=DEFAULT_EVAL_SEED, help="test binarization seed")
    ap.add_argument("--limit", "--images", dest="limit", type=int, default=0,
                    help="first N test images only (0 = all)")
    ap.add_argument("--samples", type=int, default=100, help="VAE only: importance samples per image")
    ap.add_argument("--batch-size", type=int, default=500, help="images scored at once (each once per class)")
    args = ap.parse_args(argv)
    if args.batch_size < 1:
        raise SystemExit("error: --batch-size must be >= 1")
    paths = args.checkpoint
    try:
        mixture = None
        if len(paths) > 1:
            mixture = mixture_of_checkpoints(paths)
        elif is_mixture_file(paths[0]):
            mixture = load_mixture(paths[0])
    except (CheckpointError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    if mixture is not None:
        result = score_mixture_cli(mixture, args.dataset, args.data_root, args.seed, args.limit, args.batch_size)
        print(json.dumps(report_mixture(result, paths if len(paths) > 1 else paths[0])))
        return
    model, meta = cli_state(paths[0])
    name = args.dataset or meta["metrics"].get("dataset")
    images = load_test_images(name, args.data_root, (model.config.height, model.config.width), args.limit)
    t = time.perf_counter()
    nll = evaluate(model, images, args.seed, batch_size=args.batch_size, samples=args.samples)
    print(json.dumps({"checkpoint": paths[0], "test_nll": round(nll, 3), "images": len(images),
                      "binarization_seed": args.seed, "protocol": protocol(model.config, args.samples),
                      "seconds": round(time.perf_counter() - t, 1)}))


if __name__ == "__main__":
    main()
