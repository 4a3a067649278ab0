import threading
import time

import numpy as np
import pytest

from rnnviz import ModelConfig, load_checkpoint, sample_traces, trace_images
from rnnviz.checkpoint import read_metadata
from rnnviz.data import load_dataset
from rnnviz.train import Trainer, TrainConfig
from tests.conftest import FIXTURE

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
