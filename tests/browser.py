"""What the browser tests share: finding Debian's chromium, serving the app on tiny checkpoints, and
a page that fails the test on any JavaScript error.

Importing this skips the importing test module when chromium or playwright is missing, unless
RNNVIZ_REQUIRE_BROWSER is set (CI installs chromium, so there a missing one is a failure).
"""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from rnnviz import ModelConfig
from tests import apps
from tests.apps import served

__all__ = ["ARGS", "CHROMIUM", "browser_page", "screenshot_folder", "screenshots", "served", "served_explorer",
           "sync_api", "tiny_checkpoints"]

CHROMIUM = os.environ.get("RNNVIZ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    if os.environ.get("RNNVIZ_REQUIRE_BROWSER"):
        raise RuntimeError(f"RNNVIZ_REQUIRE_BROWSER is set but chromium is not at {CHROMIUM}")
    pytest.skip(f"chromium is not installed ({CHROMIUM}); apt-get install -y chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

TINY = {"mnist_lstm": ModelConfig(hidden=32, head_hidden=64),
        "mnist_gru": ModelConfig(cell="gru", hidden=32, head_hidden=64),
        "mnist_rnn": ModelConfig(cell="rnn", hidden=32, head_hidden=64),
        "mnist_vae": ModelConfig(hidden=32, head_hidden=64, num_classes=0, latent=8)}


def tiny_checkpoints(folder: Path, names=("mnist_lstm", "mnist_gru"), metrics: dict | None = None) -> Path:
    """Untrained tiny models under the shipped names."""
    return apps.tiny_checkpoints(folder, {name: TINY[name] for name in names}, metrics)


@contextmanager
def served_explorer(tmp: Path, names=("mnist_lstm", "mnist_gru"), metrics: dict | None = None, training=True):
    """The explorer on tiny checkpoints under ``tmp``, served on a free port: yields (url, explorer).
    ``training``: a one-thread service on the fixture dataset; False: training turned off."""
    from rnnviz.app.state import Explorer
    from rnnviz.app.training import TrainingService
    from tests.conftest import FIXTURE

    runs = tmp / "runs"
    service = (TrainingService(runs, default_dataset=str(FIXTURE), threads=1, max_minutes=1.0) if training
               else TrainingService(runs, enabled=False, disabled_reason="off in this test"))
    ex = Explorer(tiny_checkpoints(tmp / "checkpoints", names, metrics), runs, training=service)
    try:
        with served(ex) as url:
            yield url, ex
    finally:
        service.shutdown()


@contextmanager
def browser_page(url: str, **page_options):
    """A 1400 x 1000 page on ``url`` once the first digit is drawn; JavaScript errors fail the test."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000}, **page_options)
        pg.set_default_timeout(30_000)
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(url)
        pg.wait_for_selector("#gen_canvas img")
        yield pg
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def screenshot_folder(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("RNNVIZ_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def screenshots(tmp_path_factory):
    """A module fixture's body (``yield from screenshots(tmp_path_factory)``): the screenshot folder,
    named at the end."""
    folder = screenshot_folder(tmp_path_factory)
    yield folder
    print(f"\nscreenshots: {folder}")
