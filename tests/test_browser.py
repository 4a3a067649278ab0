"""End to end in a real headless Chromium (Debian's ``chromium`` driven by playwright).

Generate a digit, drag the timestep slider and check that the canvas, the gate grids and the units x
time cursor follow; play a few frames; start a short training run on the fixture data, watch its
curve update, stop it and find its checkpoint in the model list. Screenshots go to a temporary
folder (printed; set RNNVIZ_SCREENSHOTS to choose it). Skipped when chromium is not installed.
"""

import time

import pytest

from rnnviz.app.tabs.train import SERIES_COLOURS
from tests.browser import browser_page, screenshots, served_explorer


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with served_explorer(tmp_path_factory.mktemp("browser")) as (url, ex):
        yield url, ex


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    yield from screenshots(tmp_path_factory)


@pytest.fixture(scope="module")
def page(app_url):
    with browser_page(app_url[0]) as pg:
        yield pg


def step_of(page, view="gen") -> int:
    return int(page.get_attribute(f"#{view}_canvas .rv-canvas-wrap", "data-step"))


def wait_step(page, step, view="gen"):
    page.wait_for_function(
        f"() => document.querySelector('#{view}_canvas .rv-canvas-wrap')?.dataset.step === '{step}' && "
        f"document.querySelector('#{view}_gates .rv-gates-wrap')?.dataset.step === '{step}'")


def views_now(page, view="gen"):
    canvas = page.get_attribute(f"#{view}_canvas .rv-canvas img", "src")
    gates = page.eval_on_selector_all(f"#{view}_gates img", "els => els.map(e => e.src)")
    cursor = page.evaluate(f"""() => {{
        const gd = document.querySelector('#{view}_fig .js-plotly-plot');
        const s = gd && gd.layout && gd.layout.shapes && gd.layout.shapes.find(s => s.name === 'cursor');
        return s ? s.x0 : null; }}""")
    return canvas, gates, cursor


def test_generate_and_drag_through_the_steps(page, shots):
    seed = page.locator("#seed input")
    seed.fill("7")
    seed.press("Tab")
    page.click("#generate")
    page.wait_for_function("() => document.querySelector('#gen_summary').innerText.includes('seed 7')")
    wait_step(page, 0)
    page.wait_for_selector("#gen_fig .js-plotly-plot")
    canvas0, gates0, cursor0 = views_now(page)
    assert len(gates0) == 6 and cursor0 == 0

    # drag the slider's thumb most of the way to the right with the mouse
    slider = page.locator("#gen_step input[type=range]")
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 4, y)
    page.mouse.down()
    for frac in (0.2, 0.4, 0.6, 0.75):
        page.mouse.move(box["x"] + box["width"] * frac, y, steps=4)
    page.mouse.up()
    target = int(slider.input_value())
    assert target > 10
    wait_step(page, target)
    page.wait_for_function(f"""() => {{
        const gd = document.querySelector('#gen_fig .js-plotly-plot');
        return gd.layout.shapes.find(s => s.name === 'cursor').x0 == {target}; }}""")
    canvas1, gates1, cursor1 = views_now(page)
    assert canvas1 != canvas0
    assert sum(a != b for a, b in zip(gates0, gates1)) >= 4  # the gates moved with the step
    assert cursor1 == target
    page.screenshot(path=str(shots / "generate_step.png"), full_page=True)

    # hovering a units x time panel names the unit, the step and the value
    panel = page.locator("#gen_fig .js-plotly-plot .nsewdrag").nth(1)
    panel.scroll_into_view_if_needed()
    pbox = panel.bounding_box()
    page.mouse.move(pbox["x"] + pbox["width"] * 0.5, pbox["y"] + pbox["height"] * 0.3)
    page.wait_for_function("() => /unit \\d+.*step \\d+.*i = -?[0-9.]+/.test("
                           "document.querySelector('#gen_fig .hoverlayer').textContent)")
    page.mouse.move(0, 0)

    # keyboard scrubbing lands on the exact step
    slider.fill("5")
    wait_step(page, 5)
    assert views_now(page)[0] not in (canvas0, canvas1)


