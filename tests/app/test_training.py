"""The training service behind the Train tab (rnnviz/app/training.py): turned off, missing data, who
may control a run, its thread count, its metrics log, runs capped oldest first, run names that
cannot leave the runs folder, and faults seen through the app (a diverging run, an unwritable runs
folder, a full disk, a server killed while it writes a checkpoint); each is one sentence without the
server's folders."""

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnviz import RowModel, save_checkpoint
from rnnviz.app import inputs
from rnnviz.app.training import TrainingRefused, TrainingService
from tests import FIXTURE, ROOT
from tests.app import SMALL, App
from tests.hostile import HOSTILE_NAMES


def _wait_for_run(app, timeout=90) -> str:
    run = app.training.run
    assert run is not None
    assert run.trainer.join(timeout), "the run did not end"
    return app.call("/train_refresh")[1][0]


def test_a_diverging_run_is_stopped_with_a_message(app):
    status, out = app.call("/train_start", "lstm", 16, 1, 10.0, 32, 0.5, str(FIXTURE), "diverge")
    assert status == "ok" and app.training.run is not None and "lr 10," in app.training.run.summary
    text = _wait_for_run(app)
    assert "**failed**" in text and "diverged at step" in text and "learning rate 10" in text
    assert not app.training.run.out.exists()  # nothing bad was saved
    app.generate_works()


