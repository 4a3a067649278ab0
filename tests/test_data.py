"""Datasets (rnnviz.data): the fixture, batches, binarization, and hostile .npz files (empty sets,
sizes that differ, not a zip): one sentence each on the command line and in the Train tab."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnviz.app.training import TrainingRefused, TrainingService
from rnnviz.data import DataNotFoundError, batches, binarize_fixed, load_dataset
from tests import FIXTURE, ROOT


def test_fixture_loads():
    ds = load_dataset(str(FIXTURE))
    assert ds.train.images.dtype == torch.uint8 and ds.train.images.shape[1:] == (28, 28)
    assert len(ds.train) == 400 and len(ds.test) == 200
    assert ds.train.labels.max() <= 9


def test_missing_data_names_root_and_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("RNNVIZ_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(DataNotFoundError) as e:
        load_dataset("mnist", download=False)
    assert "RNNVIZ_DATA" in str(e.value) and "nowhere" in str(e.value)


def test_binarization():
    images = torch.from_numpy(np.load(FIXTURE)["x_test"][:50])
    a, b = binarize_fixed(images, 3), binarize_fixed(images, 3)
    assert torch.equal(a, b) and not torch.equal(a, binarize_fixed(images, 4))
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert abs(a.mean().item() - images.float().mean().item() / 255) < 0.01
    ds = load_dataset(str(FIXTURE))
    it = batches(ds.train, 32, torch.Generator().manual_seed(0))
    x1, y1 = next(it)
    assert x1.shape == (32, 28, 28) and y1.shape == (32,)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar")


# ---- hostile dataset files -----------------------------------------------------------------------
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
