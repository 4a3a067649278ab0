"""The lab tabs end to end in a real headless Chromium (Debian's ``chromium`` driven by playwright).

Compare cells: run it, drag the one slider and check that all three canvases (and their state grids
and the NLL chart's band) follow, with no request. Intervene: ink a row and check that the difference
column (computed in the page from the two traces, rnnviz/site/static/intervene.js) shows the changed
pixels, the first changed line and the change per step, and that the slider moves both runs and the
difference. Reconstruct: redraw a gallery digit with a (tiny) VAE and step through it. Screenshots go
to a temporary folder (printed; set RNNVIZ_SCREENSHOTS to choose it). Skipped when chromium is not
installed (a failure when RNNVIZ_REQUIRE_BROWSER is set), as tests/browser/test_explorer.py.
"""

import numpy as np
import pytest

from rnnviz.rules import DIFF_ADDED, DIFF_BOTH, DIFF_REMOVED, FUTURE, PAPER
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

MODELS = ["mnist_lstm", "mnist_gru", "mnist_rnn"]


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


def drag(page, slider: str, fracs=(0.2, 0.4, 0.6)) -> int:
    """Drag a slider's thumb with the mouse; returns where it ended."""
    loc = page.locator(f"#{slider}")
    loc.scroll_into_view_if_needed()
    box = loc.bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 4, y)
    page.mouse.down()
    for frac in fracs:
        page.mouse.move(box["x"] + box["width"] * frac, y, steps=4)
    page.mouse.up()
    return int(loc.input_value())


def band_left(page, selector: str) -> float:
    return page.eval_on_selector(selector, "e => parseFloat(e.style.left)")


def future_rows(rgba: np.ndarray) -> list[int]:
    """The rows of a canvas not drawn yet."""
    return [t for t in range(rgba.shape[0]) if (rgba[t, :, :3] == np.array(FUTURE)).all()]


