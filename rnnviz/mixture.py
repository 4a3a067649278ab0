"""Exact mixtures of row models: several models (typically one per scan order) as one density.

An equal-weight mixture of K parts is again an exact autoregressive density:

    log p(x) = logsumexp_k log p_k(x) - log K

where each class-conditional part's log p_k(x) is its exact marginal over its C classes
(``RowModel.log_prob``). Since every part has the uniform class prior, the mixture is also class
conditional with the same prior: p(x | y) = (1/K) sum_k p_k(x | y), and p(x) = (1/C) sum_y p(x | y).
By Jensen's inequality its NLL is at most the mean of the parts' NLLs; parts that find different
digits (or different parts of a digit) hard gain more.

- ``Mixture``: the parts as one ``nn.Module``: ``log_prob``, ``part_log_probs`` (B, K),
  ``class_log_likelihoods`` (B, C), ``part_posterior`` (which part explains a digit),
  ``which_order`` (each part's NLL of one digit, line by line in its order), and ``sample`` /
  ``sample_traces`` (the part is drawn from the seed, independently of the part's own random
  numbers, and returned with what the part drew).
- A mixture FILE: one safetensors file whose tensors are ``parts.<k>.<name>`` (part k's state dict,
  float32 weights only, no optimizer state) and whose metadata holds ``format: "rnnviz-mixture"``,
  ``format_version: "1"``, ``parts`` (a JSON list: each part's ``config``, ``metrics`` and ``name``)
  and ``metrics`` (the mixture's own). It is read with the same rules as a checkpoint
  (``rnnviz.checkpoint``): nothing is unpickled, the header is checked throughout, every part's
  config against the limits and the tensors it lists against the config, all before any tensor is
  read or any module built.

    python -m rnnviz.mixture --part checkpoints/mnist_lstm.safetensors --part runs/cols.safetensors \\
        --out checkpoints/mnist_mixture.safetensors [--evaluate --seed S]

builds one (``--evaluate`` scores it and its parts on the test set, as ``rnnviz.evaluate`` does,
and records the result in the file's metrics); ``python -m rnnviz.evaluate --checkpoint
mix.safetensors`` scores a mixture file.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from . import checkpoint as ckpt
from . import header as hdr
from .checkpoint import CLI_LIMITS, CheckpointError, Limits
from .model import ORDER_NAMES, RowModel, Sample, from_order
from .analysis import marginal_line_nll
from .probes import as_images
from .trace import np_order
from .rules import MIXTURE_PART_STREAM

MIXTURE_FORMAT, MIXTURE_VERSION = "rnnviz-mixture", "1"
MAX_PARTS = 16
PART_STREAM = MIXTURE_PART_STREAM  # the part a sample comes from has its own generator (rules.py)


# ---- the mixture --------------------------------------------------------------------------------
class MixtureSample(NamedTuple):
    """What ``Mixture.sample`` returns: the index of the part drawn and its ``Sample`` (images as
    seen, labels, probs, states per step of the part's order, latents)."""

    part: int
    sample: Sample


class Mixture(nn.Module):
    """An equal-weight mixture of ``RowModel`` parts: all class-conditional with the same classes,
    or all unconditional; all of one image size; no VAE (its likelihood is a bound, not exact).

    ``names`` label the parts in reports (default "part0", "part1", ...); ``part_metrics`` and
    ``metrics`` are what a mixture file records (each part's own metrics, and the mixture's).
    """

    def __init__(self, parts: Sequence[RowModel], names: Sequence[str] | None = None,
                 part_metrics: Sequence[dict] | None = None, metrics: dict | None = None):
        super().__init__()
        parts = list(parts)
        problem = mixture_problem([p.config for p in parts] if all(isinstance(p, RowModel) for p in parts)
                                  else None)
        if problem:
            raise ValueError(problem)
        names = [f"part{k}" for k in range(len(parts))] if names is None else [str(n) for n in names]
        if len(names) != len(parts):
            raise ValueError(f"got {len(names)} names for {len(parts)} parts")
        part_metrics = [{} for _ in parts] if part_metrics is None else [dict(m) for m in part_metrics]
        if len(part_metrics) != len(parts):
            raise ValueError(f"got {len(part_metrics)} part metrics for {len(parts)} parts")
        self.parts = nn.ModuleList(parts)
        self.names = names
        self.part_metrics = part_metrics
        self.metrics = dict(metrics or {})

    # ---- what it is ---------------------------------------------------------------------------
    @property
    def configs(self) -> list:
        return [p.config for p in self.parts]

    @property
    def orders(self) -> list[str]:
        return [p.config.order for p in self.parts]

    @property
    def num_classes(self) -> int:
        return self.parts[0].config.num_classes

    @property
    def shape(self) -> tuple[int, int]:
        c = self.parts[0].config
        return c.height, c.width

    def __len__(self) -> int:
        return len(self.parts)

    def describe(self) -> list[dict]:
        """One dict per part: name, order (and its words), cell, layers x hidden, recorded test NLL."""
        return [{"name": n, "order": c.order, "order_name": ORDER_NAMES[c.order], "cell": c.cell,
                 "size": f"{c.layers}x{c.hidden}", "test_nll": m.get("test_nll")}
                for n, c, m in zip(self.names, self.configs, self.part_metrics)]

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- likelihood ---------------------------------------------------------------------------
    @torch.no_grad()
    def part_log_probs(self, x: Tensor) -> Tensor:
        """log p_k(x) of every part for binary images (B, H, W): (B, K) nats, each part's exact
        marginal over its classes (or its exact likelihood, unconditional)."""
        x = as_images(x)
        return torch.stack([p.log_prob(x) for p in self.parts], dim=1)

    @torch.no_grad()
    def log_prob(self, x: Tensor) -> Tensor:
        """log p(x) = logsumexp_k log p_k(x) - log K, (B,) nats: exact."""
        return combine(self.part_log_probs(x))

    @torch.no_grad()
    def part_posterior(self, x: Tensor) -> Tensor:
        """p(part k | x) under the uniform prior over parts, (B, K): which part (order) explains
        each digit best."""
        return torch.softmax(self.part_log_probs(x), dim=1)

    @torch.no_grad()
    def class_log_likelihoods(self, x: Tensor, rows: int | None = None) -> Tensor:
        """log p(x | y) = log (1/K) sum_k p_k(x | y) for every class y, (B, C) nats (class-conditional
        parts only). With ``rows``, each part counts only the first ``rows`` lines of its own order,
        which is a prefix of a different part of the image per order: only the full image (None)
        is one event for all parts."""
        if not self.num_classes:
            raise ValueError("the mixture's parts are unconditional: they have no classes to score")
        x = as_images(x)
        per_part = torch.stack([p.class_log_likelihoods(x, rows) for p in self.parts], dim=0)  # (K, B, C)
        return torch.logsumexp(per_part, dim=0) - math.log(len(self.parts))

    @torch.no_grad()
    def which_order(self, image) -> dict:
        """For one binary image (H, W): each part's NLL and its NLL per line, the mixture's NLL and
        the posterior over parts (what the "which order?" view draws). Class-conditional parts are
        read with the class summed out, so each part's line NLLs sum to its -log p_k(x).

        Returns {"nll": mixture NLL, "parts": [{"name", "order", "nll", "line_nll" (H,) in the
        part's order, "line_pixels" (H, H, W) bool: the pixels of each line, "posterior"}]}."""
        x = as_images(image)
        if x.shape[0] != 1:
            raise ValueError(f"give one image (H, W), got {x.shape[0]}")
        lp = self.part_log_probs(x)[0].double()
        post = torch.softmax(lp, 0)
        H, W = self.shape
        eye = np.eye(H, dtype=bool)[:, :, None].repeat(W, 2)  # line t's mask, in line coordinates
        parts = []
        for k, (name, part) in enumerate(zip(self.names, self.parts)):
            lines = marginal_line_nll(part, x)[0]
            parts.append({"name": name, "order": part.config.order, "nll": float(-lp[k]), "line_nll": lines,
                          "line_pixels": np_order(eye, part.config.order, from_order),
                          "posterior": float(post[k])})
        return {"nll": float(-combine(lp[None])[0]), "parts": parts}

    # ---- sampling -----------------------------------------------------------------------------
    def choose_part(self, seed: int) -> int:
        """The part a sample with ``seed`` is drawn from: ``torch.randint(K)`` of a generator seeded
        with (seed + PART_STREAM) mod 2^32, independent of the part's own draws (seeded with seed)."""
        gen = torch.Generator().manual_seed((int(seed) + PART_STREAM) % 2 ** 32)
        return int(torch.randint(len(self.parts), (1,), generator=gen))

    @torch.no_grad()
    def sample(self, n: int = 1, y=None, temperature: float = 1.0, seed: int = 0, part: int | None = None,
               **kw) -> MixtureSample:
        """Draw ``n`` images from one part: the part ``choose_part(seed)`` picks (or ``part`` when
        given), then ``RowModel.sample(n, y, temperature, seed, **kw)`` of that part. So one image
        (n = 1) is an exact draw from the mixture; the n images of one call share their part
        (independent draws from the mixture take one call per seed). Returns (part, Sample)."""
        k = self._part(seed, part)
        return MixtureSample(k, self.parts[k].sample(n, y=y, temperature=temperature, seed=seed, **kw))

    def sample_traces(self, n: int = 1, y=None, temperature: float = 1.0, seed: int = 0, part: int | None = None,
                      **kw) -> tuple[int, list]:
        """(part, traces): ``rnnviz.sample_traces`` of the part ``sample`` would draw from, each
        trace's ``meta`` naming the part ("part", "part_name") and its ``order`` the part's order."""
        from .trace import sample_traces

        k = self._part(seed, part)
        traces = sample_traces(self.parts[k], n, y=y, temperature=temperature, seed=seed, **kw)
        for t in traces:
            t.meta.update(part=k, part_name=self.names[k])
        return k, traces

    def _part(self, seed: int, part: int | None) -> int:
        k = self.choose_part(seed) if part is None else part
        if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(self.parts):
            raise ValueError(f"part must be an integer in [0, {len(self.parts) - 1}], got {part!r}")
        return k


def combine(part_log_probs: Tensor) -> Tensor:
    """The equal-weight mixture of per-part log-likelihoods (..., K): logsumexp over K minus log K."""
    return torch.logsumexp(part_log_probs, dim=-1) - math.log(part_log_probs.shape[-1])


def mixture_problem(configs) -> str | None:
    """Why these part configs cannot make an exact mixture (None if they can)."""
    if configs is None:
        return "a mixture's parts must be RowModels"
    if not configs:
        return "a mixture needs at least one part"
    if len(configs) > MAX_PARTS:
        return f"a mixture has at most {MAX_PARTS} parts, got {len(configs)}"
    vae = [k for k, c in enumerate(configs) if c.latent]
    if vae:
        return (f"part {vae[0]} is a VAE (latent={configs[vae[0]].latent}): its likelihood is a bound, "
                "so a mixture with it would not be exact")
    sizes = sorted({(c.height, c.width) for c in configs})
    if len(sizes) > 1:
        return "the parts draw images of different sizes: " + ", ".join(f"{h}x{w}" for h, w in sizes)
    classes = sorted({c.num_classes for c in configs})
    if len(classes) > 1:
        return ("the parts must be all class-conditional with the same classes, or all unconditional; "
                f"got num_classes {classes}")
    return None


# ---- files ------------------------------------------------------------------------------------------
def save_mixture(path: str | os.PathLike, mixture: Mixture) -> Path:
    """Write ``mixture`` to ``path`` atomically: float32 weights ``parts.<k>.*`` and metadata (each
    part's config, metrics and name; the mixture's metrics)."""
    tensors = {}
    for k, part in enumerate(mixture.parts):
        for name, v in part.state_dict().items():
            tensors[f"parts.{k}.{name}"] = v.detach().cpu().float().contiguous()
    parts = [{"name": n, "config": c.to_dict(), "metrics": m}
             for n, c, m in zip(mixture.names, mixture.configs, mixture.part_metrics)]
    meta = {"format": MIXTURE_FORMAT, "format_version": MIXTURE_VERSION,
            "parts": json.dumps(parts, default=str), "metrics": json.dumps(mixture.metrics, default=str)}
    return ckpt.write_safetensors(path, tensors, meta)


def is_mixture_file(path: str | os.PathLike, limits: Limits = CLI_LIMITS) -> bool:
    """Whether ``path``'s (checked) header says it is a mixture file; reads no tensor."""
    meta = ckpt.read_header(path, limits).get("__metadata__") or {}
    return meta.get("format") == MIXTURE_FORMAT


@dataclass
class MixtureMetadata:
    configs: list  # each part's ModelConfig
    names: list[str]
    part_metrics: list[dict]
    metrics: dict


def read_mixture_metadata(path: str | os.PathLike, limits: Limits = CLI_LIMITS) -> MixtureMetadata:
    """The parts' configs, names and metrics and the mixture's metrics, without reading any tensor.

    Checked like a checkpoint's: the header throughout (``checkpoint.read_header``), the format and
    version, every part's config (against ``limits``, and all parts' parameters together against
    ``limits.parameters``), the parts as a mixture (``mixture_problem``), and the ``parts.<k>.*``
    tensors the header lists against each config (names, shapes, float32), with no other tensors.
    """
    header = ckpt.read_header(path, limits)
    meta = header.get("__metadata__") or {}
    if meta.get("format") != MIXTURE_FORMAT:
        hint = " (a single model's checkpoint: load it with rnnviz.load_checkpoint)" \
            if meta.get("format") == ckpt.FORMAT else ""
        raise CheckpointError(f"{path}: not an rnnviz mixture (metadata format is "
                              f"{hdr._short(meta.get('format'))}, expected {MIXTURE_FORMAT!r}){hint}")
    if meta.get("format_version") != MIXTURE_VERSION:
        raise CheckpointError(f"{path}: mixture format version {hdr._short(meta.get('format_version'))} is "
                              f"not supported (this rnnviz reads version {MIXTURE_VERSION})")
    if "parts" not in meta:
        raise CheckpointError(f"{path}: metadata has no 'parts'")
    parts = ckpt.parse_json(meta["parts"], "metadata 'parts'", path)
    metrics = ckpt.parse_json(meta.get("metrics", "{}"), "metadata 'metrics'", path)
    if not isinstance(metrics, dict):
        raise CheckpointError(f"{path}: metadata 'metrics' is not a JSON object (got {hdr._what(metrics)})")
    if not isinstance(parts, list) or not 1 <= len(parts) <= MAX_PARTS:
        raise CheckpointError(f"{path}: metadata 'parts' should be a list of 1 to {MAX_PARTS} parts, "
                              f"got {hdr._what(parts)}")
    configs, names, part_metrics = [], [], []
    for k, entry in enumerate(parts):
        where = f"{path} (part {k})"
        if not (isinstance(entry, dict) and isinstance(entry.get("config"), dict)):
            raise CheckpointError(f"{where}: each part should be an object with a 'config' object, "
                                  f"got {hdr._what(entry)}")
        name, m = entry.get("name", f"part{k}"), entry.get("metrics", {})
        if not isinstance(name, str) or not isinstance(m, dict):
            raise CheckpointError(f"{where}: 'name' should be a string and 'metrics' an object")
        config = hdr._config(where, entry["config"])
        problem = limits.problem(config)
        if problem:
            raise CheckpointError(f"{where}: {problem}")
        configs.append(config)
        names.append(name)
        part_metrics.append(m)
    total = sum(ckpt.parameter_count(c) for c in configs)
    if total > limits.parameters:
        raise CheckpointError(f"{path}: the parts imply {total:,} parameters in all, over {limits.name} of "
                              f"{limits.parameters:,}")
    problem = mixture_problem(configs)
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    tensors = {name: info for name, info in header.items() if name != "__metadata__"}
    stray = [name for name in tensors
             if not (name.startswith("parts.") and name.split(".", 2)[1] in {str(k) for k in range(len(configs))})]
    if stray:
        raise CheckpointError(f"{path}: unexpected tensors {[hdr._short(s) for s in stray[:5]]} "
                              f"(a mixture holds parts.<k>.* for k < {len(configs)} only)")
    for k, config in enumerate(configs):
        prefix = f"parts.{k}."
        listed = {"model." + n[len(prefix):]: info for n, info in tensors.items() if n.startswith(prefix)}
        hdr._check_listed_tensors(f"{path} (part {k})", listed, config)
    return MixtureMetadata(configs, names, part_metrics, metrics)


def load_mixture(path: str | os.PathLike, limits: Limits = CLI_LIMITS) -> Mixture:
    """The mixture stored at ``path``, every part on the CPU in eval mode. Everything is checked
    from the header first (``read_mixture_metadata``), then each part's weights (names, shapes,
    dtypes, finite) before they are loaded. Raises CheckpointError with the reason."""
    path = Path(path)
    meta = read_mixture_metadata(path, limits)
    parts = []
    for k, config in enumerate(meta.configs):
        model = RowModel(config)
        prefix = f"parts.{k}."
        model.load_state_dict(ckpt._checked_weights(path, model, ckpt._read_tensors(path, prefix), prefix))
        parts.append(model.eval())
    return Mixture(parts, meta.names, meta.part_metrics, meta.metrics)


def mixture_of_checkpoints(paths: Sequence[str | os.PathLike], limits: Limits = CLI_LIMITS) -> Mixture:
    """The equal mixture of single-model checkpoints, each loaded with ``checkpoint.load_state``;
    a part is named after its file (without the extension). Raises CheckpointError or ValueError."""
    parts, names, part_metrics = [], [], []
    for p in paths:
        model, meta = ckpt.load_state(p, limits)
        parts.append(model)
        names.append(Path(p).name.removesuffix(".safetensors"))
        part_metrics.append(dict(meta["metrics"], source=Path(p).name))
    return Mixture(parts, names, part_metrics)


# ---- command line -------------------------------------------------------------------------------
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", action="append", required=True,
                    help="a checkpoint to include (repeat: one per part); optimizer state is not copied")
    ap.add_argument("--name", action="append", default=None,
                    help="a part's name in reports (repeat, in --part order; default: the file name)")
    ap.add_argument("--out", required=True, help="the mixture file to write")
    ap.add_argument("--evaluate", action="store_true",
                    help="score the mixture and its parts on the test set and record it in the file")
    ap.add_argument("--dataset", default=None, help="with --evaluate (default: the parts' dataset)")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--seed", type=int, default=None, help="with --evaluate: the test binarization seed")
    ap.add_argument("--images", type=int, default=0, help="with --evaluate: first N test images (0 = all)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if any(Path(p).resolve() == out.resolve() for p in args.part):
        raise SystemExit("error: --out must not be one of the parts")
    try:
        mix = mixture_of_checkpoints(args.part)
    except (CheckpointError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    if args.name:
        if len(args.name) != len(mix):
            raise SystemExit(f"error: got {len(args.name)} --name for {len(mix)} --part")
        mix.names = list(args.name)
    datasets = {m.get("dataset") for m in mix.part_metrics}
    mix.metrics["dataset"] = args.dataset or (datasets.pop() if len(datasets) == 1 else None)
    if args.evaluate:
        from .evaluate import report_mixture, score_mixture_cli
        result = score_mixture_cli(mix, args.dataset, args.data_root, args.seed, args.images)
        mix.metrics.update(result, test_nll_protocol=result["protocol"], eval_binarization_seed=result["binarization_seed"],
                           test_images=result["images"])
        print(json.dumps(report_mixture(result, args.out)))
    try:
        save_mixture(out, mix)
    except (CheckpointError, OSError) as e:
        raise SystemExit(f"error: {e}")
    mb = 2 ** 20
    print(f"wrote {out}: {len(mix)} parts ({', '.join(f'{n} [{o}]' for n, o in zip(mix.names, mix.orders))}), "
          f"{mix.num_parameters():,} parameters, {out.stat().st_size / mb:.1f} MB")


if __name__ == "__main__":
    main()
