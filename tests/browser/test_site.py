"""The exported static site in Chromium, served from a temporary folder on loopback: generate, scrub,
deep links (good, bad, hostile), Complete on a drawn digit, Compare cells (every model on one slider),
and no request to any other origin.

The page must draw exactly what Python draws for the same model, digit, seed and temperature.
"""

from contextlib import contextmanager
from urllib.parse import quote

import numpy as np
import pytest
import torch

from rnnviz import ModelConfig, RowModel, load_checkpoint, sample_traces, save_checkpoint
from rnnviz.site import DEFAULT_CHECKPOINTS, export_site
from tests import ROOT
from tests.browser import ARGS, CHROMIUM, static_site, sync_api  # skips without chromium/playwright (unless required)

pytestmark = pytest.mark.skipif(not all(p.exists() for p in DEFAULT_CHECKPOINTS),
                                reason="the shipped checkpoints are not here")


@pytest.fixture(scope="module")
def extra(tmp_path_factory):
    """Two tiny untrained models beside the shipped ones: a 2-layer GRU and an unconditional LSTM."""
    tmp = tmp_path_factory.mktemp("extra")
    torch.manual_seed(0)
    two = save_checkpoint(tmp / "two_layer.safetensors",
                          RowModel(ModelConfig(cell="gru", hidden=20, layers=2, head_hidden=56)).eval(), {})
    uncond = save_checkpoint(tmp / "uncond.safetensors",
                             RowModel(ModelConfig(hidden=24, head_hidden=40, num_classes=0)).eval(), {})
    return {"two_layer": two, "uncond": uncond}


@pytest.fixture(scope="module")
def site(tmp_path_factory, extra):
    """The default site (shipped LSTM, GRU, RNN) plus the two tiny models, served on loopback."""
    out = tmp_path_factory.mktemp("site") / "out"
    export_site([*DEFAULT_CHECKPOINTS, *extra.values()], out, app_url="https://example.org/rnnviz")
    with static_site(out) as url:
        yield url


@pytest.fixture(scope="module")
def models():
    return {p.stem: load_checkpoint(p) for p in DEFAULT_CHECKPOINTS}


