"""The analysis tabs and the downloads in a real headless Chromium (Debian's ``chromium`` driven by
playwright): open Gate saturation and see its plot, run Teacher forcing, and click GIF on the
Generate tab to get an animated GIF. Skipped when chromium is not installed.
"""

import pytest
from PIL import Image

from tests.browser import browser_page, loaded_id, served_explorer, wait_loaded


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with served_explorer(tmp_path_factory.mktemp("browser")) as got:
        yield got


@pytest.fixture(scope="module")
def page(app_url):
    with browser_page(app_url[0], accept_downloads=True) as pg:
        yield pg


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
    before = loaded_id(page, "gen")
    page.click("#generate")
    wait_loaded(page, "gen", before)
    with page.expect_download(timeout=30_000) as info:
        page.click("#gen_export_gif")
    download = info.value
    assert download.suggested_filename.endswith(".gif")
    with Image.open(download.path()) as im:
        assert im.format == "GIF" and im.n_frames == 29

