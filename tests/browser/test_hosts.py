"""Both hosts draw with the same view modules: given the same trace, the Gradio app and the static
page put the same pixels on every canvas (the digit, the finished image, every gate and state grid,
every units x time panel) at every step tried, and a model of another scan order fills its canvas
line by line in its order on both."""

import pytest

from rnnviz import ModelConfig
from rnnviz.site import export_site
from tests import app as apps
from tests.browser import chromium, serving, static_site

CANVASES = """(name) => {
  const root = name ? document.querySelector('#' + name + '_view') : document.querySelector('#panel_generate');
  // the step view's canvases (the static page's Generate panel also holds "which order?", the app has it apart)
  return [...root.querySelectorAll('canvas')].filter((c) => !c.closest('#orders'))
    .map((c) => c.width + 'x' + c.height + ':' + c.toDataURL());
}"""


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    """The app and the static page serving the same tiny models (rows and a column order)."""
    from rnnviz.app.operations import Explorer
    from rnnviz.app.training import TrainingService

    tmp = tmp_path_factory.mktemp("hosts")
    configs = {"mnist_lstm": ModelConfig(hidden=32, head_hidden=64, layers=2),
               "mnist_cols": ModelConfig(cell="gru", hidden=24, head_hidden=56, order="cols_rl_bu")}
    ckpts = apps.tiny_checkpoints(tmp / "checkpoints", configs)
    out = tmp / "site"
    export_site(sorted(ckpts.glob("*.safetensors")), out)
    ex = Explorer(ckpts, tmp / "runs", training=TrainingService(tmp / "runs", enabled=False,
                                                                disabled_reason="off in this test"))
    with static_site(out) as site_url, serving(ex) as app_url:
        yield app_url, site_url


@pytest.mark.parametrize("model", ["mnist_lstm", "mnist_cols"])
def test_the_same_trace_gives_the_same_pixels_on_both_hosts(hosts, model):
    app_url, site_url = hosts
    with chromium() as browser:
        errors = []
        app = browser.new_page(viewport={"width": 1400, "height": 1000})
        app.on("pageerror", lambda e: errors.append(str(e)))
        app.goto(f"{app_url}?model={model}&digit=3&seed=11&t=5")
        app.wait_for_selector("#gen_view [data-loaded]", state="attached", timeout=180_000)
        payload = app.evaluate("window.rnnviz.payload('gen')")
        site = browser.new_page(viewport={"width": 1400, "height": 1000})
        site.on("pageerror", lambda e: errors.append(str(e)))
        site.goto(site_url)
        site.wait_for_selector("body[data-ready='1']", state="attached", timeout=180_000)
        site.evaluate("([p, t]) => window.rnnviz.showPayload(p, t)", [payload, 5])
        state = site.evaluate("window.rnnviz.state()")
        assert state["order"] == ("cols_rl_bu" if model == "mnist_cols" else "rows")
        for step in (5, 0, 17, 27):
            app.evaluate("(t) => window.rnnviz.setStep('gen', t)", step)
            site.evaluate("(t) => window.rnnviz.setStep(t)", step)
            a, s = app.evaluate(CANVASES, "gen"), site.evaluate(CANVASES, "")
            assert len(a) == len(s) >= 3 and a == s, f"step {step}: the hosts' canvases differ"
        assert not errors
        if model == "mnist_cols":  # column order: at step 0 only the rightmost column is drawn (p(on))
            app.evaluate("window.rnnviz.setStep('gen', 0)")
            px = app.evaluate("""() => { const c = document.querySelector('#gen_canvas_px');
              const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, fut = window.rnnvizRules.canvas.future;
              const cols = new Set();
              for (let q = 0; q < c.width * c.height; q++)
                if (d[4 * q] !== fut[0] || d[4 * q + 1] !== fut[1] || d[4 * q + 2] !== fut[2]) cols.add(q % c.width);
              return [...cols]; }""")
            assert px == [27]

