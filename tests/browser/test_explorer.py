"""End to end in a real headless Chromium (Debian's ``chromium`` driven by playwright).

Generate a digit and check that the page shows exactly the trace Python samples for the same model,
digit, seed and temperature (a hidden seed); drag the timestep slider, type in the step box, use the
keys, Play and Pause, switch the layer and the unit order, and check that the canvas, the gate grids
and the units x time cursor follow while the page sends no request (the step view is drawn in the
browser: rnnviz/site/static/view.js); start a short training run on the fixture data, watch its
curve update, stop it and find its checkpoint in the model list; open a completion. Screenshots go
to a temporary folder (printed; set RNNVIZ_SCREENSHOTS to choose it). Skipped when chromium is not
installed.
"""

import random
import re
import time

import numpy as np
import pytest

from rnnviz import sample_traces
from rnnviz.app.tabs.train import SERIES_COLOURS
from rnnviz.rules import FUTURE, INK, KEPT_INK, KEPT_PAPER, PAPER
from tests.browser import (
    ApiRequests,
    browser_page,
    canvas_rgba,
    canvas_urls,
    loaded_id,
    screenshots,
    served_explorer,
    view_state,
    wait_loaded,
    wait_step,
)

NAMES = ("mnist_lstm", "mnist_gru", "deep_gru")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with served_explorer(tmp_path_factory.mktemp("browser"), NAMES) as (url, ex):
        yield url, ex


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    yield from screenshots(tmp_path_factory)


@pytest.fixture(scope="module")
def page(app_url):
    with browser_page(app_url[0]) as pg:
        yield pg


def rows_drawn(rgba: np.ndarray, image: np.ndarray, step: int, ink=INK, paper=PAPER, kept: int = 0) -> bool:
    """The canvas at ``step``: rows before it in ink/paper by ``image`` (the first ``kept`` in the kept
    colours), the row being drawn in its probabilities' colours, the rows after it not drawn yet."""
    rgb, img = rgba[..., :3].astype(int), np.asarray(image) > 0.5
    for t in range(rgb.shape[0]):
        on, off = (KEPT_INK, KEPT_PAPER) if t < kept else (ink, paper)
        want = np.where(img[t][:, None], np.array(on), np.array(off))
        if t < step and not (rgb[t] == want).all():
            return False
        if t > step and not (rgb[t] == np.array(FUTURE)).all():
            return False
    return True


def pick_model(page, name: str):
    """Pick ``name`` in the page's model menu (it redraws the same digit and seed with it)."""
    page.click("#checkpoint input")
    page.locator("ul[role=listbox] li", has_text=name).first.click()


def assert_is_the_trace(state: dict, trace):
    """The page's step view holds ``trace``: image, NLL per row and every layer's gates and states,
    equal as float32 (the numbers travel as float32, rnnviz.wire, and JSON keeps each exactly)."""
    f4 = lambda a: np.asarray(a, np.float32)  # noqa: E731
    assert np.array_equal(f4(state["image"]), f4(trace.image))
    assert np.array_equal(f4(state["rowNll"]), f4(trace.row_nll))
    assert len(state["layers"]) == len(trace.layers)
    for k, layer in enumerate(trace.layers):
        assert sorted(state["layers"][k]) == sorted(trace.names)
        for name in trace.names:
            assert np.array_equal(f4(state["layers"][k][name]), f4(layer[name])), (k, name)
    assert state["label"] == trace.label


