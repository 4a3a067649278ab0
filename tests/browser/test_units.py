"""The unit views in a real headless Chromium: clicking a unit in Generate's units x time panels or in
one of its grids (canvases drawn by the page, rnnviz/site/static/view.js) opens that unit in the
Units tab's inspector, in the behaviour order Python measures or in index order; Compare's memory
reach draws one curve per cell. Skipped when chromium is not installed (unless
RNNVIZ_REQUIRE_BROWSER is set)."""

import re

import pytest

from tests.browser import browser_page, served_explorer, sync_api, view_state, wait_loaded

NAMES = ("mnist_lstm", "mnist_gru", "mnist_rnn")
LSTM = "shipped/mnist_lstm"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with served_explorer(tmp_path_factory.mktemp("browser_units"), names=NAMES) as (url, ex):
        with browser_page(url) as pg:
            yield pg, ex


@pytest.fixture
def page(app):
    return app[0]


@pytest.fixture
def perm(app) -> list[int]:
    """The behaviour order of the default model's units, as Python measures it."""
    order = app[1].unit_studies.order(LSTM, 0)[2].tolist()
    assert sorted(order) == list(range(32)) and order != list(range(32))
    return order


def inspected_unit(page, unit: int) -> int:
    """Wait for the inspector to show ``unit`` (up to 30 s); the unit it shows."""
    try:
        page.wait_for_function(f"() => document.querySelector('#units_note').innerText.includes('unit {unit} of layer')")
    except sync_api.TimeoutError:
        pass
    page.wait_for_selector("#units_lines .js-plotly-plot")
    note = page.inner_text("#units_note")
    return int(re.search(r"unit (\d+) of layer", note).group(1))


def back_to_generate(page, order: str = "behaviour"):
    page.get_by_role("tab", name="Generate & step").click()
    page.wait_for_selector("#gen_view [data-loaded]")
    page.select_option("#gen_order", order)
    page.wait_for_function("(o) => window.rnnviz.state('gen').unitMode === o", arg=order)


def grid_cell(page, name: str, row: int, col: int) -> tuple[dict, int]:
    """(the click position of cell (``row``, ``col``) of the grid of ``name``, the grid's columns),
    from the grid canvas's own size (one pixel per unit) and its size on the page."""
    canvas = page.locator(f"#gen_gates canvas[data-name={name}]")
    rows, cols = canvas.evaluate("c => [c.height, c.width]")
    box = canvas.bounding_box()
    return {"x": box["width"] * (col + 0.5) / cols, "y": box["height"] * (row + 0.5) / rows}, cols


def test_clicking_a_unit_in_a_panel_opens_the_inspector(page, perm):
    back_to_generate(page)
    assert "by behaviour" in page.inner_text("#gen_gates")
    panel = page.locator("#gen_fig .rv-panel-fig[data-name=i] canvas")
    panel.scroll_into_view_if_needed()
    box = panel.bounding_box()
    row = 11  # the panel's rows are the units in behaviour order
    x, y = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (row + 0.5) / 32
    page.mouse.move(x, y)
    page.wait_for_function("() => /^unit \\d+/.test(document.querySelector('#rv_tooltip').textContent)")
    hovered = int(re.match(r"unit (\d+)", page.inner_text("#rv_tooltip")).group(1))
    assert hovered == perm[row]
    page.mouse.click(x, y)
    assert inspected_unit(page, hovered) == hovered
    assert page.input_value("#units_unit input") == str(hovered)
    lines = page.eval_on_selector("#units_lines .js-plotly-plot", "gd => gd.data.length")
    assert lines >= 4  # several digit classes in each of h, i, f, o
    assert page.locator("#units_examples img").count() == 16  # 8 most and 8 least active digits


def test_clicking_a_grid_cell_opens_that_unit(page, perm):
    for order in ("behaviour", "index"):
        back_to_generate(page, order)
        position, cols = grid_cell(page, "f", 1, 2)
        unit = perm[cols + 2] if order == "behaviour" else cols + 2  # the cell in grid row 1, column 2 (from 0)
        page.locator("#gen_gates canvas[data-name=f]").click(position=position)
        assert inspected_unit(page, unit) == unit, order


def test_typing_a_unit_and_the_order_switch(page):
    page.get_by_role("tab", name="Units").click()
    box = page.locator("#units_unit input")
    box.fill("3")
    page.click("#units_btn")
    page.wait_for_function("() => document.querySelector('#units_note').innerText.includes('unit 3 of layer')")
    back_to_generate(page, "index")
    assert "unit 0 top left" in page.inner_text("#gen_gates") and view_state(page)["unitMode"] == "index"
    panel = page.locator("#gen_fig .rv-panel-fig[data-name=h] canvas")
    panel.scroll_into_view_if_needed()
    box = panel.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] * 7.5 / 32)
    page.wait_for_function("() => /^unit 7\\n/.test(document.querySelector('#rv_tooltip').textContent)")  # index order
    page.mouse.move(0, 0)
    page.select_option("#gen_order", "behaviour")


def test_clicking_a_unit_in_a_compare_column_inspects_that_model(page):
    """A click in Compare's third column (the RNN) opens the unit of the RNN, not of the page's model."""
    page.get_by_role("tab", name="Compare cells").click()
    page.click("#compare_btn")
    wait_loaded(page, "compare")
    page.locator("#compare2_gates canvas[data-name=h]").click(position={"x": 3, "y": 3})  # unit 0 (index order)
    assert inspected_unit(page, 0) == 0
    assert "mnist_rnn" in page.inner_text("#units_note")


def test_compare_memory_reach_shows_three_curves(page):
    page.get_by_role("tab", name="Compare cells").click()
    page.click("#compare_reach_btn")
    page.wait_for_function("() => { const gd = document.querySelector('#compare_reach_fig .js-plotly-plot');"
                           " return gd && gd.data && gd.data.length === 3; }", timeout=60_000)
    names = page.eval_on_selector("#compare_reach_fig .js-plotly-plot", "gd => gd.data.map(t => t.name)")
    assert names == list(NAMES)
    assert page.eval_on_selector("#compare_matrix_fig .js-plotly-plot", "gd => gd.data.length") == 3
    assert "test digit #28" in page.inner_text("#compare_reach_note")
