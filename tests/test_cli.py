"""The command-line tools, run as a user would run them."""

import json
import subprocess
import sys

from PIL import Image

from rnnviz.checkpoint import read_metadata
from tests import FIXTURE, ROOT


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300, **kw)


def test_train_sample_evaluate(tmp_path):
    ckpt = tmp_path / "cli.safetensors"
    r = run("rnnviz.train", "--cell", "gru", "--hidden", "16", "--head-hidden", "32", "--layers", "2",
            "--dataset", str(FIXTURE), "--max-steps", "8", "--batch-size", "16", "--out", str(ckpt), "--threads", "1",
            "--weight-decay", "0.01", "--dropout", "0.1")
    assert r.returncode == 0, r.stderr
    assert "finished" in r.stdout and ckpt.exists()
    recorded = read_metadata(ckpt)["metrics"]["train_config"]
    assert (recorded["weight_decay"], recorded["dropout"]) == (0.01, 0.1)  # the flags reach the run

    grid = tmp_path / "grid.png"
    r = run("rnnviz.sample", "--checkpoint", str(ckpt), "--out", str(grid), "--n", "3", "--seed", "1")
    assert r.returncode == 0, r.stderr
    img = Image.open(grid)
    assert img.mode == "L" and img.height > img.width  # one row per digit, 3 samples each
    grid2 = tmp_path / "grid2.png"
    run("rnnviz.sample", "--checkpoint", str(ckpt), "--out", str(grid2), "--n", "3", "--seed", "1")
    assert grid.read_bytes() == grid2.read_bytes()  # same seed, same grid

    r = run("rnnviz.evaluate", "--checkpoint", str(ckpt), "--dataset", str(FIXTURE), "--seed", "5")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["images"] == 200 and out["binarization_seed"] == 5 and 0 < out["test_nll"] < 600


def test_clear_errors(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"")
    r = run("rnnviz.sample", "--checkpoint", str(bad), "--out", str(tmp_path / "x.png"))
    assert r.returncode != 0 and "empty" in r.stderr and "Traceback" not in r.stderr
    r = run("rnnviz.train", "--data-root", str(tmp_path / "nowhere"), "--out", str(tmp_path / "m.safetensors"),
            "--max-steps", "1", env={"PATH": "/usr/bin:/bin", "RNNVIZ_NO_DOWNLOAD": "1"})
    assert r.returncode != 0 and "RNNVIZ_DATA" in r.stderr and "Traceback" not in r.stderr