def test_a_hidden_seed_digit_is_exactly_the_python_trace(app_url):
    """A digit the test draws at random (seed, digit, temperature) through a deep link, then through
    the model menu: what the page holds equals ``rnnviz.sample_traces`` with the same model, digit,
    seed and temperature, float32 for float32, for a two-layer GRU and an LSTM."""
    url, ex = app_url
    rng = random.SystemRandom()
    seed, digit, temperature = rng.randrange(1, 2**31 - 1), rng.randrange(10), rng.randrange(10, 31) / 20
    query = f"?model=deep_gru&digit={digit}&seed={seed}&temperature={temperature:g}"
    with browser_page(url + query) as page:
        page.wait_for_function("(s) => document.querySelector('#gen_summary').innerText.includes('seed ' + s)",
                               arg=str(seed))
        assert f"temperature {temperature:g}" in page.inner_text("#gen_summary")
        state = view_state(page, "gen")
        assert state["step"] == 27 and state["layer"] == 1  # a link without t: the whole image, the top layer
        (expected,) = sample_traces(ex.model("shipped/deep_gru")[1], n=1, y=digit, temperature=temperature, seed=seed)
        assert_is_the_trace(state, expected)
        before = loaded_id(page, "gen")
        pick_model(page, "mnist_lstm")  # the same digit, seed and temperature with another model
        wait_loaded(page, "gen", before)
        (expected,) = sample_traces(ex.model("shipped/mnist_lstm")[1], n=1, y=digit, temperature=temperature,
                                    seed=seed)
        state = view_state(page, "gen")
        assert_is_the_trace(state, expected)
        assert state["step"] == 27 and state["layer"] == 0 and list(state["layers"][0]) == ["i", "f", "g", "o", "c", "h"]


def test_generate_and_drag_through_the_steps(page, shots):
    requests = ApiRequests(page)
    requests.settle()  # what the last action set off is done
    seed = page.locator("#seed input")
    seed.fill("7")
    seed.press("Tab")
    before = loaded_id(page, "gen")
    page.click("#generate")
    page.wait_for_function("() => document.querySelector('#gen_summary').innerText.includes('seed 7')")
    wait_loaded(page, "gen", before)
    assert [u for u in requests.settle() if "run/predict" in u]  # Generate asked the server (directly: no queue)
    state = view_state(page)
    image = np.asarray(state["image"])
    assert state["step"] == 27 and page.input_value("#gen_step") == "27" and page.input_value("#gen_step_box") == "27"
    canvas0, grids0 = canvas_rgba(page, "#gen_canvas_px"), canvas_urls(page, "#gen_gates canvas")
    assert rows_drawn(canvas0, image, 27) and len(grids0) == 6  # i f g o c h

    # drag the slider's thumb most of the way to the right with the mouse
    slider = page.locator("#gen_step")
    box = slider.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 4, y)
    page.mouse.down()
    for frac in (0.2, 0.4, 0.6, 0.75):
        page.mouse.move(box["x"] + box["width"] * frac, y, steps=4)
    page.mouse.up()
    target = int(slider.input_value())
    assert 10 < target < 27
    wait_step(page, "gen", target)
    canvas1, grids1 = canvas_rgba(page, "#gen_canvas_px"), canvas_urls(page, "#gen_gates canvas")
    assert rows_drawn(canvas1, image, target) and not rows_drawn(canvas1, image, 27)
    assert sum(a != b for a, b in zip(grids0, grids1)) >= 4  # the gates moved with the step
    assert page.input_value("#gen_step_box") == str(target)
    cursors = page.eval_on_selector_all("#gen_fig .rv-cursor", "els => els.map(e => parseFloat(e.style.left))")
    assert len(cursors) == 6 and all(abs(c - 100 * (target + 0.5) / 28) < 1e-3 for c in cursors)
    assert f"step {target}/27" in page.inner_text("#gen_stepinfo")
    page.screenshot(path=str(shots / "generate_step.png"), full_page=True)

    # hovering a units x time panel names the unit, the step and the value the trace holds there
    panel = page.locator("#gen_fig .rv-panel-fig[data-name=f] canvas")
    panel.scroll_into_view_if_needed()
    pbox = panel.bounding_box()
    page.mouse.move(pbox["x"] + pbox["width"] * (9.5 / 28), pbox["y"] + pbox["height"] * 0.3)
    page.wait_for_function("() => !document.querySelector('#rv_tooltip').hidden")
    m = re.fullmatch(r"unit (\d+)\nstep (\d+)\nf = (-?[0-9.]+)", page.inner_text("#rv_tooltip").strip())
    assert m, page.inner_text("#rv_tooltip")
    unit, t, value = int(m[1]), int(m[2]), float(m[3])
    assert t == 9 and abs(state["layers"][0]["f"][t][unit] - value) <= 5e-4
    page.mouse.move(0, 0)

    # the slider set from the keyboard (as fill does) lands on the exact step
    slider.fill("5")
    wait_step(page, "gen", 5)
    canvas5 = canvas_rgba(page, "#gen_canvas_px")
    assert rows_drawn(canvas5, image, 5) and not (canvas5 == canvas1).all()
    assert view_state(page)["step"] == 5
    assert requests.take() == [], "scrubbing and hovering sent requests"


