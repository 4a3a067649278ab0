"""Screenshots of the explorer for the README: one PNG per view, docs/explorer_<view>.png.

Starts the real app on the shipped checkpoints (``checkpoints/``) in this process, drives it with
playwright in Debian's Chromium (``/usr/bin/chromium``) and saves a full-page PNG of each view:

    .venv/bin/python docs/screenshots.py                      # every view it can take
    .venv/bin/python docs/screenshots.py compare intervene    # just these
    .venv/bin/python docs/screenshots.py --out /tmp/shots --width 1400

Views: generate, complete, compare, intervene, reconstruct, analysis (gate saturation), forcing (teacher
forcing vs free running), units (the unit inspector and a pattern search), memory (Compare's memory
reach and timescales of the LSTM, GRU and RNN), train. Set ``RNNVIZ_DATA`` to the folder that holds ``MNIST/`` so that
'analysis' reads 500 MNIST test digits and 'units'/'memory' 200 (without it, the explorer's 40 gallery digits). A view whose tab is not
on the page (e.g. 'analysis' before it exists) is skipped with a note; Reconstruct without a VAE
checkpoint shows how to train one. To add a view, write ``shoot_<view>(page)`` (open its tab, run it,
wait for the result) and add it to ``VIEWS``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_TEMP_DIR", tempfile.mkdtemp(prefix="rnnviz-shots-"))

CHROMIUM = os.environ.get("RNNVIZ_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
STEP = 14  # the step every step view is shown at


class Skip(Exception):
    """This view cannot be taken here (its tab is missing)."""


def open_tab(page, name: str):
    tab = page.get_by_role("tab", name=name, exact=False)
    if tab.count() == 0:
        raise Skip(f"no tab named {name!r} on the page")
    tab.first.click()


def loaded(page, view: str) -> str:
    """The id of the payload the step view ``view`` drew last ('' before its first)."""
    return page.evaluate(f"document.querySelector('#{view}_view [data-loaded]')?.dataset.loaded ?? ''")


def run(page, view: str, button: str, step: int, timeout: float = 60_000):
    """Press ``button``, wait until the step view ``view`` has drawn what it sent, and show ``step``
    (the views are drawn in the browser: the step is set there, with no request)."""
    before = loaded(page, view)
    page.click(button)
    page.wait_for_function(f"(document.querySelector('#{view}_view [data-loaded]')?.dataset.loaded ?? '') !== "
                           f"'{before}'", timeout=timeout)
    page.evaluate(f"window.rnnviz.setStep('{view}', {step})")
    page.wait_for_timeout(300)


def set_number(page, elem: str, value):
    box = page.locator(f"#{elem} input")
    box.fill(str(value))
    box.press("Tab")


# ---- one function per view: open the tab, run it, leave it at an interesting step ----------------
def shoot_generate(page):
    open_tab(page, "Generate & step")
    set_number(page, "seed", 0)
    run(page, "gen", "#generate", STEP)


def shoot_complete(page):
    open_tab(page, "Complete")
    page.locator("#test_gallery .thumbnail-item").nth(28).click()
    run(page, "comp", "#complete_btn", 18)


def shoot_compare(page):
    open_tab(page, "Compare cells")
    run(page, "compare", "#compare_btn", STEP)


def shoot_intervene(page):
    open_tab(page, "Intervene")
    run(page, "intervene", "#intervene_btn", STEP)


def shoot_reconstruct(page):
    open_tab(page, "Reconstruct")
    page.wait_for_timeout(500)
    if page.locator("#rec_note .rv-notice").count():  # no VAE here: the tab says how to train one
        return
    page.locator("#rec_gallery .thumbnail-item").nth(28).click()
    run(page, "rec", "#reconstruct_btn", STEP)


def shoot_analysis(page):
    open_tab(page, "Gate saturation")  # measures the page's model when opened
    page.wait_for_selector("#saturation_fig .js-plotly-plot .scatterlayer .point")
    page.wait_for_function("() => document.querySelector('#saturation_note').innerText.includes('digits')")
    page.wait_for_timeout(500)


def shoot_forcing(page):
    open_tab(page, "Teacher forcing")
    page.locator("#forcing_gallery .thumbnail-item").nth(28).click()  # picking a digit runs it
    page.wait_for_function("() => document.querySelector('#forcing_note').innerText.includes('test digit #28')")
    page.wait_for_selector("#forcing_fig .js-plotly-plot")
    page.wait_for_timeout(500)


UNIT = 186  # a unit of the shipped LSTM that tells digit classes apart, most active around row 8


def shoot_units(page):
    """Units: a click on a unit of Generate's figure opens the inspector; then UNIT and a pattern search."""
    open_tab(page, "Units")
    open_tab(page, "Generate & step")
    panel = page.locator("#gen_fig .js-plotly-plot .nsewdrag").nth(1)
    panel.scroll_into_view_if_needed()
    box = panel.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.4, box["y"] + box["height"] * 0.3)
    page.wait_for_function("() => /unit \\d+ of layer/.test(document.querySelector('#units_note').innerText)")
    set_number(page, "units_unit", UNIT)
    page.click("#units_btn")
    page.wait_for_function(f"() => document.querySelector('#units_note').innerText.includes('unit {UNIT} of')")
    page.click("#units_search_btn")
    page.wait_for_function("() => document.querySelector('#units_search_note').innerText.length > 0")
    page.wait_for_selector("#units_maps .js-plotly-plot")
    page.wait_for_timeout(800)
    page.evaluate("window.scrollTo(0, 0)")
    return region(page, "#units_explain", "#units_search_digits")