@contextmanager
def opened(base: str, query: str = ""):
    """The page once its first digit is drawn. Fails on any JavaScript error, console error or
    request to another origin."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(30_000)
        errors, outside = [], []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        pg.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
        pg.on("request", lambda r: None if r.url.startswith((base, "data:")) else outside.append(r.url))
        pg.goto(base + query)
        pg.wait_for_selector("body[data-ready='1']", state="attached")
        yield pg
        browser.close()
        assert not errors, f"errors on the page: {errors}"
        assert not outside, f"requests outside the page's origin: {outside}"


def state(pg, which="gen") -> dict:
    return pg.evaluate(f"window.rnnviz.state('{which}')")


def pixels(pg, selector: str) -> list:
    return pg.evaluate("(s) => { const c = document.querySelector(s); "
                       "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data); }", selector)


def assert_same_trace(s: dict, py, tol=1e-5):
    assert np.array_equal(np.array(s["image"], np.uint8), py.image), "the page drew another image than Python"
    assert s["label"] == py.label
    for js_layer, py_layer in zip(s["layers"], py.layers, strict=True):
        for name, v in py_layer.items():
            assert np.max(np.abs(np.array(js_layer[name], np.float32) - v)) <= tol, name


def test_generate_a_seven_and_scrub(site, models):
    with opened(site) as pg:
        pg.check("#digit input[value='7']")  # choosing a digit generates it
        pg.wait_for_function("window.rnnviz.state().label === 7")
        s = state(pg)
        assert (s["model"], s["digit"], s["seed"], s["temperature"], s["step"]) == ("mnist_lstm", "7", 0, 1, 27)
        assert_same_trace(s, sample_traces(models["mnist_lstm"], y=7, seed=0)[0])
        assert sorted(s["layers"][0]) == ["c", "f", "g", "h", "i", "o"]
        assert "digit 7" in pg.inner_text("#gen_summary") and "seed 0" in pg.inner_text("#gen_summary")
        assert pg.is_hidden("#gen_layer")  # one layer: no layer selector

        before = {sel: pixels(pg, sel) for sel in ("#gen_canvas_px", "#gen_gates canvas[data-name='c']")}
        pg.focus("#gen_step")
        pg.keyboard.press("Home")  # the view opens at its last step
        for _ in range(12):
            pg.keyboard.press("ArrowRight")  # drag the slider with the keyboard: input events, as a drag
        assert state(pg)["step"] == 12
        assert "step 12" in pg.inner_text("#gen_stepinfo")
        for sel, px in before.items():
            assert pixels(pg, sel) != px, f"{sel} did not change with the step"
        # the canvas at step 12: rows before 12 drawn, row 12 in inferno, later rows not drawn yet
        canvas = np.array(pixels(pg, "#gen_canvas_px")).reshape(28, 28, 4)[..., :3]
        img = np.array(s["image"])
        assert (canvas[:12][img[:12] == 1] == 245).all() and (canvas[:12][img[:12] == 0] == 0).all()
        assert (canvas[13:] == [34, 38, 52]).all()
        cursor = pg.eval_on_selector("#gen_fig .rv-cursor", "e => e.style.left")
        assert abs(float(cursor.rstrip("%")) - 100 * 12.5 / 28) < 1e-3, cursor

        panel = pg.locator("#gen_fig .rv-panel-fig[data-name='f'] canvas")
        panel.scroll_into_view_if_needed()
        box = panel.bounding_box()
        pg.mouse.move(box["x"] + box["width"] * (20.5 / 28), box["y"] + box["height"] * (100.5 / 256))
        tip = pg.inner_text("#tooltip")
        f = np.array(s["layers"][0]["f"])
        unit, step, value = tip.splitlines()  # a unit is under a pixel tall: read which one is hovered
        u, t = int(unit.removeprefix("unit ")), int(step.removeprefix("step "))
        assert abs(u - 100) <= 2 and t == 20 and value == f"f = {f[t, u]:.3f}", tip

        pg.click("#gen_play")
        pg.wait_for_function("window.rnnviz.state().step === 27", timeout=15_000)


DEEP = "?model=mnist_gru&digit=3&seed=5&temperature=0.8&t=14"


def test_deep_link_opens_that_view_and_copy_link_gives_it_back(site, models):
    with opened(site, DEEP) as pg:
        s = state(pg)
        assert (s["model"], s["digit"], s["seed"], s["temperature"], s["step"]) == ("mnist_gru", "3", 5, 0.8, 14)
        assert s["notes"] == [] and pg.is_hidden("#note")
        assert_same_trace(s, sample_traces(models["mnist_gru"], y=3, temperature=0.8, seed=5)[0])
        assert pg.input_value("#checkpoint") == "mnist_gru" and pg.input_value("#seed") == "5"
        pg.click("#copy_link")
        assert pg.input_value("#link") == site + DEEP + "&tab=generate"
        pg.focus("#gen_step")
        pg.keyboard.press("ArrowLeft")
        pg.click("#copy_link")
        assert "t=13" in pg.input_value("#link")
        pg.wait_for_function("location.search.includes('t=13')")  # the address bar follows the view


def test_bad_and_hostile_links_fall_back_with_a_note(site):
    hostile = "?" + "&".join(f"{k}={quote(v)}" for k, v in {
        "model": "<img src=x onerror=alert(1)>", "digit": "12", "seed": "-4", "temperature": "NaN",
        "t": "1e9", "tab": "javascript:alert(1)"}.items())
    with opened(site, hostile) as pg:
        s = state(pg)
        assert (s["model"], s["digit"], s["seed"], s["temperature"], s["step"], s["tab"]) == \
            ("mnist_lstm", "7", 0, 1, 27, "generate")
        note = pg.inner_text("#note")
        assert pg.is_visible("#note")
        for name in ("model", "digit", "seed", "temperature", "t ", "tab"):
            assert name in note, (name, note)
        assert "<img src=x onerror=alert(1)>" in note  # shown as text, never as markup
        assert pg.locator("#note img").count() == 0
    with opened(site, "?model=mnist_rnn&digit=any&seed=99999999999&temperature=2.5") as pg:
        s = state(pg)
        assert (s["model"], s["digit"], s["seed"], s["temperature"]) == ("mnist_rnn", "any", 0, 1)
        assert len(s["notes"]) == 2


def draw_seven(pg):
    pg.locator("#sketch").scroll_into_view_if_needed()
    box = pg.locator("#sketch").bounding_box()

    def at(x, y):  # sketch pixels (280 x 280) to page coordinates
        return box["x"] + x * box["width"] / 280, box["y"] + y * box["height"] / 280

    for stroke in ([(70, 60), (210, 60), (200, 90)], [(200, 90), (150, 160), (120, 240)]):
        pg.mouse.move(*at(*stroke[0]))
        pg.mouse.down()
        for x, y in stroke[1:]:
            pg.mouse.move(*at(x, y), steps=8)
        pg.mouse.up()


def test_complete_a_test_digit_and_a_drawn_one(site, models):
    from rnnviz.app.inputs import mnist_like
    from rnnviz.data import binarize_fixed

    gallery = np.load(ROOT / "rnnviz" / "assets" / "gallery.npz")
    with opened(site) as pg:
        pg.click("#tab_complete")
        assert pg.is_visible("#sketch") and pg.is_hidden("#gen_canvas")
        # as in the app, test digit #28 is picked to start with
        pg.click("#complete_btn")
        pg.wait_for_function("window.rnnviz.state('comp') !== null")
        note = pg.inner_text("#complete_note")
        assert f"the test image is a {int(gallery['labels'][28])}" in note, note
        prefix = binarize_fixed(torch.from_numpy(gallery["images"][28][None]), 0)[0].numpy().astype(np.uint8)
        digit = int(note.split("as digit ")[1].split(":")[0])
        py = sample_traces(models["mnist_lstm"], n=6, y=digit, seed=0,
                           prefix=torch.from_numpy(prefix.astype(np.float32)), keep_rows=14)
        assert_same_trace(state(pg, "comp"), py[0])

        pg.click("#clear_sketch")  # back to the (empty) drawing: a note, no error
        pg.click("#complete_btn")
        assert "empty" in pg.inner_text("#note")
        draw_seven(pg)
        pg.click("#complete_btn")
        pg.wait_for_function("!document.querySelector('#complete_note').textContent.includes('test image')")
        assert pg.locator("#completions .rv-thumb").count() == 6
        note = pg.inner_text("#complete_note")
        assert "6 completions of the first 14 rows by mnist_lstm" in note
        c = state(pg, "comp")
        assert c["keepRows"] == 14
        # the same drawing through Python's mnist_like and binarization: the same kept rows
        ink = np.array(pixels(pg, "#sketch")).reshape(280, 280, 4)[..., 0] / 255.0
        prefix = binarize_fixed(torch.from_numpy(mnist_like(ink)[None]), 0)[0].numpy().astype(np.uint8)
        assert np.array_equal(np.array(c["image"])[:14], prefix[:14])
        digit = int(note.split("as digit ")[1].split(":")[0]) if "as digit" in note else None
        py = sample_traces(models["mnist_lstm"], n=6, y=digit, seed=0,
                           prefix=torch.from_numpy(prefix.astype(np.float32)), keep_rows=14)
        assert_same_trace(c, py[0])
        pg.click("#completions .rv-thumb:nth-child(3)")
        assert_same_trace(state(pg, "comp"), py[2])
        pg.focus("#comp_step")
        pg.keyboard.press("End")
        assert state(pg, "comp")["step"] == 27
        # kept rows in blue on the canvas
        rows = np.array(pixels(pg, "#comp_canvas_px")).reshape(28, 28, 4)[:14, :, :3]
        assert {tuple(v) for v in rows.reshape(-1, 3)} <= {(125, 200, 255), (8, 22, 40)}


def test_two_layer_model_has_a_layer_selector(site):
    with opened(site, "?model=two_layer&digit=2&seed=1") as pg:
        s = state(pg)
        assert s["model"] == "two_layer" and len(s["layers"]) == 2 and s["layer"] == 1
        assert pg.is_visible("#gen_layer")
        assert "layer 2 of 2" in pg.inner_text("#gen_gates")
        top = pixels(pg, "#gen_gates canvas[data-name='h']")
        pg.select_option("#gen_layer", "0")
        assert "layer 1 of 2" in pg.inner_text("#gen_gates")
        assert pixels(pg, "#gen_gates canvas[data-name='h']") != top
        assert pg.get_attribute("#app_href", "href") == "https://example.org/rnnviz"
        assert pg.get_attribute("#about_link", "href") == "about.html"


# ---- Compare cells ---------------------------------------------------------------------------
SITE_MODELS = ["mnist_lstm", "mnist_gru", "mnist_rnn", "two_layer", "uncond"]  # the manifest's order


def columns(pg) -> dict:
    return {c["model"]: c for c in state(pg, "compare")["columns"]}


def assert_columns_are_python(pg, models, digit, seed, temperature=1.0):
    """Every shipped model's column is Python's sample for the same digit, seed and temperature."""
    cols = columns(pg)
    for name, m in models.items():
        py = sample_traces(m, y=digit, temperature=temperature, seed=seed)[0]
        assert_same_trace(cols[name], py)
        head = pg.inner_text(f".rv-cmp-col[data-model='{name}'] .rv-col-title")
        assert f"this sample: {py.nll:.1f} nats" in head and m.config.cell.upper() in head, head
    return cols


def test_compare_cells_every_model_on_one_slider(site, models, extra):
    with opened(site) as pg:
        pg.click("#tab_compare")
        pg.wait_for_function("window.rnnviz.state('compare') !== null")
        assert pg.is_visible("#panel_compare") and pg.is_hidden("#panel_generate") and pg.is_hidden("#model_row")
        s = state(pg, "compare")
        assert (s["digit"], s["seed"], s["temperature"], s["step"], s["tab"]) == ("7", 0, 1, 27, "compare")
        assert [c["model"] for c in s["columns"]] == SITE_MODELS  # one column per exported model
        assert pg.eval_on_selector_all(".rv-cmp-col", "cs => cs.map(c => c.dataset.model)") == SITE_MODELS
        cols = assert_columns_are_python(pg, models, 7, 0)
        images = {n: np.array(cols[n]["image"]) for n in models}
        assert not np.array_equal(images["mnist_lstm"], images["mnist_gru"])  # the same seed, another cell
        assert sorted(cols["mnist_lstm"]["layers"][0]) == ["c", "f", "g", "h", "i", "o"]
        grids = {n: pg.eval_on_selector_all(f".rv-cmp-col[data-model='{n}'] .rv-gates canvas",
                                            "cs => cs.map(c => c.dataset.name)") for n in models}
        assert grids == {"mnist_lstm": ["f", "c", "h"], "mnist_gru": ["z", "h"], "mnist_rnn": ["h"]}
        assert len(cols["two_layer"]["layers"]) == 2 and cols["two_layer"]["layer"] == 1
        assert "not class-conditional" in cols["uncond"]["skipped"]  # asked for a 7, as the app skips it
        assert "not class-conditional" in pg.inner_text(".rv-cmp-col[data-model='uncond']")

        canvases = [f"#cmp{k}_canvas_px" for k in range(3)]
        before = [pixels(pg, c) for c in canvases]
        pg.focus("#cmp_step")
        pg.keyboard.press("Home")
        for _ in range(9):
            pg.keyboard.press("ArrowRight")  # the one shared slider
        s = state(pg, "compare")
        assert s["step"] == 9 and pg.input_value("#cmp_step_box") == "9"
        assert [c.get("step") for c in s["columns"]] == [9, 9, 9, 9, None]
        for k, (sel, px) in enumerate(zip(canvases, before)):
            assert pixels(pg, sel) != px, f"{sel} did not follow the shared slider"
            assert "step 9" in pg.inner_text(f"#cmp{k}_stepinfo")
        pg.wait_for_function("location.search.includes('t=9') && location.search.includes('tab=compare')")

        pg.fill("#cmp_seed", "1")  # another seed: every column redraws, as Python does
        pg.click("#cmp_compare")
        pg.wait_for_function("window.rnnviz.state('compare').seed === 1")
        cols = assert_columns_are_python(pg, models, 7, 1)
        assert state(pg, "compare")["step"] == 27  # a new sample opens at its last step
        assert any(not np.array_equal(np.array(cols[n]["image"]), images[n]) for n in models)

        pg.check("#cmp_digit input[value='any']")  # any digit: the unconditional model draws too
        pg.wait_for_function("window.rnnviz.state('compare').digit === 'any'")
        cols = assert_columns_are_python(pg, models, None, 1)
        assert_same_trace(cols["uncond"], sample_traces(load_checkpoint(extra["uncond"]), seed=1)[0])
        assert_same_trace(cols["two_layer"], sample_traces(load_checkpoint(extra["two_layer"]), seed=1)[0])

        pg.click("#tab_generate")  # the settings are shared: Generate redraws with them
        pg.wait_for_function("window.rnnviz.state().seed === 1 && window.rnnviz.state().digit === 'any'")
        assert_same_trace(state(pg), sample_traces(models["mnist_lstm"], seed=1)[0])
        assert pg.input_value("#seed") == "1" and pg.is_visible("#model_row")
        print("compare timings (ms):", pg.evaluate("window.rnnviz.timings"))


CMP_DEEP = "?model=mnist_lstm&digit=3&seed=5&temperature=0.8&t=14&tab=compare"


def test_compare_deep_link_opens_it_and_copy_link_gives_it_back(site, models):
    with opened(site, CMP_DEEP) as pg:
        s = state(pg, "compare")
        assert (s["tab"], s["digit"], s["seed"], s["temperature"], s["step"]) == ("compare", "3", 5, 0.8, 14)
        assert s["notes"] == [] and pg.is_hidden("#note") and pg.is_visible("#panel_compare")
        assert [c.get("step") for c in s["columns"]] == [14, 14, 14, 14, None]
        assert pg.input_value("#cmp_seed") == "5" and pg.is_checked("#cmp_digit input[value='3']")
        assert_columns_are_python(pg, models, 3, 5, 0.8)
        pg.click("#cmp_copy_link")
        assert pg.input_value("#cmp_link") == site + CMP_DEEP
        pg.focus("#cmp_step")
        pg.keyboard.press("ArrowLeft")
        pg.wait_for_function("location.search.includes('t=13')")
        pg.click("#cmp_play")  # one Play button plays every column
        pg.wait_for_function("window.rnnviz.state('compare').step === 27", timeout=15_000)
        assert [c.get("step") for c in state(pg, "compare")["columns"]] == [27, 27, 27, 27, None]


def test_compare_bad_link_values_leave_a_note(site, models):
    bad = "?" + "&".join(f"{k}={quote(v)}" for k, v in {"tab": "compare", "digit": "<b>x</b>", "seed": "5",
                                                         "t": "99"}.items())
    with opened(site, bad) as pg:
        s = state(pg, "compare")
        assert (s["tab"], s["digit"], s["seed"], s["step"]) == ("compare", "7", 5, 27)
        note = pg.inner_text("#note")
        assert pg.is_visible("#note") and "digit" in note and "t " in note and "<b>x</b>" in note, note
        assert pg.locator("#note b").count() == 0  # shown as text, never as markup
        assert_columns_are_python(pg, models, 7, 5)
    with opened(site, "?tab=comparison") as pg:  # not a tab: Generate, with a note naming the tabs
        assert state(pg)["tab"] == "generate" and pg.is_visible("#panel_generate")
        assert "compare" in pg.inner_text("#note")
