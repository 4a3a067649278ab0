"""The lab tabs end to end in a real headless Chromium (Debian's ``chromium`` driven by playwright).

Compare cells: run it, drag the one slider and check that all three canvases (and their state grids
and the NLL chart's cursor) follow. Intervene: ink a row and check the difference view shows the
changed pixels and the change per step. Reconstruct: redraw a gallery digit with a (tiny) VAE.
Screenshots go to a temporary folder (printed; set RNNVIZ_SCREENSHOTS to choose it). Skipped when
chromium is not installed (a failure when RNNVIZ_REQUIRE_BROWSER is set), as tests/test_browser.py.
"""

import pytest

from rnnviz.app.tabs.intervene import DIFF_ADDED
from tests.browser import browser_page, screenshots, served_explorer


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    names = ("mnist_lstm", "mnist_gru", "mnist_rnn", "mnist_vae")
    with served_explorer(tmp_path_factory.mktemp("browser_lab"), names, {"test_nll": 99.5}, training=False) as got:
        yield got


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    yield from screenshots(tmp_path_factory)


@pytest.fixture(scope="module")
def page(app_url):
    with browser_page(app_url[0]) as pg:
        yield pg


def wait_steps(page, elems, step):
    """Every ``[data-step]`` inside each of ``elems`` shows ``step``."""
    cond = " && ".join(
        f"(() => {{ const s = [...document.querySelectorAll('#{e} [data-step]')]; "
        f"return s.length > 0 && s.every(x => x.dataset.step === '{step}'); }})()" for e in elems)
    page.wait_for_function(f"() => {cond}")


def drag(page, slider_elem: str, fracs=(0.2, 0.4, 0.6)) -> int:
    """Drag a slider's thumb with the mouse; returns where it ended."""
    slider = page.locator(f"#{slider_elem} input[type=range]")
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 4, y)
    page.mouse.down()
    for frac in fracs:
        page.mouse.move(box["x"] + box["width"] * frac, y, steps=4)
    page.mouse.up()
    return int(slider.input_value())


def cursor_at(page, fig: str):
    return page.evaluate(f"""() => {{
        const gd = document.querySelector('#{fig} .js-plotly-plot');
        const s = gd && gd.layout && gd.layout.shapes && gd.layout.shapes.find(s => s.name === 'cursor');
        return s ? s.x0 : null; }}""")


def test_compare_one_slider_drives_three_models(page, shots):
    page.get_by_role("tab", name="Compare cells").click()
    page.click("#compare_btn")
    cols = [f"compare_col{k}" for k in range(3)]
    page.wait_for_function("() => document.querySelector('#compare_note').innerText.includes('3 models')")
    wait_steps(page, cols, 0)
    page.wait_for_selector("#compare_fig .js-plotly-plot")
    canvases = lambda: [page.get_attribute(f"#{c} .rv-canvas img", "src") for c in cols]  # noqa: E731
    grids = lambda: [page.eval_on_selector_all(f"#{c} .rv-gate img", "els => els.map(e => e.src)")  # noqa: E731
                     for c in cols]
    titles = [page.inner_text(f"#{c} .rv-col-title") for c in cols]
    assert [t.split()[0] for t in titles] == ["mnist_lstm", "mnist_gru", "mnist_rnn"]
    assert all("test NLL 99.50" in t for t in titles)
    before, grids0 = canvases(), grids()
    assert [len(g) for g in grids0] == [3, 2, 1]

    target = drag(page, "compare_step")
    assert target > 8
    wait_steps(page, cols, target)
    page.wait_for_function(f"""() => {{
        const gd = document.querySelector('#compare_fig .js-plotly-plot');
        return gd.layout.shapes.find(s => s.name === 'cursor').x0 == {target}; }}""")
    after, grids1 = canvases(), grids()
    assert all(a != b for a, b in zip(before, after)), "every canvas follows the one slider"
    assert all(g0 != g1 for g0, g1 in zip(grids0, grids1)), "every model's state grids follow it"
    assert cursor_at(page, "compare_fig") == target
    page.screenshot(path=str(shots / "compare.png"), full_page=True)


def test_intervene_ink_a_row_and_see_the_difference(page, shots):
    page.get_by_role("tab", name="Intervene").click()
    page.click("#intervene_kind input")
    page.click("ul[role=listbox] li:has-text('ink row(s)')")
    page.wait_for_function("() => document.querySelector('#intervene_help').innerText.includes('replaced')")
    for elem, value in (("intervene_first", "8"), ("intervene_last", "8")):
        box = page.locator(f"#{elem} input[type=number]")
        box.fill(value)
        box.press("Enter")
    page.click("#intervene_btn")
    page.wait_for_function("() => document.querySelector('#intervene_summary').innerText.includes('ink row at step 8')")
    wait_steps(page, ["intervene_col0", "intervene_col1", "intervene_diff"], 0)
    page.wait_for_selector("#intervene_fig .js-plotly-plot")
    assert "first changed row 8" in page.inner_text("#intervene_diff")
    # the difference image has red pixels (ink only with the intervention), all in rows 8 and below
    red_rows = page.evaluate(f"""async () => {{
        const img = document.querySelector('#intervene_diff .rv-canvas img');
        await img.decode();
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        const d = ctx.getImageData(0, 0, c.width, c.height).data, rows = [];
        for (let k = 0; k < d.length; k += 4)
            if (d[k] === {DIFF_ADDED[0]} && d[k + 1] === {DIFF_ADDED[1]} && d[k + 2] === {DIFF_ADDED[2]})
                rows.push(Math.floor(k / 4 / c.width));
        return rows; }}""")
    assert red_rows and min(red_rows) == 8
    # the change per step: zero before the edited row, not after it
    dh = page.evaluate("""() => document.querySelector('#intervene_fig .js-plotly-plot').data
                          .find(t => t.name.startsWith('mean |Δh|')).y""")
    dh = list(dh.values()) if isinstance(dh, dict) else dh
    assert max(dh[:9]) == 0 and max(dh[9:]) > 0  # step 9 is the first to read the edited row 8
    target = drag(page, "intervene_step", (0.3, 0.5))
    wait_steps(page, ["intervene_col0", "intervene_col1", "intervene_diff"], target)
    assert cursor_at(page, "intervene_fig") == target
    page.screenshot(path=str(shots / "intervene.png"), full_page=True)


def test_reconstruct_a_gallery_digit(page, shots):
    page.get_by_role("tab", name="Reconstruct").click()
    page.locator("#rec_gallery .thumbnail-item").nth(5).click()
    page.wait_for_selector("#rec_source img")
    page.click("#reconstruct_btn")
    page.wait_for_function("() => document.querySelector('#rec_summary').innerText.includes('test digit #5')")
    wait_steps(page, ["rec_canvas", "rec_gates"], 0)
    page.wait_for_selector("#rec_fig .js-plotly-plot")
    first = page.get_attribute("#rec_canvas .rv-canvas img", "src")
    page.locator("#rec_step input[type=range]").fill("20")
    wait_steps(page, ["rec_canvas", "rec_gates"], 20)
    assert page.get_attribute("#rec_canvas .rv-canvas img", "src") != first
    page.click("#prior_btn")
    page.wait_for_function("() => document.querySelector('#rec_summary').innerText.includes('prior')")
    page.screenshot(path=str(shots / "reconstruct.png"), full_page=True)
