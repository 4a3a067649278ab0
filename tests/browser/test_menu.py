"""The header's model menu in a real headless Chromium: quick picks across every model and the VAE,
on Generate & step and on Intervene, as a teacher clicks in front of a class.

Each pick sends one request to redraw (Gradio 6's Dropdown sends ``.input`` twice per pick, and the
guard's one-pending-job-per-endpoint rule refused the second as "busy"), shows no error toast and no
Error badge, and the view ends on the picked model. Picking the unconditional VAE while a digit is
chosen switches the digit to *any*, with one note (not an error). Skipped without chromium, as
tests/browser/test_explorer.py.
"""

import json
import re

import pytest

from rnnviz.app.operations import ROW_EDITS
from rnnviz.interventions import presets_for
from tests.browser import browser_page, served_explorer

NAMES = ("mnist_lstm", "mnist_gru", "mnist_rnn", "mnist_vae")
CELLS = {"mnist_lstm": "lstm", "mnist_gru": "gru", "mnist_rnn": "rnn", "mnist_vae": "lstm"}
PICKS = ("mnist_gru", "mnist_rnn", "mnist_vae", "mnist_lstm", "mnist_rnn", "mnist_gru", "mnist_vae",
         "mnist_rnn", "mnist_lstm", "mnist_gru")  # 10 picks: every model, the VAE twice

# every toast and every Error badge that ever appears, kept even once it is gone
WATCH_JS = """
window.__seen = {toasts: [], badges: []};
new MutationObserver(() => {
  for (const t of document.querySelectorAll('[data-testid=toast-body]')) {
    if (t.__seen) continue; t.__seen = true;
    window.__seen.toasts.push({cls: t.className, text: t.innerText});
  }
  for (const b of document.querySelectorAll('span.error')) {
    if (b.__seen || !b.innerText.trim()) continue; b.__seen = true;
    const host = b.closest('[id]');
    window.__seen.badges.push({id: host ? host.id : '', text: b.innerText});
  }
}).observe(document, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with served_explorer(tmp_path_factory.mktemp("menu"), NAMES, training=False) as (url, _):
        names = {d["id"]: d.get("api_name") for d in json.loads(_get(url + "config"))["dependencies"]}
        yield url, names


def _get(url: str) -> str:
    import httpx

    return httpx.get(url, timeout=30).text


JOB_ROUTES = re.compile(r"/gradio_api/(queue/join|run/predict)")


class Requests:
    """The jobs the page asks for (by endpoint name) and the ones the server refused."""

    def __init__(self, page, names: dict):
        self.sent, self.refused = [], []
        page.on("request", self._request(names))
        page.on("response", lambda r: JOB_ROUTES.search(r.url) and r.status >= 400 and self.refused.append(r.status))

    def _request(self, names):
        def on(r):
            if JOB_ROUTES.search(r.url):  # queued (join) or answered directly (run/predict, Generate's)
                self.sent.append(names.get(json.loads(r.post_data or "{}").get("fn_index")))
        return on

    def take(self) -> list:
        out, self.sent = self.sent, []
        return out


def pick(page, menu: str, text: str):
    page.click(f"#{menu} input")
    page.locator("ul[role=listbox] li", has_text=text).first.click()


def seen(page) -> dict:
    return page.evaluate("window.__seen")


def summary_names(page, name: str):
    """Wait until Generate's summary (drawn by the last pick) names ``name``."""
    page.wait_for_function("(n) => document.querySelector('#gen_summary').textContent.includes(n + ':')", arg=name)


def switch_ten_times(page, requests: Requests, tab: str):
    for name in PICKS:
        pick(page, "checkpoint", name)
        page.wait_for_timeout(1000)
        summary_names(page, name)
        if name == "mnist_vae":  # unconditional: the digit follows
            assert page.is_checked("#digit input[value='any']")
            if tab == "Intervene":  # its own digit follows too (a listener of its own)
                page.wait_for_function("() => document.querySelector(\"#intervene_digit input[value='any']\").checked")
        if tab == "Intervene":
            page.wait_for_function(
                "(n) => document.querySelector('#model_info').textContent.includes(n)", arg=name)
            kind = page.input_value("#intervene_kind input")
            assert kind in list(presets_for(CELLS[name])) + list(ROW_EDITS), (name, kind)
        found, sent = seen(page), requests.take()
        assert not [t for t in found["toasts"] if "error" in t["cls"]], (name, found["toasts"], sent)
        assert found["badges"] == [], (name, found["badges"], sent)
        assert requests.refused == [], (name, sent)
        assert sent.count("generate_with_model") == 1, (name, sent)  # one redraw per pick


def test_ten_quick_picks_on_generate_and_on_intervene(app):
    url, names = app
    with browser_page(url) as page:
        page.evaluate(WATCH_JS)
        requests = Requests(page, names)
        page.wait_for_timeout(500)
        requests.take()
        page.check("#digit input[value='7']")  # a digit is chosen when the VAE is picked
        switch_ten_times(page, requests, "Generate & step")
        # quicker than a redraw: the last pick is drawn once the running one ends (none is refused)
        for name in ("mnist_rnn", "mnist_lstm", "mnist_gru"):
            pick(page, "checkpoint", name)
            page.wait_for_timeout(150)
        summary_names(page, "mnist_gru")
        found = seen(page)
        assert requests.refused == [] and found["badges"] == [], (found, requests.take())
        assert not [t for t in found["toasts"] if "error" in t["cls"]], found["toasts"]
        # the first VAE pick found digit 7 chosen: it switched to 'any' and said so in one note, not an error
        vae_notes = [t for t in seen(page)["toasts"] if "unconditional" in t["text"]]
        assert len(vae_notes) == 1 and "error" not in vae_notes[0]["cls"], vae_notes

        page.get_by_role("tab", name="Intervene").click()
        page.wait_for_timeout(1000)
        page.check("#intervene_digit input[value='7']")
        requests.take()
        switch_ten_times(page, requests, "Intervene")

        # the intervention menu: one request per pick, its help follows, no badge
        current = page.input_value("#intervene_kind input")
        for kind in [k for k in presets_for("gru") if k != current][:2]:
            pick(page, "intervene_kind", kind)
            page.wait_for_timeout(1000)
            assert requests.take().count("intervene_kind") == 1
            page.wait_for_function("(h) => document.querySelector('#intervene_help').textContent.includes(h)",
                                   arg=presets_for("gru")[kind].help[:40])
        found = seen(page)
        assert requests.refused == [] and found["badges"] == []
        assert not [t for t in found["toasts"] if "error" in t["cls"]], found["toasts"]
