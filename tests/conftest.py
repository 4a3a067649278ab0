import os
from pathlib import Path

import pytest
import torch

from rnnviz import ModelConfig, RowModel, save_checkpoint

FIXTURE = Path(__file__).parent / "fixtures" / "mnist_small.npz"


@pytest.fixture(autouse=True, scope="session")
def _gradio_cache(tmp_path_factory):
    """Gradio's cache (uploads, exported files) in a fresh folder of this test run rather than the
    machine's shared /tmp/gradio (an apps' Blocks reads it when it is built, inside a test)."""
    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("GRADIO_TEMP_DIR"):
            mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        yield


@pytest.fixture(autouse=True, scope="session")
def _quiet_torch():
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def small_config():
    return ModelConfig(cell="lstm", hidden=32, layers=1, head_hidden=64)


@pytest.fixture
def tiny_checkpoint(tmp_path, small_config):
    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, RowModel(small_config).eval(), {"dataset": "mnist", "test_nll": 123.4})
    return path