def test_step_box_clamps_with_a_note_and_keys_move(page):
    requests = ApiRequests(page)
    requests.settle()  # what the last action set off is done
    box, note = page.locator("#gen_step_box"), page.locator("#gen_step_note")
    for typed, step, said in (("40", 27, "step 40 is not in 0..27: showing 27"), ("-3", 0, "step -3 is not in 0..27"),
                              ("12", 12, "")):
        box.fill(typed)
        box.press("Enter")
        wait_step(page, "gen", step)
        assert said in note.inner_text() and (said or note.inner_text().strip() == "")
        assert page.input_value("#gen_step") == str(step) and page.input_value("#gen_step_box") == str(step)
    canvas = page.locator("#gen_canvas")  # the canvas takes the keys (as the slider does)
    canvas.focus()
    for key, step in (("ArrowRight", 13), ("ArrowLeft", 12), ("ArrowLeft", 11), ("End", 27), ("Home", 0),
                      ("ArrowUp", 1)):
        page.keyboard.press(key)
        wait_step(page, "gen", step)
    page.locator("#gen_step").focus()
    page.keyboard.press("ArrowRight")  # one step, not two (the view's handler and the range's own)
    wait_step(page, "gen", 2)
    page.wait_for_timeout(200)
    assert view_state(page)["step"] == 2
    page.keyboard.press(" ")  # Space plays ...
    page.wait_for_function("() => window.rnnviz.state('gen').playing && window.rnnviz.step('gen') >= 4")
    page.keyboard.press(" ")  # ... and pauses
    assert view_state(page)["playing"] is False
    held = view_state(page)["step"]
    page.wait_for_timeout(800)
    assert view_state(page)["step"] == held
    assert requests.take() == []


def test_play_advances_and_pause_stops(page):
    requests = ApiRequests(page)
    requests.settle()  # what the last action set off is done
    page.locator("#gen_step").fill("27")
    wait_step(page, "gen", 27)
    page.click("#gen_play")  # at the end: it starts again from the top
    page.wait_for_function("() => { const s = window.rnnviz.state('gen'); return s.playing && s.step >= 1 && s.step < 20; }")
    page.wait_for_function("() => window.rnnviz.step('gen') >= 4")
    page.eval_on_selector("#gen_pause", "b => b.click()")  # at once (page.click waits for stable frames)
    state = view_state(page)
    assert state["playing"] is False and 4 <= state["step"] < 27
    time.sleep(1.0)  # four Play intervals
    assert view_state(page)["step"] == state["step"], "the animation went on after Pause"
    assert page.input_value("#gen_step") == str(state["step"])
    page.click("#gen_play")  # played to the end, it stops there by itself
    page.wait_for_function("() => window.rnnviz.step('gen') === 27 && !window.rnnviz.state('gen').playing",
                           timeout=20_000)
    assert requests.take() == [], "Play sent requests"


def test_pixels_are_crisp(page):
    rendering = page.eval_on_selector("#gen_canvas_px", "e => getComputedStyle(e).imageRendering")
    assert rendering in ("pixelated", "crisp-edges")
    width = page.eval_on_selector("#gen_canvas_px", "e => e.getBoundingClientRect().width")
    assert width >= 250  # shown large


