"""Distributed training on the CPU: gloo, two workers, the fixture, tiny models.

- Two workers started with torch.multiprocessing (the library path: World + Trainer) end with
  identical weights, and those equal a single process trained on the two workers' batches put
  together (the same seed, data and schedule). Not bit for bit: DDP sums the two gradients in
  its own order and divides by 2, a single process takes the mean over 32 images at once, so
  the float32 results differ in the last bits, and Adam carries that forward. Measured after 8
  steps (2026-12-02): largest difference 3e-8 on weights up to 0.26; the tolerance is atol 1e-6,
  rtol 1e-5. Feeding the reference one worker's batches twice instead gives 6e-3, so the test
  does tell the combined batch from another one.
- The run resumes across world sizes (1 -> 2 -> 1) and its checkpoint loads and samples.
- ``torchrun ... -m rnnviz.train`` works end to end, and a worker killed mid-run ends the job with
  a message that names what happened, leaving the last checkpoint loadable.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from rnnviz import ModelConfig, load_checkpoint
from rnnviz.checkpoint import read_metadata
from rnnviz.data import load_dataset, training_batches
from rnnviz.distributed import World
from rnnviz.train import TrainConfig, Trainer, read_metrics_log
from tests import FIXTURE, ROOT

MC = ModelConfig(hidden=16, head_hidden=32)
PER_WORKER = 16


def _config(out, **kw):
    base = {"dataset": str(FIXTURE), "batch_size": PER_WORKER, "minutes": 60, "warmup_steps": 3, "lr": 3e-3,
            "eval_every_s": 1e9, "final_eval": False, "snapshot_every_s": 1e9, "checkpoint_every_min": 1e9,
            "out": str(out), "sync_every": 3}
    base.update(kw)
    return TrainConfig(**base)


class Recording(Trainer):
    """A Trainer that keeps a handle on its live model, so that a test can read every worker's weights."""

    def _resume(self, model, opt):
        self.live = model
        return super()._resume(model, opt)


