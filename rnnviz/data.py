"""Datasets: MNIST (and FashionMNIST, KMNIST) through torchvision, or a small .npz file.

Images stay uint8 in memory (60,000 x 28 x 28 = 47 MB); binarization happens per batch:
- training: a fresh Bernoulli draw ``x ~ Bernoulli(pixel / 255)`` for every batch;
- evaluation: one draw with a fixed, recorded seed (``binarize_fixed``).

Training batches (``training_batches``): one CPU process reads ``batches``, one generator for the
order and the binarization. Workers of a DDP job (and a GPU) read ``shard_batches``: a
``DistributedSampler`` gives every worker its own share of one permutation (``set_epoch`` each pass),
and each worker binarizes with its own generator, seeded by the seed, its rank and the step, on its
own device (uint8 images are copied from pinned memory without blocking, then drawn there).

The data root comes from the ``root`` argument, else the ``RNNVIZ_DATA`` environment variable,
else ``./data``. torchvision downloads the files there when the machine is online (set
``RNNVIZ_NO_DOWNLOAD=1`` to never try).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# name -> torchvision's class for it, which is also the folder it keeps the files in
TORCHVISION = {"mnist": "MNIST", "fashionmnist": "FashionMNIST", "kmnist": "KMNIST"}
DATASETS = tuple(TORCHVISION)
DEFAULT_EVAL_SEED = 0


class DataNotFoundError(RuntimeError):
    """The dataset is not on disk and could not be downloaded."""


@dataclass
class Split:
    images: torch.Tensor  # (N, 28, 28) uint8
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Dataset:
    name: str
    train: Split
    test: Split
    source: str  # where it was read from

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.train.images.shape[1:])


def data_root(root: str | os.PathLike | None = None) -> Path:
    return Path(root or os.environ.get("RNNVIZ_DATA") or "data")


def _torchvision_split(name: str, root: Path, train: bool, download: bool) -> Split:
    import torchvision.datasets as tvd

    cls = getattr(tvd, TORCHVISION[name])
    ds = cls(root=str(root), train=train, download=download)
    return Split(ds.data.to(torch.uint8).clone(), ds.targets.long().clone())


def load_npz(path: str | os.PathLike) -> Dataset:
    """A dataset saved as .npz with x_train, y_train, x_test, y_test (uint8 images (N, H, W) of one
    size, whole-number labels). ``ValueError`` with one sentence naming the problem otherwise (a file
    that is not a .npz, a missing or empty split, splits of different image sizes)."""
    try:
        z = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is not a .npz file (a zip of numpy arrays, as numpy.savez writes): "
                         f"{_why(e)}") from None
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"{path} holds a single array (a .npy file), not a .npz of x_train, y_train, x_test "
                         "and y_test (numpy.savez writes one)")
    with z:
        missing = {"x_train", "y_train", "x_test", "y_test"} - set(z.files)
        if missing:
            raise ValueError(f"{path}: missing arrays {sorted(missing)} (a dataset .npz holds x_train, y_train, "
                             "x_test and y_test)")
        splits = []
        for part, name in (("train", "training"), ("test", "test")):
            try:
                x, y = z[f"x_{part}"], z[f"y_{part}"]
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:  # a damaged or pickled member
                raise ValueError(f"{path}: x_{part} or y_{part} cannot be read ({_why(e, member=True)})") from None
            if x.ndim != 3 or x.dtype != np.uint8 or y.ndim != 1 or len(x) != len(y):
                raise ValueError(f"{path}: x_{part} must be uint8 images (N, H, W) with one label per image in "
                                 f"y_{part} (got x_{part} {x.dtype} {x.shape}, y_{part} {y.shape})")
            if len(x) == 0 or min(x.shape[1:]) == 0:
                raise ValueError(f"{path}: the {name} set is empty (x_{part} has shape {x.shape}); it needs at "
                                 "least one image")
            if not (np.issubdtype(y.dtype, np.integer) and (y >= 0).all()):
                raise ValueError(f"{path}: y_{part} must hold class labels, whole numbers >= 0 (got {y.dtype})")
            splits.append(Split(torch.from_numpy(x.copy()), torch.from_numpy(y.astype(np.int64))))
    train, test = splits
    if train.images.shape[1:] != test.images.shape[1:]:
        (th, tw), (eh, ew) = train.images.shape[1:], test.images.shape[1:]
        raise ValueError(f"{path}: the test images are {eh}\u00d7{ew} but the training images {th}\u00d7{tw}; "
                         "both splits must have one size")
    return Dataset(Path(path).stem, train, test, str(path))


def _why(e: Exception, member: bool = False) -> str:
    """numpy's reason, without its advice about pickles (a dataset never needs them, and numpy says
    "pickled data" of any file that is neither a zip nor a .npy)."""
    text = str(e).split("\n")[0]
    if "pickle" in text:
        return "it holds Python objects, which are never loaded; save plain arrays" if member \
            else "it is not a zip archive"
    return text[:120] or type(e).__name__


def load_dataset(name: str = "mnist", root: str | os.PathLike | None = None,
                 download: bool = True) -> Dataset:
    """Load ``name`` (mnist, fashionmnist, kmnist, or a path to a .npz) with train and test splits."""
    if str(name).endswith(".npz"):
        return load_npz(name)
    key = name.lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {DATASETS} or a .npz file")
    path = data_root(root)
    download = download and not os.environ.get("RNNVIZ_NO_DOWNLOAD")
    try:
        train = _torchvision_split(key, path, True, download)
        test = _torchvision_split(key, path, False, download)
    except Exception as e:  # torchvision raises RuntimeError offline, URLError/OSError mid-download
        raise DataNotFoundError(
            f"{name} is not under {path.resolve()} and could not be downloaded ({e}). "
            f"Put torchvision's files there ({path}/{cls_dir(key)}/raw/...), pass --data-root "
            f"(root=...) or set RNNVIZ_DATA to the folder that holds {cls_dir(key)}/."
        ) from e
    return Dataset(key, train, test, str(path))


def cls_dir(key: str) -> str:
    return TORCHVISION[key]


def hold_out(split: Split, n: int, seed: int) -> tuple[Split, Split]:
    """(the rest, ``n`` held-out images): a validation set drawn from ``split`` by a permutation
    seeded with ``seed``, the same on every call, every worker and every resume."""
    if not 0 < n < len(split):
        raise ValueError(f"cannot hold out {n} of {len(split)} training images for validation")
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(int(seed)))
    rest, held = order[n:].sort().values, order[:n].sort().values
    return Split(split.images[rest], split.labels[rest]), Split(split.images[held], split.labels[held])


def binarize(images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A fresh Bernoulli draw: each pixel is 1 with probability value / 255. Returns float32."""
    p = images.float() / 255.0
    return (torch.rand(p.shape, generator=generator, device=p.device) < p).float()