def test_play_advances_and_pause_stops(page):
    page.locator("#gen_step input[type=range]").fill("2")
    wait_step(page, 2)
    page.click("#gen_play")
    page.wait_for_function("() => Number(document.querySelector('#gen_canvas .rv-canvas-wrap').dataset.step) >= 4")
    page.eval_on_selector("#gen_pause", "b => b.click()")  # at once (page.click waits for stable frames)
    held, deadline = step_of(page), time.time() + 10
    while time.time() < deadline:  # the page may still show a frame or two that were on their way
        time.sleep(1.0)
        now = step_of(page)
        if now == held:
            break
        held = now
    assert held < 27, "Pause did not stop the animation"
    time.sleep(1.0)
    assert step_of(page) == held, f"the animation went on after Pause: {held} -> {step_of(page)}"


def test_pixels_are_crisp(page):
    rendering = page.eval_on_selector("#gen_canvas .rv-canvas img", "e => getComputedStyle(e).imageRendering")
    assert rendering in ("pixelated", "crisp-edges")
    width = page.eval_on_selector("#gen_canvas .rv-canvas img", "e => e.getBoundingClientRect().width")
    assert width >= 250  # shown large


def test_train_watch_the_curve_and_stop(page, app_url, shots):
    ex = app_url[1]
    page.get_by_role("tab", name="Train").click()
    for elem, value in (("#train_hidden", "16"), ("#train_minutes", "0.5")):
        box = page.locator(f"{elem} input[type=number]")
        box.fill(value)
        box.press("Enter")
    page.click("#train_start")
    page.wait_for_function("() => document.querySelector('#train_status').innerText.includes('running')")
    page.wait_for_selector("#train_curve canvas, #train_curve svg", timeout=60_000)
    first = page.locator("#train_curve").screenshot()
    changed, deadline = False, time.time() + 30
    while not changed and time.time() < deadline:
        time.sleep(1.0)
        changed = page.locator("#train_curve").screenshot() != first
    assert changed, "the loss curve did not change in 30 s"
    # the test NLL is its own line, in its own colour, with its own legend entry, although the first
    # frame the plot got had no test score yet (the plot keeps the series of its first frame)
    test_colour = SERIES_COLOURS["test NLL"]
    page.wait_for_function("c => [...document.querySelectorAll('#train_curve svg path')]"
                           ".some(p => (p.getAttribute('stroke') || '').toLowerCase() === c)", arg=test_colour,
                           timeout=30_000)
    legend = page.eval_on_selector("#train_curve svg", "e => [...e.querySelectorAll('text')].map(t => t.textContent)")
    assert "train loss" in legend and "test NLL" in legend and "validation NLL" not in legend
    page.screenshot(path=str(shots / "train_running.png"), full_page=True)

    # the other tabs stay usable while it trains
    page.get_by_role("tab", name="Generate & step").click()
    page.locator("#gen_step input[type=range]").fill("20")
    wait_step(page, 20)
    page.get_by_role("tab", name="Train").click()

    page.click("#train_stop")
    page.wait_for_function("() => /stopped|finished/.test(document.querySelector('#train_status').innerText)",
                           timeout=60_000)
    run = ex.training.run
    assert run.trainer.join(30) and run.out.exists()
    # the run's checkpoint shows up in the model list
    page.wait_for_timeout(2000)
    page.click("#checkpoint input")
    page.wait_for_selector(f"ul[role=listbox] li:has-text('{run.out.stem}')")
    page.keyboard.press("Escape")
    page.screenshot(path=str(shots / "train_stopped.png"), full_page=True)


def test_complete_tab_opens_a_completion(page, shots):
    page.get_by_role("tab", name="Complete").click()
    page.locator("#test_gallery .thumbnail-item").nth(29).click()
    page.click("#complete_btn")
    page.wait_for_selector("#completions .thumbnail-item img")
    wait_step(page, 0, "comp")
    finished = "() => document.querySelector('#comp_canvas .rv-final img').src"
    before = page.evaluate(finished)
    page.locator("#completions .thumbnail-item").nth(1).click()  # same kept rows, another ending
    page.wait_for_function(f"() => ({finished})() !== {before!r}")
    page.locator("#comp_step input[type=range]").fill("16")
    wait_step(page, 16, "comp")
    page.screenshot(path=str(shots / "complete.png"), full_page=True)
