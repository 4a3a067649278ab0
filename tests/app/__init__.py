"""What the app tests (and the browser tests) share: tiny untrained checkpoints, the explorer served
in this process on a free port, an app with a gradio_client and checks for its answers, and the API
called over plain HTTP as a script (or the page) calls it. The fixtures built on these (``served``,
``app``) are in tests/app/conftest.py; Gradio's cache folder is a fresh one per test run (the
``_gradio_cache`` fixture in tests/conftest.py).
"""

import json
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import httpx
import torch

from rnnviz import ModelConfig, RowModel, save_checkpoint
from tests import FIXTURE, free_port

__all__ = ["App", "GENERIC", "SMALL", "Served", "TINY", "call_result", "launched", "make_checkpoints",
           "plot_json", "post_call", "serving", "tiny_checkpoints", "unhandled"]

GENERIC = "has raised an exception"  # what gradio_client says when a handler crashed
SMALL = ModelConfig(hidden=16, head_hidden=32)

# the tiny models the app and browser tests serve under the shipped names (untrained, seed 0)
TINY = {"mnist_lstm": ModelConfig(hidden=32, head_hidden=64),
        "mnist_gru": ModelConfig(cell="gru", hidden=32, head_hidden=64),
        "mnist_rnn": ModelConfig(cell="rnn", hidden=32, head_hidden=64),
        "mnist_vae": ModelConfig(hidden=32, head_hidden=64, num_classes=0, latent=8),
        "deep_gru": ModelConfig(cell="gru", hidden=16, layers=2, head_hidden=32)}


def make_checkpoints(folder: Path, specs: dict, metrics: dict | None = None) -> Path:
    """One file per ``name: spec`` in ``folder``: a ``ModelConfig`` is that model initialized from seed
    0 (with ``metrics``), a ``(ModelConfig, metrics)`` pair the same with its own metrics, ``bytes``
    a file of those bytes (a broken checkpoint)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, spec in specs.items():
        path = folder / f"{name}.safetensors"
        if isinstance(spec, bytes):
            path.write_bytes(spec)
            continue
        cfg, own = spec if isinstance(spec, tuple) else (spec, metrics)
        torch.manual_seed(0)
        save_checkpoint(path, RowModel(cfg), dict(own or {}))
    return folder


def tiny_checkpoints(folder: Path, specs: dict[str, ModelConfig], metrics: dict | None = None) -> Path:
    """One checkpoint per ``name: config`` in ``folder``, each model initialized from seed 0."""
    return make_checkpoints(folder, specs, metrics)


@contextmanager
def launched(ex):
    """(url, Blocks) of the explorer of ``ex`` on a free loopback port (no two servers of a run, in
    any pytest-xdist worker, share one); closed afterwards."""
    from rnnviz.app.ui import build_app, launch_options

    demo = build_app(ex)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", server_port=free_port(),
                            **launch_options())
    try:
        yield url, demo
    finally:
        demo.close()


@contextmanager
def serving(ex):
    """The explorer of ``ex`` on a free loopback port; yields its URL and closes it afterwards."""
    with launched(ex) as (url, _):
        yield url


class Served:
    """An explorer served in this process (the ``served`` fixture): ``ex``, ``url``, ``demo`` (its
    Blocks), ``checkpoints`` (its folder), ``tmp`` (the module's folder) and, made on first use, a
    gradio_client ``client``."""

    def __init__(self, ex, url: str, demo, checkpoints: Path, tmp: Path):
        self.ex, self.url, self.demo, self.checkpoints, self.tmp = ex, url, demo, checkpoints, tmp

    @cached_property
    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False)


def plot_json(value) -> dict:
    """A gr.Plot's figure (sent as it is, or in an update that also shows the plot)."""
    if isinstance(value, dict) and value.get("__type__") == "update":
        assert value.get("visible") is True
        value = value["value"]
    return json.loads(value["plot"])


class App:
    """An explorer launched in this process, with a gradio_client connected to it, on two tiny
    checkpoints (``shipped/mnist_lstm``, ``shipped/deep_rnn``), with an uploads folder and a Train tab
    on the fixture dataset that allows a learning rate of up to 10 (so that a run can diverge)."""

    def __init__(self, tmp: Path, training=None, **explorer_kw):
        from gradio_client import Client

        from rnnviz.app.operations import Explorer
        from rnnviz.app.training import TrainingService

        self.tmp = tmp
        # the page allows lr <= 0.05; this app takes up to 10 and skips the warm-up, so that a run can diverge
        self.training = training or TrainingService(tmp / "runs", default_dataset=str(FIXTURE), threads=1,
                                                    max_minutes=1.0, limits={"lr": (1e-5, 10.0)},
                                                    train_options={"warmup_steps": 1})
        self.ex = Explorer(self.make_checkpoints(tmp / "checkpoints"), tmp / "runs", training=self.training,
                           uploads_dir=tmp / "uploads", **explorer_kw)
        self._launched = launched(self.ex)
        self.url, self.demo = self._launched.__enter__()
        self.client = Client(self.url, verbose=False)

    @staticmethod
    def make_checkpoints(folder: Path) -> Path:
        return make_checkpoints(folder, {
            "mnist_lstm": (ModelConfig(hidden=32, head_hidden=64), {"test_nll": 543.2, "dataset": "test"}),
            "deep_rnn": (ModelConfig(cell="rnn", hidden=16, layers=2, head_hidden=32), {})})

    def close(self):
        self.client.close()
        self.training.shutdown(60)
        self._launched.__exit__(None, None, None)

    def call(self, api: str, *args):
        """("ok", output) or ("error", message); a crash (generic message) fails the test."""
        from gradio_client.exceptions import AppError

        try:
            return "ok", self.client.predict(*args, api_name=api)
        except AppError as e:
            assert GENERIC not in str(e), f"{api}{args!r:.200}: the handler crashed"
            return "error", str(e)
        except httpx.HTTPStatusError as e:  # refused by guard.RequestGuard before Gradio read it
            assert e.response.status_code in (400, 413, 503), e
            return "error", e.response.json()["error"]

    def raw(self, api: str, body: str, refused_by_gradio: bool = False) -> tuple[str, object]:
        """Call ``api`` with a raw JSON body (NaN and Infinity included), as a script could.
        ``refused_by_gradio``: Gradio itself rejects the request before any handler (no message)."""
        r = post_call(self.url, api, body)
        if r.status_code in (400, 413, 503):  # refused by guard.RequestGuard before Gradio read it
            return "error", r.json()["error"]
        r.raise_for_status()
        kind, data, events = call_result(self.url, api, r.json()["event_id"], timeout=120)
        assert kind in ("complete", "error"), events[:300]
        if kind == "complete":
            return "ok", data
        message = data.get("error") if isinstance(data, dict) else data
        assert message or refused_by_gradio, f"{api} {body}: the handler crashed"
        return "error", message

    def post(self, api: str, data: list, **extra) -> httpx.Response:
        """``POST /gradio_api/call/<api>`` with ``{"data": data, **extra}`` as JSON (the answer as it is)."""
        return httpx.post(f"{self.url}gradio_api/call/{api}", json={"data": data, **extra}, timeout=60)

    def fn_index(self, api: str) -> int:
        return next(i for i, fn in self.demo.fns.items() if fn.api_name == api)

    def uploaded(self) -> list[str]:
        """The names of the files in the explorer's uploads folder."""
        folder = self.ex.uploads.folder
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []

    def generate_works(self):
        status, out = self.call("/generate", "shipped/mnist_lstm", "7", 1.0, 3)
        assert status == "ok" and "digit **7**" in out[0], out


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
