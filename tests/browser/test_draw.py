"""Drawing a digit in a real headless Chromium, as a visitor does: on a freshly loaded page, open the
sketchpad and draw with the mouse alone, never touching its tool bar (Gradio 6's sketchpad starts on
its image tool; ``components.BRUSH_JS`` picks the Brush), then Complete it, or Reconstruct it with a
VAE. Skipped without chromium, as tests/browser/test_explorer.py.
"""

import pytest

from tests.browser import browser_page, served_explorer


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with served_explorer(tmp_path_factory.mktemp("draw"), ("mnist_lstm", "mnist_vae"), training=False) as (url, _):
        yield url


def open_draw_tab(page, tab: str, sketch: str):
    page.get_by_role("tab", name=tab).click()
    page.locator("button[role=tab]:visible", has_text="Draw").click()
    page.wait_for_selector(f"#{sketch} canvas")
    # the Brush is chosen by itself: no "select the draw tool to start"
    page.wait_for_function(f"() => !document.querySelector('#{sketch} .empty.wrap')")


def draw_a_one(page, sketch: str):
    """A vertical stroke through the middle of the canvas, with mouse events only."""
    box = page.locator(f"#{sketch} .pixi-target canvas").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y - 90)
    page.mouse.down()
    for k in range(1, 19):
        page.mouse.move(x + (k % 3), y - 90 + 10 * k, steps=2)
    page.mouse.up()


def src(page, elem: str) -> str:
    return page.evaluate(f"() => document.querySelector('#{elem} img')?.src || ''")


def test_draw_on_a_fresh_page_and_complete_it(app_url):
    with browser_page(app_url) as page:
        open_draw_tab(page, "Complete", "sketch")
        before = src(page, "preview")
        draw_a_one(page, "sketch")
        # the drawing has reached the server once the preview shows it (a press within a few hundred
        # ms of the last stroke can still send Gradio's previous, empty value)
        page.wait_for_function(f"() => (document.querySelector('#preview img')?.src || '') !== {before!r}")
        page.click("#complete_btn")
        page.wait_for_function("() => document.querySelectorAll('#completions .thumbnail-item').length === 6")
        note = page.inner_text("#complete_note")
        assert "6 completions" in note and "empty" not in note
        assert page.locator("[data-testid=toast-body].error").count() == 0
        # Clear puts Gradio's sketchpad back on its image tool: the Brush is picked again
        page.click("#sketch button[aria-label='Clear canvas']")
        page.wait_for_timeout(300)
        page.wait_for_function("() => !document.querySelector('#sketch .empty.wrap')")


def test_draw_on_a_fresh_page_and_reconstruct_it(app_url):
    with browser_page(app_url) as page:
        open_draw_tab(page, "Reconstruct (VAE)", "rec_sketch")
        draw_a_one(page, "rec_sketch")
        page.wait_for_timeout(1500)  # the drawing reaches the server (see above)
        page.click("#reconstruct_btn")
        page.wait_for_function("() => document.querySelector('#rec_summary').innerText.includes('your drawing')")
        assert "mnist_vae" in page.inner_text("#rec_summary")
        assert page.locator("[data-testid=toast-body].error").count() == 0
