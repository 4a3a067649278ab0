"""Every tab with a view opens from a deep link at that view (the linked step and settings), and its
Copy link gives back the same link (links once opened every tab but Generate empty)."""

from contextlib import contextmanager
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.browser import ARGS, CHROMIUM, served_explorer, sync_api, view_state

# tab -> (its link, the step view it draws or None, a check of what the page shows)
LINKS = {
    "compare": ("tab=compare&models=mnist_gru%2Cmnist_lstm&digit=4&seed=2&temperature=0.8&t=20", "compare"),
    "intervene": ("tab=intervene&model=mnist_lstm&kind=forget+everything+%28f+%3D+0%29&from=5&through=9"
                  "&units=all&digit=3&seed=1&temperature=1&t=12", "intervene"),
    "complete": ("tab=complete&model=mnist_lstm&test=3&keep=10&n=4&as=auto&seed=2&temperature=1&k=2&t=16", "comp"),
    "reconstruct": ("tab=reconstruct&model=mnist_vae&test=5&seed=1&temperature=1&t=9", "rec"),
    "units": ("tab=units&model=mnist_lstm&unit=17&layer=0", None),
    "forcing": ("tab=forcing&model=mnist_gru&test=4&keep=6&seed=3&temperature=0.6", None),
}
COPY = {"compare": "#compare_copy_link", "intervene": "#intervene_copy_link", "complete": "#complete_copy_link",
        "reconstruct": "#rec_copy_link", "units": "#units_copy_link", "forcing": "#forcing_copy_link"}
BOX = {k: v.replace("_copy_link", "_link") for k, v in COPY.items()}


@contextmanager
def opened(url: str):
    """The page on ``url`` once Generate's view (drawn on every load, hidden behind the linked tab)
    has its digit; JavaScript errors fail the test."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(url)
        pg.wait_for_selector("#gen_view [data-loaded]", state="attached")
        yield pg
        browser.close()
        assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with served_explorer(tmp_path_factory.mktemp("tablinks"), names=("mnist_lstm", "mnist_gru", "mnist_vae"),
                         training=False) as (url, ex):
        yield url


@pytest.mark.parametrize("tab", sorted(LINKS))
def test_a_link_opens_its_tab_at_its_view_and_copy_link_gives_it_back(app, tab):
    query, view = LINKS[tab]
    with opened(f"{app}?{query}") as pg:
        assert pg.locator("#link_note").inner_text().strip() == ""  # nothing ignored
        asked = dict(parse_qsl(query))
        if view is not None:
            pg.wait_for_selector(f"#{view}_view [data-loaded]", state="attached")
            s = view_state(pg, view)
            assert s["step"] == int(asked["t"])
            if tab == "compare":
                assert [c["model"] for c in s["columns"]] == ["mnist_gru", "mnist_lstm"]
                assert all(c["label"] == 4 for c in s["columns"])
            elif tab == "intervene":
                assert s["extra"]["steps"] == list(range(5, 10))
                assert all(c["label"] == 3 for c in s["columns"])
            elif tab == "complete":
                assert s["keepRows"] == 10
        elif tab == "units":
            pg.wait_for_function("document.querySelector('#units_note').innerText.includes('unit 17')")
        else:
            pg.wait_for_function("document.querySelector('#forcing_note').innerText.includes('#4')")
        pg.click(COPY[tab])
        pg.wait_for_function(f"document.querySelector('{BOX[tab]} textarea, {BOX[tab]} input').value.includes('?')")
        link = pg.input_value(f"{BOX[tab]} textarea, {BOX[tab]} input")
        assert dict(parse_qsl(urlsplit(link).query)) == asked
