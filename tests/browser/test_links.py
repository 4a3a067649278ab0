"""Deep links in the Gradio app, in headless Chromium: the address opens its view at its step, Copy
link gives it back with the step the visitor scrubbed to in the page (and puts it in the address
bar), a hostile address shows a note as text and runs nothing."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.browser import ApiRequests, browser_page, served_explorer, view_state, wait_step


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with served_explorer(tmp_path_factory.mktemp("links"), training=False) as (url, _):
        yield url


def test_a_deep_link_opens_its_view_and_copy_link_gives_it_back(app_url):
    query = "model=mnist_gru&digit=3&seed=5&temperature=0.8&t=14&tab=generate"
    with browser_page(f"{app_url}?{query}") as page:
        wait_step(page, "gen", 14)
        assert page.is_checked("#digit input[value='3']")
        assert page.input_value("#seed input") == "5"
        assert page.input_value("#gen_step") == "14" and page.input_value("#gen_step_box") == "14"
        state = view_state(page)
        assert state["step"] == 14 and state["layers"][0].keys() == {"r", "z", "n", "h"}  # the GRU's trace
        assert "mnist_gru" in page.inner_text("#model_info")
        assert page.inner_text("#link_note").strip() == ""
        page.click("#copy_link")
        page.wait_for_function("() => document.querySelector('#view_link textarea, #view_link input')?.value"
                               ".startsWith('http')")
        link = page.input_value("#view_link textarea, #view_link input")
        assert link.startswith(app_url)
        assert parse_qs(urlsplit(link).query) == parse_qs(query)
        assert page.evaluate("window.location.href") == link  # the address bar follows
        # the step lives in the page: scrubbing sends nothing, and Copy link reads it from the view
        requests = ApiRequests(page)
        requests.settle()  # what the last action set off is done
        page.locator("#gen_step").fill("9")
        wait_step(page, "gen", 9)
        assert requests.take() == []
        page.click("#copy_link")
        page.wait_for_function("() => (document.querySelector('#view_link textarea, #view_link input')?.value || '')"
                               ".includes('t=9')")
        link = page.input_value("#view_link textarea, #view_link input")
        assert parse_qs(urlsplit(link).query) == {**parse_qs(query), "t": ["9"]}


def test_a_hostile_deep_link_falls_back_with_a_visible_note(app_url):
    dialogs = []
    hostile = "?model=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E&seed=abc&t=99&tab=%3Cscript%3Ealert(2)%3C%2Fscript%3E"
    with browser_page(app_url + hostile) as page:
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.wait_for_selector("#link_note .rv-link-note")
        note = page.inner_text("#link_note")
        assert "ignored model=" in note and "ignored seed=" in note and "ignored t=" in note
        assert "<img src=x onerror=alert(1)>" in note  # shown as text
        assert page.locator("#link_note img").count() == 0 and page.locator("#link_note script").count() == 0
        wait_step(page, "gen", 27)  # t=99 is ignored: the view opens as without t, on the whole image
        assert page.is_checked("#digit input[value='7']") and page.input_value("#seed input") == "0"
        page.wait_for_timeout(300)
    assert dialogs == []