def test_compare_one_slider_drives_three_models(page, shots):
    page.get_by_role("tab", name="Compare cells").click()
    before = loaded_id(page, "compare")
    page.click("#compare_btn")
    page.wait_for_function("() => document.querySelector('#compare_note').innerText.includes('3 models')")
    wait_loaded(page, "compare", before)
    state = view_state(page, "compare")
    assert state["step"] == 27 and [c["model"] for c in state["columns"]] == MODELS
    assert [c["cell"] for c in state["columns"]] == ["lstm", "gru", "rnn"] and all(c["step"] == 27 for c in state["columns"])
    titles = page.eval_on_selector_all("#compare_columns .rv-col-title", "els => els.map(e => e.innerText)")
    assert [t.split()[0] for t in titles] == MODELS and all("test NLL 99.50" in t for t in titles)
    assert "LSTM 1\u00d732" in titles[0] and "GRU 1\u00d732" in titles[1] and "RNN 1\u00d732" in titles[2]
    canvases = lambda: [canvas_rgba(page, f"#compare{k}_canvas_px") for k in range(3)]  # noqa: E731
    grids = lambda: [canvas_urls(page, f"#compare{k}_gates canvas") for k in range(3)]  # noqa: E731
    before, grids0 = canvases(), grids()
    assert [len(g) for g in grids0] == [3, 2, 1]  # f c h | z h | h
    assert [page.eval_on_selector_all(f"#compare{k}_gates canvas", "els => els.map(e => e.dataset.name)")
            for k in range(3)] == [["f", "c", "h"], ["z", "h"], ["h"]]
    assert all(future_rows(c) == [] for c in before)  # the whole image

    requests = ApiRequests(page)
    requests.settle()  # what the last action set off is done
    target = drag(page, "compare_step")
    assert 8 < target < 27
    page.wait_for_function("(t) => window.rnnviz.state('compare').columns.every(c => c.step === t)", arg=target)
    after, grids1 = canvases(), grids()
    assert all(future_rows(c) == list(range(target + 1, 28)) for c in after), "every canvas follows the one slider"
    assert all(g0 != g1 for g0, g1 in zip(grids0, grids1)), "every model's state grids follow it"
    assert abs(band_left(page, "#compare_chart .rv-band") - 100 * target / 28) < 1e-3
    page.locator("#compare_step_box").fill("99")
    page.locator("#compare_step_box").press("Enter")
    page.wait_for_function("() => window.rnnviz.state('compare').columns.every(c => c.step === 27)")
    assert "showing 27" in page.inner_text("#compare_step_note")
    page.click("#compare_play")  # one Play for every column
    page.wait_for_function("() => { const s = window.rnnviz.state('compare');"
                           " return s.playing && s.step >= 3 && s.columns.every(c => c.step === s.step); }")
    page.eval_on_selector("#compare_pause", "b => b.click()")
    assert view_state(page, "compare")["playing"] is False
    assert requests.take() == [], "the slider and Play sent requests"
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
    before = loaded_id(page, "intervene")
    page.click("#intervene_btn")
    page.wait_for_function("() => document.querySelector('#intervene_summary').innerText.includes('ink row at step 8')")
    wait_loaded(page, "intervene", before)
    state = view_state(page, "intervene")
    assert state["step"] == 27 and len(state["columns"]) == 2
    without, with_ = (np.asarray(c["image"]) > 0.5 for c in state["columns"])
    assert with_[8].all() and (without[:8] == with_[:8]).all()
    extra = state["extra"]
    assert extra["firstChanged"] == 8 and extra["steps"] == [8]
    assert extra["added"] == int((with_ & ~without).sum()) > 0 and extra["removed"] == int((without & ~with_).sum())
    assert "first changed line 8" in page.inner_text("#intervene_diff")
    # the difference image, pixel for pixel: red only with the intervention, blue only without, grey both
    diff = canvas_rgba(page, "#intervene_diff .rv-canvas canvas")[..., :3]
    want = np.where((without & with_)[..., None], DIFF_BOTH,
                    np.where(with_[..., None], DIFF_ADDED, np.where(without[..., None], DIFF_REMOVED, PAPER)))
    assert (diff == want).all()
    assert min(np.flatnonzero((diff == np.array(DIFF_ADDED)).all(axis=2).any(axis=1))) == 8
    # the change per step: zero before the edited row is read, not after it; as the two traces give it
    dh = np.asarray(extra["meanChange"]["h"])
    hw, ho = (np.asarray(c["layers"][0]["h"], np.float32) for c in (state["columns"][1], state["columns"][0]))
    np.testing.assert_allclose(dh, np.abs(hw - ho).mean(axis=1), rtol=1e-5, atol=1e-7)
    assert dh[:9].max() == 0 and dh[9:].max() > 0  # step 9 is the first to read the edited row 8
    assert sorted(extra["meanChange"]) == ["c", "h"]

    requests = ApiRequests(page)
    requests.settle()  # what the last action set off is done
    deltas = canvas_urls(page, "#intervene_diff .rv-gate canvas")
    assert len(deltas) == 2  # dc, dh
    page.locator("#intervene_step").fill("3")  # both runs agree up to step 8: no change yet
    page.wait_for_function("() => window.rnnviz.state('intervene').columns.every(c => c.step === 3)")
    early = canvas_urls(page, "#intervene_diff .rv-gate canvas")
    target = drag(page, "intervene_step", (0.3, 0.5, 0.7))
    assert 9 < target < 27
    page.wait_for_function("(t) => window.rnnviz.state('intervene').columns.every(c => c.step === t)", arg=target)
    for k in range(2):  # both runs follow the one slider
        assert future_rows(canvas_rgba(page, f"#intervene{k}_canvas_px")) == list(range(target + 1, 28))
    late = canvas_urls(page, "#intervene_diff .rv-gate canvas")
    assert all(a != b for a, b in zip(early, late)) and late != deltas, "the difference column follows the slider"
    assert f"change at step {target}" in page.inner_text("#intervene_diff")
    assert abs(page.eval_on_selector("#intervene_diff .rv-rowmark", "e => parseFloat(e.style.top)")
               - 100 * target / 28) < 1e-3
    assert abs(band_left(page, "#intervene_diff .rv-band") - 100 * target / 28) < 1e-3
    assert requests.take() == []
    page.screenshot(path=str(shots / "intervene.png"), full_page=True)


def test_reconstruct_a_gallery_digit(page, shots):
    page.get_by_role("tab", name="Reconstruct").click()
    page.locator("#rec_gallery .thumbnail-item").nth(5).click()
    page.wait_for_selector("#rec_source img")
    before = loaded_id(page, "rec")
    page.click("#reconstruct_btn")
    page.wait_for_function("() => document.querySelector('#rec_summary').innerText.includes('test digit #5')")
    first = wait_loaded(page, "rec", before)
    state = view_state(page, "rec")
    assert state["step"] == 27 and list(state["layers"][0]) == ["i", "f", "g", "o", "c", "h"]
    whole = canvas_rgba(page, "#rec_canvas_px")
    requests = ApiRequests(page)
    requests.settle()  # what the last action set off is done
    page.locator("#rec_step").fill("20")
    wait_step(page, "rec", 20)
    assert future_rows(canvas_rgba(page, "#rec_canvas_px")) == list(range(21, 28)) and future_rows(whole) == []
    assert requests.take() == []
    page.click("#prior_btn")
    page.wait_for_function("() => document.querySelector('#rec_summary').innerText.includes('prior')")
    wait_loaded(page, "rec", first)
    assert view_state(page, "rec")["step"] == 27  # a new trace opens at its last step
    page.screenshot(path=str(shots / "reconstruct.png"), full_page=True)