def test_layer_and_unit_order_switch_in_the_page(page, app_url):
    """A two-layer model: the layer menu shows the lower layer's grids and the unit order lays them
    out by index instead of by behaviour (the permutation Python measures), with no request."""
    ex = app_url[1]
    page.get_by_role("tab", name="Generate & step").click()
    before = loaded_id(page, "gen")
    pick_model(page, "deep_gru")
    wait_loaded(page, "gen", before)
    assert page.is_visible("#gen_layer") and page.is_visible("#gen_order")
    assert page.eval_on_selector_all("#gen_layer option", "os => os.map(o => o.value)") == ["0", "1"]
    state = view_state(page)
    assert state["layer"] == 1 and state["unitMode"] == "behaviour" and "layer 2 of 2" in page.inner_text("#gen_gates")
    requests = ApiRequests(page)
    requests.settle()  # what the last action set off is done
    grids_top = canvas_urls(page, "#gen_gates canvas")
    panels_top = canvas_urls(page, "#gen_fig .rv-panel-fig canvas")
    page.select_option("#gen_layer", "0")
    page.wait_for_function("() => window.rnnviz.state('gen').layer === 0")
    assert "layer 1 of 2" in page.inner_text("#gen_gates")
    assert all(a != b for a, b in zip(grids_top, canvas_urls(page, "#gen_gates canvas")))
    assert all(a != b for a, b in zip(panels_top, canvas_urls(page, "#gen_fig .rv-panel-fig canvas")))

    perm = ex.unit_studies.order("shipped/deep_gru", 0)[2]
    assert sorted(perm.tolist()) == list(range(16)) and perm.tolist() != list(range(16))
    for t in (3, 20):  # at two steps: cell q of the behaviour grid shows unit perm[q]
        page.locator("#gen_step").fill(str(t))
        wait_step(page, "gen", t)
        page.select_option("#gen_order", "behaviour")
        page.wait_for_function("() => window.rnnviz.state('gen').unitMode === 'behaviour'")
        by_behaviour = canvas_rgba(page, "#gen_gates canvas[data-name=h]").reshape(-1, 4)
        page.select_option("#gen_order", "index")
        page.wait_for_function("() => window.rnnviz.state('gen').unitMode === 'index'")
        by_index = canvas_rgba(page, "#gen_gates canvas[data-name=h]").reshape(-1, 4)
        assert (by_behaviour == by_index[perm]).all() and not (by_behaviour == by_index).all()
    assert "unit 0 top left" in page.inner_text("#gen_gates") and view_state(page)["layer"] == 0
    page.select_option("#gen_order", "behaviour")
    assert requests.take() == [], "the layer and the unit order sent requests"
    before = loaded_id(page, "gen")
    pick_model(page, "mnist_lstm")  # one layer: no layer menu
    wait_loaded(page, "gen", before)
    assert not page.is_visible("#gen_layer") and view_state(page)["layer"] == 0


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
    page.locator("#gen_step").fill("20")
    wait_step(page, "gen", 20)
    assert rows_drawn(canvas_rgba(page, "#gen_canvas_px"), np.asarray(view_state(page)["image"]), 20)
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
    first_id = wait_loaded(page, "comp")
    first = view_state(page, "comp")
    assert first["step"] == 27 and first["keepRows"] == 14
    finished = canvas_urls(page, "#comp_canvas .rv-final canvas")
    page.locator("#completions .thumbnail-item").nth(1).click()  # same kept rows, another ending
    wait_loaded(page, "comp", first_id)
    second = view_state(page, "comp")
    assert canvas_urls(page, "#comp_canvas .rv-final canvas") != finished and second["image"] != first["image"]
    assert second["image"][:14] == first["image"][:14] and second["keepRows"] == 14
    requests = ApiRequests(page)
    requests.settle()  # what the last action set off is done
    page.locator("#comp_step").fill("16")
    wait_step(page, "comp", 16)
    assert rows_drawn(canvas_rgba(page, "#comp_canvas_px"), np.asarray(second["image"]), 16, kept=14)
    assert "(kept)" not in page.inner_text("#comp_stepinfo")
    page.locator("#comp_step").fill("5")
    wait_step(page, "comp", 5)
    assert "(kept)" in page.inner_text("#comp_stepinfo")
    assert requests.take() == []
    page.screenshot(path=str(shots / "complete.png"), full_page=True)
