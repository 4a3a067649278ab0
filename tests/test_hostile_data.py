"""Hostile files and a hostile machine around training and export (issue 23): .npz datasets that
are not datasets, a full disk under the runs folder, a server killed while it writes a checkpoint,
and a huge model given to the static site's exporter. Each gets one clear sentence (in the command
line and in the Train tab), without the server's folders, and costs no memory.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from rnnviz import ModelConfig
from rnnviz.app.training import TrainingRefused, TrainingService
from rnnviz.checkpoint import expected_tensors

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "mnist_small.npz"
X, Y = np.zeros((8, 28, 28), np.uint8), np.arange(8) % 10


def _npz(folder: Path, case: str) -> tuple[Path, str]:
    """(a hostile dataset file, what its sentence must say)."""
    path = folder / f"{case}.npz"
    if case == "empty_test":
        np.savez(path, x_train=X, y_train=Y, x_test=X[:0], y_test=Y[:0])
        return path, "the test set is empty"
    if case == "empty_train":
        np.savez(path, x_train=X[:0], y_train=Y[:0], x_test=X, y_test=Y)
        return path, "the training set is empty"
    if case == "sizes_differ":
        np.savez(path, x_train=X, y_train=Y, x_test=np.zeros((8, 32, 32), np.uint8), y_test=Y)
        return path, "the test images are 32\u00d732 but the training images 28\u00d728"
    if case == "not_a_zip":
        path.write_text("x_train,y_train\n1,2\n")
        return path, "is not a .npz file"
    raise ValueError(case)


CASES = ["empty_test", "empty_train", "sizes_differ", "not_a_zip"]


@pytest.mark.parametrize("case", CASES)
def test_each_bad_dataset_is_one_sentence_on_the_command_line(tmp_path, case):
    path, says = _npz(tmp_path, case)
    r = subprocess.run([sys.executable, "-m", "rnnviz.train", "--dataset", str(path), "--hidden", "8",
                        "--minutes", "0.05", "--out", str(tmp_path / "out.safetensors")],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and says in lines[-1], r.stderr[-500:]
    assert "pickled" not in r.stderr and "diverged" not in r.stderr
    assert not (tmp_path / "out.safetensors").exists()


@pytest.mark.parametrize("case", CASES)
def test_each_bad_dataset_is_one_sentence_in_the_train_tab(tmp_path, case):
    path, says = _npz(tmp_path, case)
    svc = TrainingService(tmp_path / "runs", default_dataset=str(path), threads=1)
    notice = svc.dataset_problem()  # what the Train tab shows when it opens
    assert notice and says in notice and str(tmp_path) not in notice, notice
    with pytest.raises(TrainingRefused) as e:
        svc.start("a", "lstm", 16, 1, 1e-3, 32, 0.05, None)
    assert says in str(e.value) and str(tmp_path) not in str(e.value) and "\n" not in str(e.value)
    assert svc.run is None


def test_a_dataset_of_another_image_size_is_refused_by_the_train_tab(tmp_path):
    path = tmp_path / "big.npz"
    big = np.zeros((8, 32, 32), np.uint8)
    np.savez(path, x_train=big, y_train=Y, x_test=big, y_test=Y)
    svc = TrainingService(tmp_path / "runs", default_dataset=str(path), threads=1)
    with pytest.raises(TrainingRefused, match="its images are 32\u00d732; the explorer trains and shows 28\u00d728"):
        svc.start("a", "lstm", 16, 1, 1e-3, 32, 0.05, None)
    labels = tmp_path / "labels.npz"
    np.savez(labels, x_train=X, y_train=Y + 20, x_test=X, y_test=Y)
    svc = TrainingService(tmp_path / "runs", default_dataset=str(labels), threads=1)
    with pytest.raises(TrainingRefused, match="it has a label 27, but the model draws 10 classes"):
        svc.start("a", "lstm", 16, 1, 1e-3, 32, 0.05, None)


# ---- the runs folder's disk is full -------------------------------------------------------------------
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


# ---- the static site's exporter and a huge model ---------------------------------------------------------
def _sparse_model(path: Path, config: ModelConfig) -> Path:
    """A well-formed checkpoint of ``config`` whose tensor bytes are a hole (sparse: no disk, no time)."""
    header, offset = {"__metadata__": {"format": "rnnviz", "format_version": "1",
                                       "config": json.dumps(config.to_dict()), "metrics": "{}"}}, 0
    for name, shape in expected_tensors(config).items():
        n = 4 * int(np.prod(shape))
        header[f"model.{name}"] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return path


def test_the_site_exporter_refuses_a_huge_model_from_its_header(tmp_path):
    path = _sparse_model(tmp_path / "huge.safetensors", ModelConfig(hidden=2048, layers=3, head_hidden=2048))
    assert path.stat().st_size > 300 * 2**20
    code = ("import json, resource, sys\n"
            "from rnnviz.site import SiteError, export_model\n"
            "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
            "before = peak()\n"
            "try:\n"
            "    export_model(sys.argv[1]); message = None\n"
            "except SiteError as e:\n"
            "    message = str(e)\n"
            "print(json.dumps({'message': message, 'rise_mb': (peak() - before) / 2**20}))\n")
    r = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["message"] and "more than the page's 64 MB limit" in out["message"], out
    assert out["rise_mb"] < 100, out  # loading it would take its 339 MB at least
