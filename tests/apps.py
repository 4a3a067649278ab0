"""What the app tests share: tiny untrained checkpoints and the explorer served in this process.
(Gradio's cache folder is a fresh one per test run: the ``_gradio_cache`` fixture in conftest.py.)
"""

import json
from contextlib import contextmanager
from pathlib import Path

import httpx
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


# ---- the API over plain HTTP, as a script (or the page) calls it --------------------------------------
def post_call(url: str, name: str, body: str, query: str = "", timeout: float = 60) -> httpx.Response:
    """``POST /gradio_api/call/<name><query>`` with a raw JSON ``body`` (NaN and Infinity included)."""
    return httpx.post(f"{url}gradio_api/call/{name.strip('/')}{query}", content=body.encode(),
                      headers={"content-type": "application/json"}, timeout=timeout)


def call_result(url: str, name: str, event_id: str, timeout: float = 60) -> tuple[str | None, object, str]:
    """(last event kind, its data, the whole stream) of a call's answer. An unhandled exception is
    ``("error", {"error": None})``; a ``gr.Error`` carries its message. Data that is not JSON is
    returned as text."""
    text = httpx.get(f"{url}gradio_api/call/{name.strip('/')}/{event_id}", timeout=timeout).text
    kind = data = None
    for line in text.splitlines():
        if line.startswith("event: "):
            kind = line[7:].strip()
        elif line.startswith("data: ") and kind in ("complete", "error"):
            try:
                data = json.loads(line[6:])
            except ValueError:
                data = line[6:]
    return kind, data, text


def unhandled(log: str) -> list[str]:
    """The exceptions in a server log that are not a ``gr.Error`` (a message for the visitor)."""
    found = []
    for chunk in log.split("Traceback (most recent call last):")[1:]:
        last = next((line for line in reversed(chunk.strip().splitlines()) if line and not line[0].isspace()), "")
        if not last.startswith("gradio.exceptions.Error"):
            found.append(last)
    return found
