"""What the browser tests share: finding Debian's chromium, serving the app on tiny checkpoints, a
page that fails the test on any JavaScript error, and reading the step views the page draws (their
state through the test hook ``window.rnnviz``, their canvases' pixels, the API requests they send).

Importing this (every module of tests/browser/ does, as its package) skips the module when chromium
or the playwright package is missing, unless RNNVIZ_REQUIRE_BROWSER is set: then either missing is
an error (``tests.MissingTool``), never a skip (CI installs both: .ci/run).
"""

import functools
import http.server
import os
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tests import app as apps
from tests import tool_missing
from tests.app import TINY, serving

__all__ = ["ARGS", "CHROMIUM", "ApiRequests", "browser_page", "canvas_rgba", "canvas_urls", "chromium", "loaded_id",
           "screenshot_folder", "screenshots", "served_explorer", "serving", "sync_api", "tiny_checkpoints",
           "static_site", "view_state", "wait_loaded", "wait_step"]

CHROMIUM = os.environ.get("RNNVIZ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    tool_missing("RNNVIZ_REQUIRE_BROWSER", f"chromium is not installed ({CHROMIUM}); apt-get install -y chromium")
try:
    from playwright import sync_api
except ImportError as e:
    tool_missing("RNNVIZ_REQUIRE_BROWSER", f"the playwright package is not installed ({e}); "
                                           "pip install -r requirements-dev.txt")

ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def tiny_checkpoints(folder: Path, names=("mnist_lstm", "mnist_gru"), metrics: dict | None = None) -> Path:
    """Untrained tiny models under the shipped names."""
    return apps.tiny_checkpoints(folder, {name: TINY[name] for name in names}, metrics)


@contextmanager
def served_explorer(tmp: Path, names=("mnist_lstm", "mnist_gru"), metrics: dict | None = None, training=True):
    """The explorer on tiny checkpoints under ``tmp``, served on a free port: yields (url, explorer).
    ``training``: a one-thread service on the fixture dataset; False: training turned off."""
    from rnnviz.app.operations import Explorer
    from rnnviz.app.training import TrainingService
    from tests import FIXTURE

    runs = tmp / "runs"
    service = (TrainingService(runs, default_dataset=str(FIXTURE), threads=1, max_minutes=1.0) if training
               else TrainingService(runs, enabled=False, disabled_reason="off in this test"))
    ex = Explorer(tiny_checkpoints(tmp / "checkpoints", names, metrics), runs, training=service)
    try:
        with serving(ex) as url:
            yield url, ex
    finally:
        service.shutdown()


@contextmanager
def chromium():
    """Debian's Chromium, headless, closed afterwards (for tests that open several pages)."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@contextmanager
def static_site(folder: Path):
    """Serve ``folder`` (a site ``rnnviz.site`` wrote) on a free loopback port; yields its URL."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}/"
    finally:
        srv.shutdown()
        srv.server_close()


@contextmanager
def browser_page(url: str, **page_options):
    """A 1400 x 1000 page on ``url`` once the first digit is drawn in Generate's step view; JavaScript
    errors fail the test."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000}, **page_options)
        pg.set_default_timeout(30_000)
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(url)
        pg.wait_for_selector("#gen_view [data-loaded]")  # the first digit's trace is drawn
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


# ---- the step views (rnnviz/site/static/gradio.js mounts them; window.rnnviz is its test hook) ---------
def view_state(page, name: str = "gen") -> dict | None:
    """What the step view ``name`` shows (``window.rnnviz.state``): its step, layer, unit order, play
    state and trace (a single view), or the shared step and every column (a group)."""
    return page.evaluate("(n) => window.rnnviz.state(n)", name)


def loaded_id(page, name: str = "gen") -> str | None:
    """The id of the payload the step view ``name`` drew last (None before its first)."""
    return page.evaluate("(n) => document.querySelector(`#${n}_view [data-loaded]`)?.dataset.loaded ?? null", name)


def wait_loaded(page, name: str, before: str | None = None, timeout: float = 60_000) -> str:
    """Wait until the step view ``name`` has drawn a payload other than ``before``; its id."""
    page.wait_for_function("([n, b]) => { const e = document.querySelector(`#${n}_view [data-loaded]`);"
                           " return !!e && e.dataset.loaded !== b; }", arg=[name, before], timeout=timeout)
    return loaded_id(page, name)


def wait_step(page, name: str, step: int):
    """Wait until the step view ``name`` is at ``step``."""
    page.wait_for_function("([n, t]) => window.rnnviz && window.rnnviz.step(n) === t", arg=[name, step])


def canvas_urls(page, selector: str) -> list[str]:
    """``toDataURL()`` of every canvas matching ``selector``: what each shows, comparable as text."""
    return page.eval_on_selector_all(selector, "els => els.map(c => c.toDataURL())")


def canvas_rgba(page, selector: str) -> np.ndarray:
    """The first canvas matching ``selector`` as a (height, width, 4) uint8 array of its own pixels."""
    w, h, data = page.eval_on_selector(selector, """c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        return [c.width, c.height, Array.from(d)]; }""")
    return np.asarray(data, np.uint8).reshape(h, w, 4)


class ApiRequests:
    """Every request the page sends to the app's API (``/gradio_api/``), files (``file=``: the view
    modules, images) aside: a step view that scrubs, plays or switches layers sends none. Each is
    recorded as its URL and the start of what it posted (a queued job names its ``fn_index``)."""

    def __init__(self, page):
        self.page, self.urls = page, []
        page.on("request", self._seen)

    def _seen(self, r):
        if "/gradio_api/" in r.url and "file=" not in r.url:
            self.urls.append(f"{r.url} {(r.post_data or '')[:120]}".strip())

    def settle(self, quiet_ms: int = 1000, timeout_s: float = 30) -> list[str]:
        """Wait until the page has sent nothing for ``quiet_ms`` (the listeners a click set off are
        done), then ``take``."""
        deadline = time.monotonic() + timeout_s
        while True:
            n = len(self.urls)
            self.page.wait_for_timeout(quiet_ms)
            if len(self.urls) == n or time.monotonic() > deadline:
                return self.take()

    def take(self) -> list[str]:
        out, self.urls = self.urls, []
        return out
