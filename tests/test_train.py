"""Training (rnnviz.train): stop, pause and resume from a checkpoint, divergence, unwritable folders,
early and final checkpoints (a kill during the final write), the trainer's own thread count, the
metrics log, bf16 autocast, weight decay, weight averaging and a validation split."""

import threading
import time

import numpy as np
import pytest

from rnnviz import ModelConfig, load_checkpoint, sample_traces, trace_images
from rnnviz.checkpoint import read_metadata
from rnnviz.data import load_dataset
from rnnviz.train import TrainConfig, Trainer, ema_decay, update_average
from tests import FIXTURE

MC = ModelConfig(hidden=24, head_hidden=48)


def config(tmp_path, **kw):
    base = dict(dataset=str(FIXTURE), batch_size=16, minutes=5, warmup_steps=5, lr=3e-3, eval_every_s=1e9, final_eval=False,
                snapshot_every_s=0.2, snapshot_count=4, checkpoint_every_min=1e9, out=str(tmp_path / "run.safetensors"))
    base.update(kw)
    return TrainConfig(**base)


def wait_for(pred, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_train_stop_resume_continues_from_step(tmp_path):
    ds = load_dataset(str(FIXTURE))
    tr = Trainer(MC, config(tmp_path), dataset=ds).start()
    assert wait_for(lambda: tr.snapshot()["step"] >= 30)
    tr.stop()
    assert tr.join(30)
    snap = tr.snapshot()
    assert snap["state"] == "stopped"
    saved_step = read_metadata(tmp_path / "run.safetensors")["metrics"]["step"]
    assert saved_step == snap["step"] >= 30
    assert snap["samples"].shape == (4, 28, 28)
    losses = [r["train_loss"] for r in snap["history"]]
    assert losses and all(l == l for l in losses)

    tr2 = Trainer(MC, config(tmp_path, max_steps=saved_step + 10), dataset=ds,
                  resume=str(tmp_path / "run.safetensors"))
    metrics = tr2.run()
    assert metrics["step"] == saved_step + 10
    assert read_metadata(tmp_path / "run.safetensors")["metrics"]["step"] == saved_step + 10
    # it continued from the saved weights: its loss is below a fresh model's over the same 10 steps
    fresh = Trainer(MC, config(tmp_path / "fresh", max_steps=10), dataset=ds)
    fresh.run()
    assert tr2.snapshot()["history"][0]["train_loss"] < fresh.snapshot()["history"][0]["train_loss"] - 20


def test_stop_takes_effect_within_a_batch_and_pause_holds(tmp_path):
    ds = load_dataset(str(FIXTURE))
    tr = Trainer(MC, config(tmp_path, out=None), dataset=ds).start()
    assert wait_for(lambda: tr.snapshot()["step"] >= 3)
    tr.pause()
    assert wait_for(lambda: tr.snapshot()["state"] == "paused")
    s1 = tr.snapshot()["step"]
    time.sleep(0.5)
    assert tr.snapshot()["step"] == s1  # paused: no progress
    tr.resume()
    assert wait_for(lambda: tr.snapshot()["step"] > s1)
    t = time.perf_counter()
    tr.stop()
    assert tr.join(10)
    assert time.perf_counter() - t < 5
    assert tr.snapshot()["state"] == "stopped"


def test_metrics_can_be_read_from_another_thread(tmp_path):
    ds = load_dataset(str(FIXTURE))
    tr = Trainer(MC, config(tmp_path, out=None, max_steps=40, eval_every_s=0.0, eval_images=32), dataset=ds)
    seen, errors = [], []

    def reader():
        try:
            while tr.alive or not seen:
                snap = tr.snapshot()
                seen.append(len(snap["history"]))
                model = tr.published_model()
                if model is not None:  # a copy: training cannot change it under our feet
                    (sampled,) = sample_traces(model, 1, y=1, seed=len(seen))
                    (read,) = trace_images(model, sampled.image, y=1)
                    if not np.allclose(sampled.probs, read.probs, atol=1e-5):
                        errors.append("a generation during training does not reproduce its image")
                time.sleep(0.01)
        except Exception as e:  # pragma: no cover - the assertion below reports it
            errors.append(e)

    tr.start()
    th = threading.Thread(target=reader)
    th.start()
    assert tr.join(60)
    th.join(10)
    assert not errors
    assert seen == sorted(seen)  # history only grows
    snap = tr.snapshot()
    assert snap["state"] == "finished" and snap["step"] == 40
    assert any(r["test_nll"] is not None for r in snap["history"])


def test_diverging_run_is_stopped_with_a_message(tmp_path):
    ds = load_dataset(str(FIXTURE))
    tr = Trainer(MC, config(tmp_path, lr=10.0, warmup_steps=1, max_steps=300), dataset=ds)
    tr.run()
    snap = tr.snapshot()
    assert snap["state"] == "failed" and "diverged" in snap["message"]
    assert snap["step"] < 300
    assert not (tmp_path / "run.safetensors").exists()  # nothing bad was saved


def test_trained_checkpoint_improves_and_loads(tmp_path):
    ds = load_dataset(str(FIXTURE))
    tr = Trainer(MC, config(tmp_path, max_steps=60, final_eval=True, batch_size=32, lr=3e-3,
                                 warmup_steps=5), dataset=ds)
    metrics = tr.run()
    model = load_checkpoint(tmp_path / "run.safetensors")
    assert metrics["test_nll"] < 300  # uniform guessing is 543 nats
    assert read_metadata(tmp_path / "run.safetensors")["metrics"]["test_nll"] == metrics["test_nll"]
    assert read_metadata(tmp_path / "run.safetensors")["metrics"]["dataset"] == "mnist_small"


def test_bad_config_rejected():
    with pytest.raises(ValueError):
        TrainConfig(lr=float("nan"))
    with pytest.raises(ValueError):
        TrainConfig(batch_size=0)


def test_unwritable_output_fails_fast_with_a_clear_message(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    tr = Trainer(MC, config(tmp_path, out=str(blocker / "run.safetensors")), dataset=load_dataset(str(FIXTURE)))
    with pytest.raises(OSError, match="cannot write checkpoints"):
        tr.run()
    tr2 = Trainer(MC, config(tmp_path, out=str(blocker / "run.safetensors")), dataset=load_dataset(str(FIXTURE)))
    tr2.start()
    assert tr2.join(30)
    snap = tr2.snapshot()
    assert snap["state"] == "failed" and "cannot write checkpoints" in snap["message"]


def test_failed_periodic_checkpoint_stops_cleanly(tmp_path, monkeypatch):
    import rnnviz.checkpoint as ck

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    tr = Trainer(MC, config(tmp_path, checkpoint_every_min=1e-9, max_steps=50), dataset=load_dataset(str(FIXTURE)))
    monkeypatch.setattr(ck, "save_checkpoint", full_disk)
    tr.run()
    snap = tr.snapshot()
    assert snap["state"] == "failed" and "No space left" in snap["message"] and snap["step"] < 50


# ---- checkpoints early, orphans, a kill during the final write ------------------------------------
def test_first_checkpoint_comes_within_n_steps_and_orphan_temps_are_removed(tmp_path):
    ours = tmp_path / ".run.safetensors.k2j4x9q1.tmp"  # what save_checkpoint leaves when killed mid-write
    others = [tmp_path / ".other.safetensors.k2j4x9q1.tmp", tmp_path / "run.tmp", tmp_path / "notes.txt"]
    for p in [ours, *others]:
        p.write_bytes(b"partial")
    tr = Trainer(MC, config(tmp_path, first_checkpoint_steps=5, checkpoint_every_min=1e9), dataset=load_dataset(str(FIXTURE)))
    tr.start()
    try:
        assert wait_for(lambda: (tmp_path / "run.safetensors").exists() or not tr.alive)
        assert tr.alive, tr.snapshot()["message"]  # the checkpoint came while the run went on
        assert 5 <= read_metadata(tmp_path / "run.safetensors")["metrics"]["step"] < 5 + 10
    finally:
        tr.stop()
        assert tr.join(30)
    assert not ours.exists() and all(p.exists() for p in others)  # only our own temporary files


KILL_DURING_FINAL_WRITE = r"""
import os, sys, time
from rnnviz import ModelConfig
from rnnviz.train import Trainer, TrainConfig
real_replace, calls = os.replace, []
def slow_replace(src, dst):  # the checkpoint's temporary file is complete, the rename not done yet
    calls.append(dst)
    if len(calls) == 2:
        print("WRITING", flush=True)
        time.sleep(120)
    real_replace(src, dst)
os.replace = slow_replace
Trainer(ModelConfig(hidden=24, head_hidden=48),
        TrainConfig(dataset=sys.argv[1], batch_size=16, max_steps=12, warmup_steps=3, eval_every_s=1e9,
                    final_eval=False, first_checkpoint_steps=5, checkpoint_every_min=1e9, out=sys.argv[2])).run()
"""


def test_a_run_killed_during_its_final_write_keeps_the_previous_checkpoint(tmp_path):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "run.safetensors"
    root = Path(__file__).resolve().parents[1]
    p = subprocess.Popen([sys.executable, "-c", KILL_DURING_FINAL_WRITE, str(FIXTURE), str(out)], cwd=root,
                         env={**__import__("os").environ, "PYTHONPATH": str(root)}, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "WRITING"
        p.send_signal(signal.SIGKILL)
        p.wait(30)
    finally:
        p.kill()
    orphans = list(tmp_path.glob(".run.safetensors.*.tmp"))
    assert len(orphans) == 1  # the final write was cut short
    model = load_checkpoint(out)  # the previous (first) checkpoint is intact
    assert read_metadata(out)["metrics"]["step"] == 5
    assert model.sample(1, y=1, seed=0).images.shape == (1, 28, 28)
    # a restart removes the orphan and continues from the kept checkpoint
    tr = Trainer(MC, config(tmp_path, max_steps=8), dataset=load_dataset(str(FIXTURE)), resume=str(out))
    assert tr.run()["step"] == 8
    assert not list(tmp_path.glob(".run.safetensors.*.tmp"))


# ---- the thread count is the trainer's own ---------------------------------------------------------
def test_thread_count_applies_to_the_trainer_thread_alone(tmp_path):
    import torch

    main_before = torch.get_num_threads()
    want = 1 if main_before > 1 else 2
    tr = Trainer(MC, config(tmp_path, threads=want, first_checkpoint_steps=3), dataset=load_dataset(str(FIXTURE)))
    tr.start()
    during, new_threads = [], []
    try:
        assert wait_for(lambda: (tmp_path / "run.safetensors").exists() or not tr.alive)
        during.append(torch.get_num_threads())
        t = threading.Thread(target=lambda: new_threads.append(torch.get_num_threads()))
        t.start()
        t.join()
    finally:
        tr.stop()
        assert tr.join(30)
    assert tr.snapshot()["state"] == "stopped"
    assert read_metadata(tmp_path / "run.safetensors")["metrics"]["hardware"]["threads"] == want  # the trainer's
    assert during == [main_before] and torch.get_num_threads() == main_before  # the main thread's, unchanged
    assert new_threads == [main_before]  # threads started meanwhile get the process default, as before


# ---- logs -----------------------------------------------------------------------------------------
def test_every_run_writes_a_metrics_log_that_a_resumed_run_continues(tmp_path):
    from rnnviz.train import read_metrics_log

    ds = load_dataset(str(FIXTURE))
    tr = Trainer(MC, config(tmp_path, max_steps=20, eval_every_s=0.0, eval_images=32, final_eval=True), dataset=ds)
    metrics = tr.run()
    assert tr.metrics_log == tmp_path / "run.metrics.jsonl" and tr.metrics_log.exists()
    log = read_metrics_log(tmp_path / "run.safetensors")
    assert [r["step"] for r in log] == sorted(r["step"] for r in log) and log[-1]["step"] == 20
    assert set(log[0]) == {"step", "seconds", "wall_time", "train_loss", "test_nll", "test_images", "val_nll",
                           "images_per_s", "lr"}
    assert all(r["val_nll"] is None for r in log)  # no validation set asked for
    assert all(r["train_loss"] > 0 and r["images_per_s"] > 0 and 0 < r["lr"] <= 3e-3 for r in log)
    assert any(r["test_nll"] is not None and r["test_images"] == 32 for r in log[:-1])  # periodic, 32 images
    assert log[-1]["test_nll"] == metrics["test_nll"] and log[-1]["test_images"] == len(ds.test)  # final, all
    assert [r["step"] for r in tr.snapshot()["history"]] == [r["step"] for r in log][:len(tr.snapshot()["history"])]

    with open(tmp_path / "run.metrics.jsonl", "a") as f:  # a torn last line (a killed run) is skipped
        f.write('{"step": 21, "train_lo')
    assert len(read_metrics_log(tmp_path / "run.metrics.jsonl")) == len(log)
    assert read_metrics_log(tmp_path / "run.safetensors", limit=2) == log[-2:]

    # lines after the checkpoint a run resumes from are dropped, then the run appends
    (tmp_path / "run.metrics.jsonl").write_text("".join(__import__("json").dumps({**r, "step": s}) + "\n"
                                                        for s, r in ((5, log[0]), (20, log[0]), (99, log[0]))))
    Trainer(MC, config(tmp_path, max_steps=24), dataset=ds, resume=str(tmp_path / "run.safetensors")).run()
    steps = [r["step"] for r in read_metrics_log(tmp_path / "run.safetensors")]
    assert steps[:2] == [5, 20] and 99 not in steps and steps[-1] == 24
    # a new run into the same path starts afresh
    Trainer(MC, config(tmp_path, max_steps=3), dataset=ds).run()
    assert [r["step"] for r in read_metrics_log(tmp_path / "run.safetensors")][-1] == 3
    assert all(r["step"] <= 3 for r in read_metrics_log(tmp_path / "run.safetensors"))


def test_tensorboard_gets_the_same_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Trainer(MC, config(tmp_path, max_steps=12, eval_every_s=0.0, eval_images=32, tensorboard=str(tmp_path / "tb")),
            dataset=load_dataset(str(FIXTURE))).run()
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"train/loss", "test/nll", "train/images_per_s", "train/lr"} <= tags
    from rnnviz.train import read_metrics_log
    log = read_metrics_log(tmp_path / "run.safetensors")
    assert [e.step for e in acc.Scalars("train/loss")] == [r["step"] for r in log]


def test_a_run_nobody_reads_makes_no_sample_snapshots(tmp_path):
    tr = Trainer(MC, config(tmp_path, max_steps=5, out=None), dataset=load_dataset(str(FIXTURE)))
    tr.run()  # the CLI's case: nobody calls snapshot() while it trains
    snap = tr.snapshot()
    assert snap["state"] == "finished" and snap["samples"] is None and snap["saturation"] is None


# ---- bf16 autocast (the GPU path, exercised on the CPU) -----------------------------------------
def test_bf16_autocast_trains_and_saves_float32_weights(tmp_path):
    import torch

    dtypes, rnn_dtypes = [], []

    class Watched(Trainer):
        def _resume(self, model, opt):
            model.head.register_forward_hook(lambda m, a, out: dtypes.append(out.dtype) if m.training else None)
            model.rnn.register_forward_hook(lambda m, a, out: rnn_dtypes.append(out[0].dtype) if m.training else None)
            return super()._resume(model, opt)

    ds = load_dataset(str(FIXTURE))
    first = Watched(MC, config(tmp_path, max_steps=15, amp="bf16", final_eval=True, batch_size=32), dataset=ds)
    metrics = first.run()
    assert dtypes and set(dtypes) == {torch.bfloat16}  # the head ran in bfloat16 ...
    from rnnviz.train import cpu_runs_bf16_rnn  # ... and the LSTM too where this CPU has a bf16 LSTM
    assert set(rnn_dtypes) == {torch.bfloat16 if cpu_runs_bf16_rnn("lstm") else torch.float32}
    assert metrics["test_nll"] < 520  # ... and it learned (uniform guessing is 543 nats)
    model = load_checkpoint(tmp_path / "run.safetensors")
    assert all(p.dtype == torch.float32 for p in model.parameters())
    with pytest.raises(ValueError, match="amp"):
        TrainConfig(amp="fp8")


def test_init_from_starts_a_wider_run_where_the_source_left_off(tmp_path):
    ds = load_dataset(str(FIXTURE))
    Trainer(MC, config(tmp_path / "a", max_steps=60), dataset=ds).run()
    source = str(tmp_path / "a" / "run.safetensors")
    wide = ModelConfig(hidden=32, head_hidden=64)
    grown = Trainer(wide, config(tmp_path / "b", max_steps=3, lr=1e-6, init_from=source), dataset=ds)
    grown.run()
    fresh = Trainer(wide, config(tmp_path / "c", max_steps=3, lr=1e-6), dataset=ds)
    fresh.run()
    first = grown.snapshot()["history"][0]["train_loss"]
    assert first < fresh.snapshot()["history"][0]["train_loss"] - 50
    meta = read_metadata(tmp_path / "b" / "run.safetensors")
    assert meta["config"].hidden == 32 and meta["metrics"]["step"] == 3  # a new schedule from step 0
    origin = meta["metrics"]["init_from"]
    assert {k: origin[k] for k in ("file", "hidden", "head_hidden", "step")} == {
        "file": "run.safetensors", "hidden": 24, "head_hidden": 48, "step": 60}
    from benchmarks.checkpoint_table import row  # the README's table says where the weights came from
    assert "grown from a 24-unit model trained 0 min, 60 steps" in row(tmp_path / "b" / "run.safetensors")
    # resuming the grown run keeps its origin in the metadata
    Trainer(wide, config(tmp_path / "b", max_steps=5), dataset=ds, resume=str(tmp_path / "b" / "run.safetensors")).run()
    assert read_metadata(tmp_path / "b" / "run.safetensors")["metrics"]["init_from"]["step"] == 60
    with pytest.raises(ValueError, match="only hidden and head_hidden"):
        Trainer(ModelConfig(hidden=32, layers=2), config(tmp_path / "d", max_steps=1, init_from=source),
                dataset=ds).run()
    with pytest.raises(ValueError, match="only upwards"):
        Trainer(ModelConfig(hidden=16, head_hidden=48), config(tmp_path / "e", max_steps=1, init_from=source),
                dataset=ds).run()


def test_dropout_run_records_its_rate_and_a_chain_of_sources_counts_in_the_table(tmp_path):
    ds = load_dataset(str(FIXTURE))
    Trainer(MC, config(tmp_path / "a", max_steps=20), dataset=ds).run()
    wide = ModelConfig(hidden=32, head_hidden=64)
    Trainer(wide, config(tmp_path / "b", max_steps=10, init_from=str(tmp_path / "a" / "run.safetensors")),
            dataset=ds).run()
    c = Trainer(wide, config(tmp_path / "c", max_steps=5, dropout=0.25,
                             init_from=str(tmp_path / "b" / "run.safetensors")), dataset=ds)
    c.run()
    meta = read_metadata(tmp_path / "c" / "run.safetensors")
    assert meta["metrics"]["train_config"]["dropout"] == 0.25
    assert load_checkpoint(tmp_path / "c" / "run.safetensors").dropout == 0.0  # a loaded model has none
    assert meta["metrics"]["init_from"]["init_from"]["step"] == 20
    from benchmarks.checkpoint_table import row
    assert ("(started from a 32-unit model trained 0 min, 10 steps) (grown from a 24-unit model trained 0 min, "
            "20 steps)") in row(tmp_path / "c" / "run.safetensors")
    from rnnviz.checkpoint import cpu_model
    if cpu_model():  # the table names the hardware the run had, where the OS names its CPU
        assert f"CPU ({cpu_model()}), " in row(tmp_path / "c" / "run.safetensors")
    with pytest.raises(ValueError, match="dropout"):
        TrainConfig(dropout=1.0)


def test_weight_decay_is_decoupled_and_a_resumed_run_applies_its_own(tmp_path):
    """One step with weight decay WD lands exactly lr * WD * w below the same step without it
    (AdamW: the shrink is not part of the gradient, so Adam's moments are the same); resuming a
    file saved without decay, with decay, decays from there on."""
    import shutil
    import torch
    from rnnviz.model import RowModel

    ds = load_dataset(str(FIXTURE))
    wd = 0.1
    for name, decay in [("plain", 0.0), ("wd", wd)]:
        Trainer(MC, config(tmp_path / name, max_steps=1, weight_decay=decay), dataset=ds).run()
    torch.manual_seed(0)
    start = RowModel(MC).state_dict()
    plain, decayed = (load_checkpoint(tmp_path / n / "run.safetensors").state_dict() for n in ("plain", "wd"))
    meta = read_metadata(tmp_path / "wd" / "run.safetensors")
    lr = meta["optim"]["param_groups"][0]["lr"]
    assert meta["metrics"]["train_config"]["weight_decay"] == wd and meta["optim"]["param_groups"][0]["weight_decay"] == wd
    for k, w in start.items():
        torch.testing.assert_close(decayed[k], plain[k] - lr * wd * w, atol=1e-7, rtol=0)
    assert any((plain[k] - decayed[k]).abs().max() > 1e-6 for k in start)  # the decay was not too small to see

    for name, decay in [("again", 0.0), ("again_wd", wd)]:  # resume the plain run's file, with and without
        (tmp_path / name).mkdir()
        shutil.copy(tmp_path / "plain" / "run.safetensors", tmp_path / name / "run.safetensors")
        Trainer(MC, config(tmp_path / name, max_steps=2, weight_decay=decay), dataset=ds,
                resume=str(tmp_path / name / "run.safetensors")).run()
    again, again_wd = (load_checkpoint(tmp_path / n / "run.safetensors").state_dict() for n in ("again", "again_wd"))
    lr2 = read_metadata(tmp_path / "again_wd" / "run.safetensors")["optim"]["param_groups"][0]["lr"]
    for k, w in plain.items():
        torch.testing.assert_close(again_wd[k], again[k] - lr2 * wd * w, atol=1e-7, rtol=0)
    for bad in (-0.1, float("nan"), 2.0):
        with pytest.raises(ValueError, match="weight_decay"):
            TrainConfig(weight_decay=bad)


def test_the_weight_average_warms_up_so_a_short_run_is_not_its_random_start():
    import torch
    assert ema_decay(0.999, 0) == pytest.approx(0.1) and ema_decay(0.999, 100) == pytest.approx(101 / 110)
    assert ema_decay(0.999, 8989) < 0.999 == ema_decay(0.999, 8991) == ema_decay(0.999, 10**6)
    assert ema_decay(0.5, 30) == 0.5  # never above the decay asked for
    start, later = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    average = torch.nn.Linear(3, 2).requires_grad_(False)
    average.load_state_dict(start.state_dict())
    for step in range(200):  # 200 steps at 0.999: a fixed decay would keep 82% of the start
        update_average(average, later, ema_decay(0.999, step))
    kept = 1.0
    for step in range(200):
        kept *= ema_decay(0.999, step)
    assert kept < 0.01  # the warm-up keeps less than 1% (0.1 * 0.18 * ... )
    torch.testing.assert_close(average.weight, kept * start.weight + (1 - kept) * later.weight)


def test_weight_averaging_saves_and_scores_the_average_and_resumes_the_training_weights(tmp_path):
    import torch
    from safetensors import safe_open
    from rnnviz.evaluate import evaluate

    ds = load_dataset(str(FIXTURE))
    for name, ema in [("avg", 0.9), ("plain", 0.0)]:
        Trainer(MC, config(tmp_path / name, max_steps=20, ema=ema, final_eval=True), dataset=ds).run()
    avg_file, plain_file = tmp_path / "avg" / "run.safetensors", tmp_path / "plain" / "run.safetensors"

    def tensors(path, prefix):
        with safe_open(str(path), framework="pt") as f:
            return {k[len(prefix):]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}

    # averaging changes nothing in training: the weights beside the average are the plain run's
    plain = tensors(plain_file, "model.")
    assert not tensors(plain_file, "train.")
    assert all(torch.equal(v, plain[k]) for k, v in tensors(avg_file, "train.").items())
    averaged = load_checkpoint(avg_file)  # the file's model is the average ...
    assert any(not torch.equal(v, plain[k]) for k, v in averaged.state_dict().items())
    meta = read_metadata(avg_file)["metrics"]  # ... and its recorded score is the average's own
    assert meta["test_nll"] == round(evaluate(averaged, ds.test.images, meta["eval_binarization_seed"]), 3)
    assert meta["train_config"]["ema"] == 0.9
    # one more step after a resume: the average goes on from the saved average, not from a copy
    import shutil
    saved_average = tensors(avg_file, "model.")
    for name, ema in [("avg", 0.9), ("plain", 0.0)]:
        (tmp_path / f"{name}1").mkdir()
        shutil.copy(tmp_path / name / "run.safetensors", tmp_path / f"{name}1" / "run.safetensors")
        Trainer(MC, config(tmp_path / f"{name}1", max_steps=21, ema=ema), dataset=ds,
                resume=str(tmp_path / f"{name}1" / "run.safetensors")).run()
    stepped = tensors(tmp_path / "plain1" / "run.safetensors", "model.")
    d = ema_decay(0.9, 20)  # the 21st step's decay: still in the warm-up, 21/30
    assert d == pytest.approx(0.7)
    for k, v in tensors(tmp_path / "avg1" / "run.safetensors", "model.").items():
        torch.testing.assert_close(v, d * saved_average[k] + (1 - d) * stepped[k], atol=1e-6, rtol=0)
    # a resumed run continues the training weights, not the average
    for name, ema in [("avg", 0.9), ("plain", 0.0)]:
        Trainer(MC, config(tmp_path / name, max_steps=25, ema=ema), dataset=ds,
                resume=str(tmp_path / name / "run.safetensors")).run()
    plain = tensors(plain_file, "model.")
    assert all(torch.equal(v, plain[k]) for k, v in tensors(avg_file, "train.").items())
    with pytest.raises(ValueError, match="ema"):
        TrainConfig(ema=1.0)


def test_validation_split_is_held_out_and_keep_best_stops_early_without_the_test_set(tmp_path, monkeypatch):
    """--val-images N --keep-best: the periodic evaluation scores N held-out training images that
    no batch contains; the model with the lowest of those scores is kept in run.best.safetensors,
    and only that file's final score looks at the test set."""
    import torch
    from rnnviz.data import hold_out
    from rnnviz.evaluate import evaluate
    from rnnviz.train import read_metrics_log
    import rnnviz.train.loop as train_module  # the module whose training_batches the Trainer calls

    ds = load_dataset(str(FIXTURE))
    rest, held = hold_out(ds.train, 60, seed=0)
    again, held_again = hold_out(ds.train, 60, seed=0)
    assert len(held) == 60 and len(rest) == len(ds.train) - 60
    assert torch.equal(held.images, held_again.images) and torch.equal(rest.labels, again.labels)
    flat = lambda imgs: {bytes(x.numpy()) for x in imgs}  # noqa: E731
    assert not flat(held.images) & flat(rest.images)  # disjoint
    assert len(flat(held.images) | flat(rest.images)) == len(flat(ds.train.images))

    seen = []  # every image a training batch is drawn from
    real = train_module.training_batches
    monkeypatch.setattr(train_module, "training_batches",
                        lambda split, *a, **k: (seen.append(split.images), real(split, *a, **k))[1])
    tr = Trainer(MC, config(tmp_path, max_steps=40, eval_every_s=0.0, lr=1e-2, val_images=60, keep_best=True,
                            final_eval=True), dataset=ds)
    metrics = tr.run()
    assert len(seen) == 1 and not flat(seen[0]) & flat(held.images) and len(seen[0]) == len(ds.train) - 60
    log = read_metrics_log(tmp_path / "run.safetensors")
    vals = [(r["val_nll"], r["step"]) for r in log if r["val_nll"] is not None]
    assert len(vals) >= 10 and all(r["test_nll"] is None for r in log[:-1])  # periodic scores are validation only
    assert log[-1]["test_nll"] == metrics["test_nll"]  # the last model's own final test score, as before
    best_file = tmp_path / "run.best.safetensors"
    best, meta = load_checkpoint(best_file), read_metadata(best_file)
    m = meta["metrics"]
    lowest, at = min(vals)
    assert m["val_nll"] == round(lowest, 3) and m["step"] == at and m["val_images"] == 60 and "optim" not in meta
    assert round(evaluate(best, held.images, m["eval_binarization_seed"]), 3) == m["val_nll"]  # it is that model
    assert m["test_nll"] == round(evaluate(best, ds.test.images, m["eval_binarization_seed"]), 3)
    assert m["test_images"] == len(ds.test)
    # a resumed run keeps the best unless it beats it; a new run starts its own
    Trainer(MC, config(tmp_path, max_steps=41, eval_every_s=1e9, val_images=60, keep_best=True), dataset=ds,
            resume=str(tmp_path / "run.safetensors")).run()
    assert read_metadata(best_file)["metrics"]["val_nll"] == m["val_nll"]
    Trainer(MC, config(tmp_path, max_steps=2, eval_every_s=1e9, val_images=60, keep_best=True), dataset=ds).run()
    assert not best_file.exists()
    with pytest.raises(ValueError, match="keep_best needs val_images"):
        TrainConfig(keep_best=True, out="x.safetensors")
    with pytest.raises(ValueError, match="cannot hold out 400 of 400"):
        Trainer(MC, config(tmp_path / "z", max_steps=2, val_images=400), dataset=ds).run()


def test_a_short_run_leaves_its_progress_bar_full(capsys):
    """A run shorter than one progress record ends with its bar at its total (it was left at 0/30)."""
    trainer = Trainer(ModelConfig(cell="rnn", hidden=16, head_hidden=32),
                      TrainConfig(max_steps=30, minutes=5, final_eval=False, threads=1), dataset=load_dataset(str(FIXTURE)))
    trainer.run(progress_bar=True)
    bars = [line for line in capsys.readouterr().err.replace("\n", "\r").split("\r") if "/30" in line]
    assert bars and "30/30" in bars[-1], bars[-3:]
