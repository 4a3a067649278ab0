"""The mixture of scan orders in the browser, on both hosts: "Sample from the mixture" (the app) and
picking the mixture (the static page) draw the part the seed picks and show the digit
Mixture.sample_traces draws, in its part's order; "Which order?" shows Mixture.which_order's numbers
(the app computes them on the server, the static page in model.js, the same OrderChart draws them)."""

import numpy as np
import pytest
import torch

from rnnviz import ModelConfig, RowModel, save_checkpoint
from rnnviz.mixture import Mixture, load_mixture, save_mixture
from rnnviz.site import export_site
from tests.browser import chromium, serving, static_site

ORDERS = ("rows", "cols", "rows_bu_rl")
SEED, DIGIT = 5, 3


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    """(app URL, static page URL, the mixture): tiny models of three orders, listed one by one and
    as the mixture in ``mixture/``, on both hosts."""
    from rnnviz.app.operations import Explorer
    from rnnviz.app.training import TrainingService

    tmp = tmp_path_factory.mktemp("mixture_hosts")
    ckpts, parts = tmp / "checkpoints", []
    (ckpts / "mixture").mkdir(parents=True)
    for k, order in enumerate(ORDERS):
        torch.manual_seed(k)
        model = RowModel(ModelConfig(hidden=16, head_hidden=32, order=order)).eval()
        with torch.no_grad():  # trained-looking magnitudes: posteriors that are not all alike
            for p in model.parameters():
                p.mul_(2.0)
        save_checkpoint(ckpts / f"tiny_{order}.safetensors", model, {"test_nll": 500.0})
        parts.append(model)
    mix_path = save_mixture(ckpts / "mixture" / "tiny_mixture.safetensors",
                            Mixture(parts, [f"tiny_{o}" for o in ORDERS]))
    export_site(sorted(ckpts.glob("*.safetensors")) + [mix_path], tmp / "site")
    ex = Explorer(ckpts, tmp / "runs", training=TrainingService(tmp / "runs", enabled=False,
                                                                disabled_reason="off in this test"))
    with static_site(tmp / "site") as site_url, serving(ex) as app_url:
        yield app_url, site_url, load_mixture(mix_path)


def check_orders(shown: dict, mixture: Mixture, image: np.ndarray, drew: int):
    want = mixture.which_order(image)
    assert shown["drew"] == drew
    assert shown["nll"] == pytest.approx(want["nll"], abs=1e-3)
    assert [p["order"] for p in shown["parts"]] == list(ORDERS)
    for s, w in zip(shown["parts"], want["parts"]):
        assert s["nll"] == pytest.approx(w["nll"], abs=1e-3)
        assert s["posterior"] == pytest.approx(w["posterior"], abs=1e-4)
        np.testing.assert_allclose(s["lineNll"], w["line_nll"], atol=1e-3)


def test_both_hosts_sample_the_mixture_and_say_which_order(hosts):
    app_url, site_url, mixture = hosts
    k, (want,) = mixture.sample_traces(1, y=DIGIT, seed=SEED)
    assert k == mixture.choose_part(SEED)
    with chromium() as browser:
        errors = []
        site = browser.new_page(viewport={"width": 1400, "height": 1400})
        site.on("pageerror", lambda e: errors.append(str(e)))
        site.goto(f"{site_url}?model=tiny_mixture&seed={SEED}&digit={DIGIT}")
        site.wait_for_selector("body[data-ready='1']")
        st = site.evaluate("window.rnnviz.state()")
        assert st["drew"] == {"mixture": "tiny_mixture", "part": k}
        np.testing.assert_array_equal(np.array(st["image"], np.uint8), want.image)
        assert st["order"] == ORDERS[k]
        assert f"drew part {k + 1} of 3" in site.inner_text("#gen_summary")
        site.click("#which_order")  # the button says it is working, then the view shows
        site.wait_for_function("window.rnnviz.orders() !== null && !document.getElementById('which_order').disabled")
        assert site.inner_text("#which_order") == "Which order?"
        check_orders(site.evaluate("window.rnnviz.orders()"), mixture, want.image, k)
        assert site.is_visible("#orders") and site.locator("#orders canvas.rv-orders-map").count() == 3

        app = browser.new_page(viewport={"width": 1400, "height": 1400})
        app.on("pageerror", lambda e: errors.append(str(e)))
        app.goto(app_url)
        app.wait_for_selector("#gen_view [data-loaded]")
        app.locator("#digit label").filter(has_text=str(DIGIT)).first.click()
        app.wait_for_timeout(300)
        before = app.evaluate("window.rnnviz.state('gen').id")
        app.fill("#seed input", str(SEED))
        app.dispatch_event("#seed input", "change")
        app.click("#mixture_sample")
        app.wait_for_function(f"(window.rnnviz.state('gen') || {{}}).label === {DIGIT} && "
                              f"window.rnnviz.state('gen').id !== {before} && "
                              f"window.rnnviz.state('gen').order === '{ORDERS[k]}'")
        st = app.evaluate("window.rnnviz.state('gen')")
        np.testing.assert_array_equal(np.array(st["image"], np.uint8), want.image)
        app.wait_for_function(f"document.querySelector('#checkpoint input').value.startsWith('tiny_{ORDERS[k]}')")
        assert f"part {k + 1} of 3" in app.inner_text("#gen_summary")
        app.click("#which_order")
        app.wait_for_function("(window.rnnviz.state('orders') || {}).parts")
        check_orders(app.evaluate("window.rnnviz.state('orders')"), mixture, want.image, k)
        assert errors == []

