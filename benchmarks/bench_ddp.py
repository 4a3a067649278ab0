"""DDP throughput: images/s with 1 and 2 processes, the Trainer against a plain DDP loop.

    python -m benchmarks.bench_ddp [--steps 100] [--rounds 3] [--batch-size 64] [--device cpu]

Two processes are started like torchrun starts them (environment, gloo on the CPU, NCCL on CUDA;
here with torch.multiprocessing and a free port), each with one CPU thread and its own
``--batch-size`` (the global batch doubles: weak scaling). Timed on rank 0 from a barrier after
start-up to a barrier after the last step, so imports and rendezvous are left out. One process is
the ordinary single-process path (no process group). Every round runs the four in turn (the
order rotates: the machine is shared); the medians are printed, with the ratios
2 processes / 1 process and Trainer / plain loop.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist

from benchmarks.bench_train import FIXTURE, plain_loop, trainer_loop, warm_up
from rnnviz.data import load_dataset, training_batches
from rnnviz.distributed import World
from rnnviz.model import ModelConfig, RowModel
from rnnviz.train import TrainConfig, Trainer
from rnnviz.train.hardware import ddp_options


class _Nll(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, y):
        return self.model.nll(x, y)


def plain_ddp(mc: ModelConfig, ds, steps: int, batch_size: int, world: World):
    """The DDP loop one would write by hand (the pytorch/examples shape)."""
    from torch.nn.parallel import DistributedDataParallel

    torch.manual_seed(0)
    model = RowModel(mc).to(world.device)
    ddp = DistributedDataParallel(_Nll(model), **ddp_options())  # as the Trainer: the one buffer is constant
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    data = training_batches(ds.train, batch_size, 0, 0, world.rank, world.size, world.device)
    for _ in range(steps):
        x, y = next(data)
        loss = ddp(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()


def _worker(rank, size, port, kind, steps, batch_size, device, result):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    world = World.from_env()
    world.start(device)
    try:
        ds = load_dataset(str(FIXTURE))
        mc = ModelConfig()
        torch.optim.Adam([torch.zeros(1, requires_grad=True)])  # the first Adam imports torch._dynamo
        dist.barrier()
        t, cpu = time.perf_counter(), time.process_time()
        if kind == "plain":
            plain_ddp(mc, ds, steps, batch_size, world)
        else:
            tc = TrainConfig(batch_size=batch_size, max_steps=steps, minutes=60, eval_every_s=1e9, final_eval=False,
                             checkpoint_every_min=1e9, out=None, device=device)
            Trainer(mc, tc, dataset=ds, world=world).run()
        dist.barrier()
        wall = time.perf_counter() - t
        cpu = torch.tensor([time.process_time() - cpu], dtype=torch.float64)
        dist.all_reduce(cpu)  # every worker's CPU time
        if world.main:
            images = steps * batch_size * size
            Path(result).write_text(f"{images / wall} {images / cpu.item()}")
    finally:
        world.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_processes(kind: str, steps: int, batch_size: int, device: str) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as d:
        result = os.path.join(d, "images_per_s")
        torch.multiprocessing.start_processes(_worker, args=(2, _free_port(), kind, steps, batch_size, device, result),
                                              nprocs=2, start_method="spawn", join=True)
        wall, cpu = Path(result).read_text().split()
        return float(wall), float(cpu)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=64, help="per process")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one GPU per process)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ds = load_dataset(str(FIXTURE))
    mc = ModelConfig()
    print(f"torch {torch.__version__}, LSTM 1x256, batch {args.batch_size} per process, {args.steps} steps, "
          f"1 thread per process, {args.device}, {args.rounds} rounds, {time.strftime('%Y-%m-%d %H:%M')}")
    warm_up(mc, ds, args.batch_size)
    runs = {"plain 1": lambda: plain_loop(mc, ds, args.steps, args.batch_size),
            "Trainer 1": lambda: trainer_loop(mc, ds, args.steps, args.batch_size),
            "plain 2": lambda: two_processes("plain", args.steps, args.batch_size, args.device),
            "Trainer 2": lambda: two_processes("trainer", args.steps, args.batch_size, args.device)}
    if args.device != "cpu":
        runs.pop("plain 1"), runs.pop("Trainer 1")  # the single-process path above runs on the CPU
    names = list(runs)
    got = {k: [] for k in names}  # (images/s, images per CPU-second of all processes) per round
    for r in range(args.rounds):
        for k in names[r % len(names):] + names[:r % len(names)]:
            got[k].append(runs[k]())
        print(f"round {r + 1}: " + ", ".join(f"{k} {got[k][-1][0]:.0f} ({got[k][-1][1]:.0f} per CPU-s)"
                                              for k in names) + " images/s", flush=True)
    for i, clock in enumerate(("wall clock", "CPU time")):
        def ratio(a, b, i=i):
            return statistics.median(x[i] / y[i] for x, y in zip(got[a], got[b]))

        unit = "images/s" if i == 0 else "images/CPU-s"
        print(f"-- by {clock} (medians of {args.rounds} rounds)")
        for k in names:
            print(f"{k:10s} process(es): {statistics.median(v[i] for v in got[k]):8.0f} {unit}")
        if "Trainer 1" in got:
            print(f"2 / 1 processes: Trainer {ratio('Trainer 2', 'Trainer 1'):.2f}x, plain {ratio('plain 2', 'plain 1'):.2f}x")
            print(f"Trainer/plain: 1 process {ratio('Trainer 1', 'plain 1'):.3f}, 2 processes (DDP) "
                  f"{ratio('Trainer 2', 'plain 2'):.3f} (target >= 0.95)")
        else:
            print(f"Trainer/plain, 2 processes (DDP): {ratio('Trainer 2', 'plain 2'):.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()