def shoot_memory(page):
    """Compare cells: memory reach of the LSTM, GRU and RNN, one digit's matrices, the timescales."""
    open_tab(page, "Compare cells")
    page.click("#compare_reach_btn")
    page.wait_for_function("() => { const gd = document.querySelector('#compare_tau_fig .js-plotly-plot');"
                           " return gd && gd.data && gd.data.length > 0; }", timeout=120_000)
    page.wait_for_timeout(800)
    return region(page, "#compare_reach_explain", "#compare_tau_fig")


def region(page, first: str, last: str, pad: int = 8) -> dict:
    """The clip (page coordinates) from the top of ``first`` to the bottom of ``last``."""
    top = page.eval_on_selector(first, "e => e.getBoundingClientRect().top + window.scrollY")
    bottom = page.eval_on_selector(last, "e => e.getBoundingClientRect().bottom + window.scrollY")
    width = page.evaluate("document.documentElement.scrollWidth")
    return {"x": 0, "y": max(0, top - pad), "width": width, "height": bottom - top + 2 * pad}


def shoot_orders(page):
    """Sample from the mixture of scan orders, then "Which order?" for that digit: the part of the
    page from the buttons' row to the chart."""
    open_tab(page, "Generate & step")
    if page.locator("#mixture_sample").count() == 0 or not page.is_visible("#mixture_sample"):
        raise Skip("no mixture of scan orders in checkpoints/mixture/")
    set_number(page, "seed", 3)
    run(page, "gen", "#mixture_sample", 27)
    page.click("#which_order")
    page.wait_for_function("(window.rnnviz.state('orders') || {}).parts")
    page.wait_for_timeout(800)
    return region(page, "#orders_view", "#orders_view")


def shoot_train(page):
    open_tab(page, "Train")  # hook: the form as a visitor first sees it (no run is started)
    page.wait_for_timeout(1000)


VIEWS = {"generate": shoot_generate, "complete": shoot_complete, "compare": shoot_compare,
         "intervene": shoot_intervene, "reconstruct": shoot_reconstruct, "analysis": shoot_analysis,
         "forcing": shoot_forcing, "units": shoot_units, "memory": shoot_memory,
         "orders": shoot_orders, "train": shoot_train}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("views", nargs="*", help=f"views to take (default: all of {', '.join(VIEWS)})")
    ap.add_argument("--out", default=str(ROOT / "docs"), help="folder for explorer_<view>.png (default docs/)")
    ap.add_argument("--checkpoint-dir", default=str(ROOT / "checkpoints"))
    ap.add_argument("--width", type=int, default=1400, help="browser window width in CSS pixels")
    ap.add_argument("--scale", type=float, default=1.0, help="device pixel ratio (2 for sharper PNGs)")
    args = ap.parse_args(argv)
    unknown = [v for v in args.views if v not in VIEWS]
    if unknown:
        ap.error(f"unknown view(s) {unknown}; choose from {list(VIEWS)}")
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"chromium is not at {CHROMIUM}: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    from rnnviz.app.operations import Explorer
    from rnnviz.app.training import TrainingService
    from rnnviz.app.ui import build_app, launch_options

    runs = Path(tempfile.mkdtemp(prefix="rnnviz-shots-runs-"))  # the page lists the shipped models only
    ex = Explorer(args.checkpoint_dir, runs / "explorer", training=TrainingService(runs / "explorer"))
    if ex.registry.default_key() is None:
        raise SystemExit(ex.no_checkpoint_message())
    demo = build_app(ex)
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1", **launch_options())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    saved = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for view in args.views or list(VIEWS):
                page = browser.new_page(viewport={"width": args.width, "height": 900},
                                        device_scale_factor=args.scale)
                page.set_default_timeout(60_000)
                page.goto(url)
                page.wait_for_selector("#gen_view [data-loaded]", state="attached")  # its first digit is drawn
                try:
                    clip = VIEWS[view](page)  # a view may return the part of the page to keep
                except Skip as e:
                    print(f"{view}: skipped ({e})")
                    page.close()
                    continue
                page.mouse.move(0, 0)
                path = out / f"explorer_{view}.png"
                page.screenshot(path=str(path), full_page=True, clip=clip)
                saved.append(path)
                print(f"{view}: {path}")
                page.close()
            browser.close()
    finally:
        demo.close()
    return saved


if __name__ == "__main__":
    main()
