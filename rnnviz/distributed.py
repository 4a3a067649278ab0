"""Who this process is in a torchrun job, and the few collectives the trainer needs.

    torchrun --standalone --nproc-per-node 2 -m rnnviz.train ...

torchrun starts one process per worker and tells each its ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE`` (and where to meet) in the environment. ``World.from_env()`` reads them. Without
torchrun, or with a single worker, it is the one-process world, and nothing here touches
``torch.distributed``: the trainer then runs exactly as it always has.

Backends: NCCL when the workers train on CUDA (one GPU each, ``cuda:LOCAL_RANK``), gloo on CPUs.
The small control messages (rank 0's clock, a stop request, "log now") always go through a gloo
group on the CPU, so agreeing on when to log never waits for a GPU.
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist


class World:
    """This process's place among the workers (rank 0 evaluates, snapshots and writes)."""

    def __init__(self, rank: int = 0, size: int = 1, local_rank: int = 0):
        self.rank, self.size, self.local_rank = rank, size, local_rank
        self.device: torch.device | None = None  # set by start()
        self.backend: str | None = None
        self._control = None  # process group for the CPU control messages

    @classmethod
    def from_env(cls) -> World:
        """The world torchrun describes in the environment (the one-process world otherwise)."""
        try:
            size = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", str(rank)))
        except ValueError as e:
            raise ValueError(f"torchrun's RANK/LOCAL_RANK/WORLD_SIZE are not integers ({e})") from None
        if size < 1 or not 0 <= rank < size:
            raise ValueError(f"RANK {rank} and WORLD_SIZE {size} do not describe a worker")
        return cls(rank, size, local)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size}, local_rank={self.local_rank})"

    def start(self, device: str = "auto", timeout_min: float = 30.0) -> torch.device:
        """Join the process group and pick this worker's device: ``cuda:LOCAL_RANK`` for "auto"
        (when CUDA is there) or "cuda", else the CPU. ``timeout_min`` bounds how long the others
        wait for rank 0 while it evaluates or writes a checkpoint."""
        cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
        if cuda:
            if not torch.cuda.is_available():
                raise RuntimeError("--device cuda was asked for, but this machine has no CUDA device")
            if self.local_rank >= torch.cuda.device_count():
                raise RuntimeError(f"LOCAL_RANK {self.local_rank} has no GPU: this machine has "
                                   f"{torch.cuda.device_count()} (use --nproc-per-node <= that)")
            self.device = torch.device("cuda", self.local_rank)
            torch.cuda.set_device(self.device)
        else:
            self.device = torch.device("cpu") if device == "auto" else torch.device(device)
        if self.distributed:
            self.backend = "nccl" if cuda else "gloo"
            dist.init_process_group(self.backend, timeout=timedelta(minutes=timeout_min))
            self._control = dist.new_group(backend="gloo") if self.backend == "nccl" else None
        return self.device

    def close(self):
        if self.distributed and dist.is_initialized():
            dist.destroy_process_group()

    def sum_cpu(self, values: list[float]) -> list[float]:
        """Element-wise sum of ``values`` over the workers, on the CPU (identity for one process)."""
        if not self.distributed:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        dist.all_reduce(t, group=self._control)
        return t.tolist()

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """Sum a tensor over the workers in place, on its own device (identity for one process)."""
        if self.distributed:
            dist.all_reduce(t)
        return t


def is_peer_failure(e: BaseException) -> bool:
    """Whether ``e`` is a collective that failed because another worker went away."""
    if isinstance(e, getattr(dist, "DistError", ())):
        return True
    text = str(e).lower()
    return isinstance(e, RuntimeError) and any(k in text for k in (
        "gloo", "nccl", "connection closed", "connection reset", "broken pipe", "timed out"))
