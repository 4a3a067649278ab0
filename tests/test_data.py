import numpy as np
import pytest
import torch

from rnnviz.data import DataNotFoundError, batches, binarize_fixed, load_dataset
from tests.conftest import FIXTURE


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
