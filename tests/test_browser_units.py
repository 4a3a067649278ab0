"""The unit views in a real headless Chromium: clicking a unit in Generate's units x time figure or
in one of its grids opens it in the Units tab's inspector, and Compare's memory reach draws one
curve per cell. Skipped when chromium is not installed (unless RNNVIZ_REQUIRE_BROWSER is set)."""

import re

import pytest

from tests.browser import browser_page, served_explorer, sync_api

NAMES = ("mnist_lstm", "mnist_gru", "mnist_rnn")


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    with served_explorer(tmp_path_factory.mktemp("browser_units"), names=NAMES) as (url, _):
        with browser_page(url) as pg:
            yield pg


def inspected_unit(page, unit: int) -> int:
    """Wait for the inspector to show ``unit`` (up to 30 s); the unit it shows."""
    try:
        page.wait_for_function(f"() => document.querySelector('#units_note').innerText.includes('unit {unit} of layer')")
    except sync_api.TimeoutError:
        pass
    page.wait_for_selector("#units_lines .js-plotly-plot")
    note = page.inner_text("#units_note")
    return int(re.search(r"unit (\d+) of layer", note).group(1))


def back_to_generate(page):
    page.get_by_role("tab", name="Generate & step").click()
    page.wait_for_selector("#gen_fig .js-plotly-plot")


def test_clicking_a_unit_in_the_figure_opens_the_inspector(page):
    back_to_generate(page)
    assert "behaviour order" in page.inner_text("#gen_gates")
    panel = page.locator("#gen_fig .js-plotly-plot .nsewdrag").nth(1)
    panel.scroll_into_view_if_needed()
    box = panel.bounding_box()
    x, y = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.37
    page.mouse.move(x, y)
    page.wait_for_function("() => /unit \\d+/.test(document.querySelector('#gen_fig .hoverlayer').textContent)")
    text = page.eval_on_selector("#gen_fig .hoverlayer", "e => e.textContent")
    hovered = int(re.search(r"unit (\d+)", text).group(1))
    page.mouse.click(x, y)
    assert inspected_unit(page, hovered) == hovered
    assert page.input_value("#units_unit input") == str(hovered)
    lines = page.eval_on_selector("#units_lines .js-plotly-plot", "gd => gd.data.length")
    assert lines >= 4  # several digit classes in each of h, i, f, o
    assert page.locator("#units_examples img").count() == 16  # 8 most and 8 least active digits


def test_clicking_a_grid_cell_opens_that_unit(page):
    back_to_generate(page)
    img = page.locator("#gen_gates .rv-gate img").first
    order = page.get_attribute("#gen_gates .rv-gates-wrap", "data-order").split()
    cols = int(page.get_attribute("#gen_gates .rv-gates-wrap", "data-cols"))
    box = img.bounding_box()
    rows = round(cols * box["height"] / box["width"])
    # the cell in grid row 1, column 2 (from 0) shows unit order[1 * cols + 2]
    img.click(position={"x": box["width"] * 2.5 / cols, "y": box["height"] * 1.5 / rows})
    assert inspected_unit(page, int(order[cols + 2])) == int(order[cols + 2])


def test_typing_a_unit_and_the_order_switch(page):
    page.get_by_role("tab", name="Units").click()
    box = page.locator("#units_unit input")
    box.fill("3")
    page.click("#units_btn")
    page.wait_for_function("() => document.querySelector('#units_note').innerText.includes('unit 3 of layer')")
    back_to_generate(page)
    page.locator("#gen_order label", has_text="index order").click()
    page.wait_for_function("() => document.querySelector('#gen_gates').innerText.includes('unit 0 top left')")
    ticks = page.eval_on_selector("#gen_fig .js-plotly-plot", "gd => gd.data[1].y === undefined")
    assert ticks  # index order: rows are units 0.. (no category labels)


def test_compare_memory_reach_shows_three_curves(page):
    page.get_by_role("tab", name="Compare cells").click()
    page.click("#compare_reach_btn")
    page.wait_for_function("() => { const gd = document.querySelector('#compare_reach_fig .js-plotly-plot');"
                           " return gd && gd.data && gd.data.length === 3; }", timeout=60_000)
    names = page.eval_on_selector("#compare_reach_fig .js-plotly-plot", "gd => gd.data.map(t => t.name)")
    assert names == list(NAMES)
    assert page.eval_on_selector("#compare_matrix_fig .js-plotly-plot", "gd => gd.data.length") == 3
    assert "test digit #28" in page.inner_text("#compare_reach_note")