def test_an_unwritable_runs_folder_refuses_to_start(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the runs folder should be")
    svc = TrainingService(blocker / "runs", default_dataset=str(FIXTURE), threads=1, max_minutes=1.0)
    app = App(tmp_path, training=svc)
    try:
        status, out = app.call("/train_start", "lstm", 16, 1, 0.002, 32, 0.2, str(FIXTURE), "")
        assert status == "ok" and "Cannot start" in out[0] and "cannot write checkpoints" in out[0]
        assert svc.run is None and not svc.active()  # nothing started
        app.generate_works()
    finally:
        app.close()


def test_a_full_disk_at_the_end_stops_cleanly_with_a_message(app, monkeypatch):
    import rnnviz.checkpoint as ck

    def full_disk(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ck, "save_checkpoint", full_disk)
    status, out = app.call("/train_start", "gru", 16, 1, 0.002, 32, 1.0, str(FIXTURE), "full")
    assert status == "ok" and app.training.run.name == "full"
    deadline = time.time() + 60
    while app.training.run.trainer.snapshot()["step"] < 3 and time.time() < deadline:
        time.sleep(0.1)
    app.call("/train_stop")
    text = _wait_for_run(app)
    assert "**failed**" in text and "could not write checkpoint" in text and "No space left" in text
    app.generate_works()


# ---- many sessions --------------------------------------------------------------------------------------


def test_start_refuses_a_model_the_explorer_could_not_load(tmp_path):
    svc = TrainingService(tmp_path / "runs", default_dataset=str(FIXTURE), threads=1)
    with pytest.raises(inputs.InputError, match="parameters, over the explorer's limit"):
        svc.start("a", "lstm", 1024, 4, 1e-3, 32, 0.05, None)  # within TRAIN_LIMITS, over APP_LIMITS
    assert svc.run is None and not (tmp_path / "runs").exists()


class _Alive:
    alive = True


def test_finished_runs_are_capped_oldest_first_and_the_live_run_is_kept(tmp_path):
    from rnnviz.app.training import Run

    runs = tmp_path / "runs"
    runs.mkdir()
    for i in range(6):
        p = runs / f"run{i}.safetensors"
        p.write_bytes(b"\0" * 1000)
        (runs / f"run{i}.metrics.jsonl").write_text("{}\n")
        os.utime(p, ns=(i * 10**9, i * 10**9))
    svc = TrainingService(runs, max_runs=3, max_run_bytes=10**6)
    svc._run = Run(_Alive(), "a", "run0", "", "", runs / "run0.safetensors", "x")  # the oldest is still training
    assert svc.prune_runs() == ["run2", "run1"]
    assert sorted(p.name for p in runs.glob("*.safetensors")) == ["run0.safetensors", "run3.safetensors",
                                                                  "run4.safetensors", "run5.safetensors"]
    assert not (runs / "run1.metrics.jsonl").exists()
    assert svc.prune_runs(keep=10, keep_bytes=2500) == ["run3"]  # by bytes too (two runs fit)
    assert (runs / "run0.safetensors").exists()


def test_start_removes_the_oldest_runs_with_a_message(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    for i in range(3):
        save_checkpoint(runs / f"old{i}.safetensors", RowModel(SMALL))
        os.utime(runs / f"old{i}.safetensors", ns=(i * 10**9, i * 10**9))
    svc = TrainingService(runs, default_dataset=str(FIXTURE), threads=1, max_runs=2)
    try:
        _, notes = svc.start("a", "lstm", 16, 1, 1e-3, 32, 0.05, None)
    finally:
        svc.shutdown(60)
    assert any("removed the oldest, old1, old0" in n for n in notes), notes
    assert not (runs / "old0.safetensors").exists() and (runs / "old2.safetensors").exists()


def test_a_run_cannot_take_a_shipped_checkpoints_name(app):
    for name in ("mnist_lstm", "MNIST_LSTM", "deep_rnn"):
        assert app.ex.training.checkpoint_path(name, "x").stem.lower() != name.lower()
    assert app.ex.training.checkpoint_path("my_run", "x").stem == "my_run"


def test_run_names_cannot_leave_the_runs_folder(tmp_path):
    svc = TrainingService(tmp_path / "runs")
    for name in HOSTILE_NAMES:
        path = svc.checkpoint_path(name, "fallback")
        assert path.parent == tmp_path / "runs" and path.suffix == ".safetensors"
        assert set(path.stem) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
        assert 0 < len(path.stem) <= 40


def test_messages_show_paths_relative_to_the_apps_folders(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    svc = TrainingService(blocker / "runs", default_dataset=str(FIXTURE), threads=1)
    with pytest.raises(TrainingRefused) as e:
        svc.start("a", "lstm", 16, 1, 1e-3, 32, 0.05, None)
    assert str(tmp_path) not in str(e.value) and "runs" in str(e.value)
    svc = TrainingService(tmp_path / "runs", default_dataset="mnist", data_root=str(tmp_path / "nodata"))
    problem = svc.dataset_problem()
    assert problem and str(tmp_path) not in svc.relative(problem)
    from rnnviz.app.tabs.train import training_status

    snap = {"state": "done", "message": "", "history": [], "step": 1, "seconds": 1, "seconds_left": 0,
            "checkpoint": str(tmp_path / "runs" / "x.safetensors")}
    assert str(tmp_path) not in training_status(snap)


@pytest.mark.parametrize("owner_only", [True, False])
def test_another_visitor_can_pause_only_when_the_operator_allows_it(tmp_path, owner_only):
    svc = TrainingService(tmp_path / "runs", default_dataset=str(FIXTURE), threads=1, owner_only=owner_only)
    try:
        svc.start("starter", "rnn", 16, 1, 1e-3, 32, 0.5, None)
        if owner_only:
            with pytest.raises(TrainingRefused, match="Only the visitor who started"):
                svc.control("someone-else", "stop")
            assert svc.active()
            assert "Stopping" in svc.control("starter", "stop")
        else:
            assert "Stopping" in svc.control("someone-else", "stop")
        svc.run.trainer.join(60)
        assert not svc.active()
    finally:
        svc.shutdown(60)


def test_training_disabled_and_missing_data(tmp_path):
    off = TrainingService(tmp_path, enabled=False, disabled_reason="Training is turned off here.")
    with pytest.raises(TrainingRefused, match="turned off"):
        off.start("me", "lstm", 16, 1, 1e-3, 32, 0.1, None)
    missing = TrainingService(tmp_path, default_dataset=str(tmp_path / "nope.npz"))
    assert missing.dataset_problem()
    with pytest.raises(TrainingRefused):
        missing.start("me", "lstm", 16, 1, 1e-3, 32, 0.1, None)
    with pytest.raises(inputs.InputError, match="dataset must be"):
        missing.start("me", "lstm", 16, 1, 1e-3, 32, 0.1, "/etc/passwd")
    with pytest.raises(inputs.InputError, match="cell"):
        missing.start("me", "transformer", 16, 1, 1e-3, 32, 0.1, None)
    with pytest.raises(inputs.InputError, match="dropout must be a finite number"):
        missing.start("me", "lstm", 16, 1, 1e-3, 32, 0.1, None, None, float("nan"))
    with pytest.raises(inputs.InputError, match="weight averaging must be true or false"):
        missing.start("me", "lstm", 16, 1, 1e-3, 32, 0.1, None, None, 0.1, "yes")


def test_only_the_owner_controls_a_run_on_spaces(tmp_path):
    svc = TrainingService(tmp_path, default_dataset=str(FIXTURE), owner_only=True, threads=1)
    msg, notes = svc.start("alice", "rnn", 99999, 1, 1e-3, 32, 0.05, None, None, 0.9)
    try:
        assert "Started" in msg and any("hidden size" in n for n in notes)  # clamped to the limit
        assert any("dropout 0.9 is outside [0, 0.6]" in n for n in notes) and svc.run.trainer.config.dropout == 0.6
        with pytest.raises(TrainingRefused, match="Only the visitor"):
            svc.control("bob", "stop")
        with pytest.raises(TrainingRefused, match="another visitor"):
            svc.start("bob", "lstm", 16, 1, 1e-3, 32, 0.05, None)
        assert "Stopping" in svc.control("alice", "stop")
    finally:
        svc.shutdown(60)


def test_a_run_started_from_the_page_leaves_the_page_thread_count_alone(tmp_path):
    """The trainer sets its thread count for its own thread: the page's handlers (this thread, and
    threads started while it trains) keep theirs."""
    import threading

    import torch

    before = torch.get_num_threads()
    svc = TrainingService(tmp_path, default_dataset=str(FIXTURE), threads=1 if before > 1 else 2)
    try:
        svc.start("me", "rnn", 16, 1, 1e-3, 32, 0.05, None)
        time.sleep(0.5)  # the trainer's thread is running and has set its own count
        seen = []
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        t.start(), t.join()
        assert torch.get_num_threads() == before and seen == [before]
    finally:
        svc.shutdown(60)
    assert torch.get_num_threads() == before


def test_the_train_tab_curve_reads_the_runs_metrics_log(tmp_path):
    """The Train tab draws the same stream scripts and TensorBoard users read: the run's
    <name>.metrics.jsonl beside its checkpoint."""
    from rnnviz.app.tabs.train import curve_rows
    from rnnviz.train import read_metrics_log

    svc = TrainingService(tmp_path, default_dataset=str(FIXTURE), threads=1)
    try:
        svc.start("me", "rnn", 16, 1, 1e-3, 32, 0.05, None, "logged")
        assert svc.run.trainer.join(120)
    finally:
        svc.shutdown(60)
    log = read_metrics_log(tmp_path / "logged.safetensors")
    assert log and svc.history() == log
    rows = curve_rows(svc.history())
    assert [r["step"] for r in rows if r["series"] == "train loss"] == [r["step"] for r in log
                                                                    if r.get("train_loss") is not None]


# ---- explorer.py ----------------------------------------------------------------------------------


def test_the_train_tab_says_in_one_sentence_where_the_data_goes(tmp_path, monkeypatch):
    """Offline, the Train tab's notice and a refused Start say where to put MNIST or to pass
    --data-root: one sentence, no server path, none of torchvision's own text."""
    monkeypatch.setenv("RNNVIZ_NO_DOWNLOAD", "1")
    svc = TrainingService(tmp_path / "runs", default_dataset="mnist", data_root=str(tmp_path / "mydata"))
    with pytest.raises(TrainingRefused) as refused:
        svc.start("me", "lstm", 16, 1, 1e-3, 32, 0.1, None)
    for text in (svc.dataset_problem(), str(refused.value)):
        assert "MNIST/" in text and "mydata/" in text and "--data-root" in text
        assert str(tmp_path) not in text and "download=True" not in text and "root=" not in text
        assert text.endswith(".") and ". " not in text and "\n" not in text  # one sentence
    monkeypatch.delenv("RNNVIZ_NO_DOWNLOAD")
    monkeypatch.delenv("RNNVIZ_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no data/ here
    svc = TrainingService(tmp_path / "runs", default_dataset="mnist")
    assert "into data/" in svc.dataset_problem() and "Start downloads it" in svc.dataset_problem()


# ---- a full disk, a killed server ----------------------------------------------------------------
def test_a_full_disk_under_the_runs_folder_is_a_short_message(tmp_path, monkeypatch):
    import rnnviz.checkpoint as ck

    runs = tmp_path / "deep" / "server" / "runs"

    def full_disk(path, *a, **k):  # what a full disk raises, with the file it was writing
        raise OSError(errno.ENOSPC, "No space left on device", str(Path(path).parent / f".{Path(path).name}.x.tmp"))

    monkeypatch.setattr(ck, "save_checkpoint", full_disk)
    svc = TrainingService(runs, default_dataset=str(FIXTURE), threads=1)
    try:
        svc.start("a", "rnn", 8, 1, 1e-3, 32, 0.05, None, "full")
        svc.run.trainer.join(120)
    finally:
        svc.shutdown(60)
    snap, _ = svc.snapshot("a")
    message = snap["message"]
    assert snap["state"] == "failed" and "disk is full" in message and "full.safetensors" in message, message
    assert str(tmp_path) not in message and "/" not in message.replace("runs/ (the runs folder)", ""), message
    assert len(message) < 200, message


# ---- a server killed while it writes a checkpoint ----------------------------------------------------------


KILLED_WRITER = """
import os, sys, time
from pathlib import Path
from rnnviz.app.training import TrainingService

real = os.replace
def stuck(src, dst, *a, **k):  # the checkpoint is in its temporary file: the kill lands here
    if str(src).endswith(".tmp"):
        print("WRITING", flush=True)
        time.sleep(600)
    return real(src, dst, *a, **k)
os.replace = stuck
svc = TrainingService(Path(sys.argv[1]), default_dataset=sys.argv[2], threads=1)
svc.start("a", "rnn", 8, 1, 1e-3, 32, 0.05, None, "killed")
svc.run.trainer.join(600)
"""


def test_a_checkpoint_write_killed_leaves_no_orphan_after_a_restart(tmp_path):
    from rnnviz.app.__main__ import make_explorer, parse_args

    runs = tmp_path / "runs" / "explorer"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(runs), str(FIXTURE)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 240
        line = ""
        while time.time() < deadline and "WRITING" not in line:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
        assert "WRITING" in line, proc.stderr.read()[-2000:]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    orphans = list(runs.glob(".killed.safetensors.*.tmp"))
    assert len(orphans) == 1 and orphans[0].stat().st_size > 0  # what the kill left
    r = subprocess.run([sys.executable, "-c", "import sys; from rnnviz.app.__main__ import make_explorer, parse_args; "
                        "make_explorer(parse_args(sys.argv[1:]))", "--checkpoint-dir", str(tmp_path / "none"),
                        "--runs-dir", str(runs)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not list(runs.glob("*.tmp")), "the orphan survived the restart"
    # and while a server runs, an orphan counts with the runs: the trim removes it
    orphan = runs / ".other.safetensors.abc.tmp"
    orphan.write_bytes(b"\0" * 1000)
    svc = make_explorer(parse_args(["--checkpoint-dir", str(tmp_path / "none"), "--runs-dir", str(runs)])).training
    assert not orphan.exists()
    orphan.write_bytes(b"\0" * 1000)
    svc.prune_runs()
    assert not orphan.exists()
