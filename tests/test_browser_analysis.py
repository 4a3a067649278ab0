"""The analysis tabs and the downloads in a real headless Chromium (Debian's ``chromium`` driven by
playwright): open Gate saturation and see its plot, run Teacher forcing, and click GIF on the
Generate tab to get an animated GIF. Skipped when chromium is not installed.
"""

import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="rnnviz-gradio-"))

import pytest  # noqa: E402

CHROMIUM = os.environ.get("RNNVIZ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    if os.environ.get("RNNVIZ_REQUIRE_BROWSER"):  # CI installs chromium: a missing one is a failure
        raise RuntimeError(f"RNNVIZ_REQUIRE_BROWSER is set but chromium is not at {CHROMIUM}")
    pytest.skip(f"chromium is not installed ({CHROMIUM}); apt-get install -y chromium", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from rnnviz import ModelConfig, RowModel, save_checkpoint  # noqa: E402
from rnnviz.app.state import Explorer, TrainingService  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "mnist_small.npz"

ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]


def make_checkpoints(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_checkpoint(folder / "mnist_lstm.safetensors", RowModel(ModelConfig(hidden=32, head_hidden=64)), {})
    save_checkpoint(folder / "mnist_gru.safetensors", RowModel(ModelConfig(cell="gru", hidden=32, head_hidden=64)), {})
    return folder


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    from rnnviz.app.ui import build_app, launch_options

    tmp = tmp_path_factory.mktemp("browser")
    training = TrainingService(tmp / "runs", default_dataset=str(FIXTURE), threads=1, max_minutes=1.0)
    ex = Explorer(make_checkpoints(tmp / "checkpoints"), tmp / "runs", training=training)
    demo = build_app(ex)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", **launch_options())
    yield url, ex
    training.shutdown()
    demo.close()


@pytest.fixture(scope="module")
def page(app_url):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        pg.set_default_timeout(30_000)
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(app_url[0])
        pg.wait_for_selector("#gen_canvas img")
        yield pg
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


def test_saturation_tab_shows_the_plot(page):
    page.get_by_role("tab", name="Gate saturation").click()
    page.wait_for_selector("#saturation_fig .js-plotly-plot")
    page.wait_for_function("() => document.querySelector('#saturation_note').innerText.includes('200 digits')")
    points = page.eval_on_selector("#saturation_fig .js-plotly-plot",
                                   "gd => gd.data.map(t => [t.name, t.x.length])")
    assert points == [["i", 32], ["f", 32], ["o", 32]]
    # the page's model changes: the tab follows it
    page.click("#checkpoint input")
    page.locator("ul[role=listbox] li", has_text="mnist_gru").click()
    page.wait_for_function("() => document.querySelector('#saturation_note').innerText.includes('mnist_gru')")
    page.wait_for_function("() => document.querySelector('#saturation_fig .js-plotly-plot').data.length === 2")


def test_forcing_tab_runs_a_digit(page):
    page.get_by_role("tab", name="Teacher forcing").click()
    page.locator("#forcing_gallery .thumbnail-item").nth(5).click()  # picking a digit runs it
    page.wait_for_function("() => document.querySelector('#forcing_note').innerText.includes('test digit #5')")
    page.wait_for_selector("#forcing_fig .js-plotly-plot")
    assert "NLL teacher forced" in page.inner_text("#forcing_note")


def test_gif_download(page):
    page.get_by_role("tab", name="Generate & step").click()
    page.click("#generate")
    page.wait_for_selector("#gen_canvas img")
    with page.expect_download(timeout=30_000) as info:
        page.click("#gen_export_gif")
    download = info.value
    assert download.suggested_filename.endswith(".gif")
    with Image.open(download.path()) as im:
        assert im.format == "GIF" and im.n_frames == 29