class Combined(Recording):
    """One process trained on what two workers would each see, concatenated: the DDP reference."""

    def _batches(self, ds, step, device):
        shards = [training_batches(ds.train, PER_WORKER, self.config.seed, step, r, 2, device) for r in range(2)]
        for (x0, y0), (x1, y1) in zip(*shards):
            yield torch.cat([x0, x1]), torch.cat([y0, y1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, folder, resume, max_steps):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    world = World.from_env()
    world.start("cpu")
    try:
        tr = Recording(MC, _config(Path(folder) / "ddp.safetensors", max_steps=max_steps),
                       dataset=load_dataset(str(FIXTURE)), resume=resume, world=world)
        tr.run()
        save_file({k: v.contiguous() for k, v in tr.live.state_dict().items()}, str(Path(folder) / f"rank{rank}.safetensors"))
    finally:
        world.close()


def test_two_workers_agree_and_equal_one_process_over_the_combined_batch(tmp_path):
    ds = load_dataset(str(FIXTURE))
    start = tmp_path / "start.safetensors"  # a single-process checkpoint: DDP resumes across world sizes
    Trainer(MC, _config(start, batch_size=2 * PER_WORKER, max_steps=4), dataset=ds).run()

    torch.multiprocessing.start_processes(_worker, args=(2, _free_port(), str(tmp_path), str(start), 12),
                                          nprocs=2, start_method="spawn", join=True)
    r0, r1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert all(torch.equal(r0[k], r1[k]) for k in r0)  # DDP: both workers hold the same weights

    ref = Combined(MC, _config(tmp_path / "ref.safetensors", batch_size=2 * PER_WORKER, max_steps=12),
                   dataset=ds, resume=str(start))
    ref.run()
    want = ref.live.state_dict()
    for k in r0:
        torch.testing.assert_close(r0[k], want[k], atol=1e-6, rtol=1e-5, msg=f"{k} differs from one process")
    start_w = load_checkpoint(start).state_dict()
    assert max((r0[k] - start_w[k]).abs().max().item() for k in r0) > 1e-3  # it did train from the start point

    # rank 0 wrote a checkpoint like a single process's, with the world size and the global batch
    meta = read_metadata(tmp_path / "ddp.safetensors")["metrics"]
    assert meta["step"] == 12 and meta["world_size"] == 2 and meta["global_batch"] == 2 * PER_WORKER
    assert meta["train_config"]["batch_size"] == PER_WORKER
    assert meta["train_images"] == 4 * 2 * PER_WORKER + 8 * 2 * PER_WORKER
    model = load_checkpoint(tmp_path / "ddp.safetensors")
    assert all(torch.equal(model.state_dict()[k], r0[k]) for k in r0)
    assert model.sample(2, y=3, seed=0).images.shape == (2, 28, 28)
    log = read_metrics_log(tmp_path / "ddp.safetensors")
    assert log and log[-1]["step"] == 12 and all(r["step"] > 4 for r in log)  # this run's records, from rank 0

    # ... and one process resumes from it (2 -> 1)
    back = Trainer(MC, _config(tmp_path / "ddp.safetensors", batch_size=2 * PER_WORKER, max_steps=15), dataset=ds,
                   resume=str(tmp_path / "ddp.safetensors"))
    assert back.run()["step"] == 15
    assert read_metadata(tmp_path / "ddp.safetensors")["metrics"]["world_size"] == 1
    steps = [r["step"] for r in read_metrics_log(tmp_path / "ddp.safetensors")]
    assert steps[0] <= 12 < steps[-1] == 15 and steps == sorted(steps)  # the log kept its first part and went on


def _torchrun(*args, **kw):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                             "-m", "rnnviz.train", "--dataset", str(FIXTURE), "--hidden", "16", "--head-hidden", "32",
                             *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


# In one of the three .ci/run runs of 2026-12-02 a worker aborted in its first step ("terminate called
# without an active exception", SIGABRT); 6 runs by hand did not reproduce it and the cause is not
# known yet.
# That one signature is run again once, and reported; any other failure fails the test at once.
GLOO_ABORT = "terminate called without an active exception"


def test_torchrun_trains_one_model_whose_checkpoint_loads_and_samples(tmp_path):
    out = tmp_path / "ddp.safetensors"
    for attempt in (1, 2):
        p = _torchrun("--max-steps", "30", "--batch-size", "16", "--out", str(out))
        text, _ = p.communicate(timeout=240)
        if p.returncode == 0 or GLOO_ABORT not in text or attempt == 2:
            break
        print(f"a worker aborted at start (known, cause unknown); running again:\n{text[-1500:]}")
    assert p.returncode == 0, text[-3000:]
    assert text.count("finished: finished; step 30") == 1 and "2 workers, global batch 32" in text  # rank 0 alone
    meta = read_metadata(out)["metrics"]
    assert meta["world_size"] == 2 and meta["global_batch"] == 32 and meta["test_nll"] < 543
    assert load_checkpoint(out).sample(1, y=7, seed=1).images.shape == (1, 28, 28)
    log = read_metrics_log(out)
    assert log[-1]["step"] == 30 and log[-1]["test_nll"] == meta["test_nll"]
    assert all(r["images_per_s"] > 0 and r["lr"] > 0 and r["train_loss"] > 0 for r in log)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False).stdout
        return [int(c) for c in out.split()]


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for kv in env:
        if kv.startswith(b"RANK="):
            return int(kv[5:])
    return None


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the workers through /proc")
def test_a_killed_worker_ends_the_run_with_a_message_and_the_checkpoint_loads(tmp_path):
    out = tmp_path / "ddp.safetensors"
    p = _torchrun("--minutes", "5", "--batch-size", "16", "--first-checkpoint-steps", "6", "--sync-every", "2",
                  "--no-final-eval", "--out", str(out))
    try:
        deadline = time.time() + 120
        while not out.exists() and time.time() < deadline and p.poll() is None:
            time.sleep(0.2)
        assert out.exists(), "no first checkpoint within 6 steps"
        workers = {_rank_of(c): c for c in _children(p.pid)}
        assert set(workers) == {0, 1}, workers
        os.kill(workers[1], signal.SIGKILL)
        text, _ = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode != 0
    assert "another worker stopped" in text or "stopped by torchrun" in text, text[-3000:]
    assert "is kept and loads" in text and f"--resume {out}" in text
    assert load_checkpoint(out).sample(1, y=2, seed=0).images.shape == (1, 28, 28)
    assert read_metadata(out)["metrics"]["step"] >= 6
    assert not list(tmp_path.glob(".ddp.safetensors.*.tmp"))  # no half-written file left behind