def binarize_fixed(images: torch.Tensor, seed: int = DEFAULT_EVAL_SEED) -> torch.Tensor:
    """The evaluation binarization: one draw with a fixed seed (record the seed with results)."""
    return binarize(images, torch.Generator().manual_seed(int(seed)))


def batches(split: Split, batch_size: int, generator: torch.Generator):
    """Endless shuffled training batches (binary images, labels), freshly binarized each time."""
    n = len(split)
    while True:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1 if n >= batch_size else 1, batch_size):
            idx = order[start:start + batch_size]
            yield binarize(split.images[idx], generator), split.labels[idx]


def _to_device(images: torch.Tensor, labels: torch.Tensor, device: torch.device):
    """Copy a batch to ``device``; from pinned memory and without blocking on CUDA."""
    if device.type == "cuda":
        return images.pin_memory().to(device, non_blocking=True), labels.pin_memory().to(device, non_blocking=True)
    return images.to(device), labels.to(device)


def shard_batches(split: Split, batch_size: int, seed: int, rank: int = 0, world_size: int = 1,
                  epoch: int = 0, generator: torch.Generator | None = None, device: str | torch.device = "cpu"):
    """Endless batches of one worker's share of ``split`` (binary images, labels) on ``device``.

    Every worker walks the same permutation of the images (``DistributedSampler``, seeded by
    ``seed`` and the epoch, ``set_epoch`` at each pass, ``drop_last`` so that all take the same
    number of steps) and takes every ``world_size``-th image from ``rank`` on; it binarizes them
    with its own ``generator`` (which must live on ``device``)."""
    from torch.utils.data import DistributedSampler

    device = torch.device(device)
    sampler = DistributedSampler(split, num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    if len(sampler) < batch_size:
        raise ValueError(f"batch_size {batch_size} is larger than one worker's share of the "
                         f"{len(split)} training images ({len(sampler)})")
    while True:
        sampler.set_epoch(epoch)
        order = torch.tensor(list(sampler))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            images, labels = _to_device(split.images[idx], split.labels[idx], device)
            yield binarize(images, generator), labels
        epoch += 1


def training_batches(split: Split, batch_size: int, seed: int, step: int = 0, rank: int = 0,
                     world_size: int = 1, device: str | torch.device = "cpu"):
    """The batches a worker trains on from ``step`` on (a resumed run draws afresh).

    One process on the CPU: ``batches`` with one generator seeded by ``seed`` and ``step`` (the
    stream this trainer has always used). Otherwise ``shard_batches``: the order seeded by
    ``seed`` (epoch ``step``), the binarization by ``seed``, ``step`` and ``rank``."""
    device = torch.device(device)
    base = seed * 1_000_003 + step
    if world_size == 1 and device.type == "cpu":
        return batches(split, batch_size, torch.Generator().manual_seed(base))
    gen = torch.Generator(device).manual_seed(base + (rank + 1) * 2**32)
    return shard_batches(split, batch_size, seed, rank, world_size, epoch=step, generator=gen, device=device)
