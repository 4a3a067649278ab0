"""What the trainer needs from the machine: the device, the CPU threads of the training thread,
a bf16 autocast this CPU can run, DistributedDataParallel with its options, and ``Tally``, the
loss meter that sums over the workers."""

from __future__ import annotations

import inspect
import threading
from contextlib import contextmanager

import torch
from torch import nn

from ..distributed import World
from ..model import CELLS, RowModel


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


# ---- CPU threads ------------------------------------------------------------------------------------
def _set_process_default_threads(n: int):
    # A thread reads the process-wide default once, lazily; a short-lived thread that sets it
    # changes only that default, not the count of any thread already running.
    t = threading.Thread(target=torch.set_num_threads, args=(n,), name="rnnviz-threads-default")
    t.start()
    t.join()


@contextmanager
def thread_count(n: int):
    """Run the body with ``n`` CPU threads for the calling thread only (0: change nothing).

    With this PyTorch (OpenMP backend) ``torch.set_num_threads`` sets the calling thread's own
    OpenMP and MKL counts, and also the process-wide default that threads read when they first
    use torch. So the trainer's thread sets its count and then puts the default back; the other
    threads (the app's main and worker threads) keep theirs, and threads started later get the
    default as before. At the end the calling thread gets its previous count back."""
    if not n:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    _set_process_default_threads(before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---- bf16 -----------------------------------------------------------------------------------------
_BF16_RNN: dict[str, bool] = {}


def cpu_runs_bf16_rnn(cell: str = "lstm") -> bool:
    """Whether this CPU runs ``cell`` under a bf16 autocast (oneDNN builds one only on CPUs with
    AVX512-BF16 or AMX, and raises elsewhere): a tiny forward and backward, tried once per process."""
    if cell not in _BF16_RNN:
        try:
            rnn = CELLS[cell](4, 4, batch_first=True)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out, _ = rnn(torch.ones(2, 3, 4))
            out.float().sum().backward()
            _BF16_RNN[cell] = out.dtype == torch.bfloat16 and all(
                p.grad is not None and torch.isfinite(p.grad).all() for p in rnn.parameters())
        except RuntimeError:
            _BF16_RNN[cell] = False
    return _BF16_RNN[cell]


def recurrent_layer_in_float32(model: RowModel):
    """Keep the recurrent layer out of a CPU bf16 autocast where the CPU has no bf16 version of it
    (``cpu_runs_bf16_rnn``). The head's matmuls still autocast."""
    before = []
    try:  # PyTorch >= 2.4 takes the device type; older ones have the CPU-only names
        torch.is_autocast_enabled("cpu")
        is_on, set_on = (lambda: torch.is_autocast_enabled("cpu")), (lambda on: torch.set_autocast_enabled("cpu", on))
    except TypeError:
        is_on, set_on = torch.is_autocast_cpu_enabled, torch.set_autocast_cpu_enabled

    def enter(module, args):
        before.append(is_on())
        set_on(False)
        return tuple(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args)

    def leave(module, args, out):
        set_on(before.pop())

    model.rnn.register_forward_pre_hook(enter)
    model.rnn.register_forward_hook(leave)


def autocast_for(model: RowModel, device: torch.device, amp: str) -> torch.autocast:
    """The autocast the training steps run under: bf16 with ``amp="bf16"`` (the recurrent layer kept
    in float32 on a CPU without a bf16 version of it), else a disabled one."""
    if amp == "bf16" and device.type == "cpu" and not cpu_runs_bf16_rnn(model.config.cell):
        recurrent_layer_in_float32(model)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp == "bf16")


# ---- DistributedDataParallel ------------------------------------------------------------------------
class Objective(nn.Module):
    """The training loss as a module's forward, so that DistributedDataParallel sees each step."""

    def __init__(self, model: RowModel, free_bits: float):
        super().__init__()
        self.model, self.free_bits = model, free_bits

    def forward(self, x, y):
        return self.model.loss(x, y if self.model.config.num_classes else None, self.free_bits)


def ddp_options() -> dict:
    """DDP options that skip re-sending buffers at every step (the model's only one is constant);
    newer PyTorch names the option ``forward_sync_buffers``."""
    from torch.nn.parallel import DistributedDataParallel

    params = inspect.signature(DistributedDataParallel.__init__).parameters
    return {"forward_sync_buffers": False} if "forward_sync_buffers" in params else {"broadcast_buffers": False}


def distributed(objective: Objective, device: torch.device) -> nn.Module:
    """``objective`` wrapped in DistributedDataParallel, which averages the workers' gradients."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None,
                                   **ddp_options())


# ---- the loss meter ---------------------------------------------------------------------------------
class Tally:
    """The loss since the last record, summed on the device so that a step never waits for it."""

    def __init__(self, device: torch.device, diverged_above: float):
        self.device, self.diverged_above = device, diverged_above
        self.reset()

    def reset(self):
        self.sums = torch.zeros(2, dtype=torch.float64, device=self.device)  # loss sum, worst loss
        self.steps = self.images = 0

    def add(self, loss: torch.Tensor, images: int):
        loss = loss.detach().double()
        self.sums[0] += loss
        self.sums[1] = torch.maximum(self.sums[1], loss)  # NaN propagates
        self.steps += 1
        self.images += images

    def read(self, world: World) -> tuple[float, bool, int]:
        """(mean loss per image, diverged?, images) over every worker; one host sync."""
        s = self.sums
        bad = (~torch.isfinite(s[1]) | (s[1] > self.diverged_above) | ~torch.isfinite(s[0])).double()
        v = torch.stack([s[0], bad, torch.tensor(float(self.steps), dtype=torch.float64, device=self.device),
                         torch.tensor(float(self.images), dtype=torch.float64, device=self.device)])
        total, bad, steps, images = world.sum_(v).tolist()
        self.reset()
        return total / max(steps, 1), bad > 0, int(images)
