"""What the app tests share: tiny untrained checkpoints and the explorer served in this process.
(Gradio's cache folder is a fresh one per test run: the ``_gradio_cache`` fixture in conftest.py.)
"""

from contextlib import contextmanager
from pathlib import Path

import torch

from rnnviz import ModelConfig, RowModel, save_checkpoint


def tiny_checkpoints(folder: Path, specs: dict[str, ModelConfig], metrics: dict | None = None) -> Path:
    """One checkpoint per ``name: config`` in ``folder``, each model initialized from seed 0."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, cfg in specs.items():
        torch.manual_seed(0)
        save_checkpoint(folder / f"{name}.safetensors", RowModel(cfg), dict(metrics or {}))
    return folder


@contextmanager
def served(ex):
    """The explorer of ``ex`` on a free loopback port; yields its URL and closes it afterwards."""
    from rnnviz.app.ui import build_app, launch_options

    demo = build_app(ex)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", **launch_options())
    try:
        yield url
    finally:
        demo.close()
