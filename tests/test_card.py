"""The README's front matter is the Hugging Face Space card: keep it valid for the plans of today.

A ZeroGPU Space (the free route for a Gradio app, up to 2 per account) supports Python 3.10.13 and
3.12.12 only, so the card must name one of those; the code itself is checked on 3.10 and 3.12 by
``.ci/run`` (vermin with the oldest target, and a byte-compile with each interpreter it finds).
"""

from __future__ import annotations

from pathlib import Path

import gradio
import yaml

from tests import ROOT


def front_matter(path: Path) -> dict:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("---\n"), f"{path.name} must start with a '---' front-matter block"
    block, _, _ = text[4:].partition("\n---\n")
    card = yaml.safe_load(block)
    assert isinstance(card, dict), "the front matter must be a YAML mapping"
    return card


def test_space_card_is_valid_for_a_gradio_space_on_zerogpu():
    card = front_matter(ROOT / "README.md")
    assert card["sdk"] == "gradio"
    assert (ROOT / card["app_file"]).is_file()
    assert isinstance(card["python_version"], str), "quote python_version, or YAML reads 3.10 as 3.1"
    assert card["python_version"] in {"3.10", "3.12"}, "ZeroGPU runs Python 3.10.13 or 3.12.12 only"
    assert card["sdk_version"] == gradio.__version__, "the Space should run the Gradio the tests ran"
    assert len(card["short_description"]) <= 60, "the Hub refuses a short_description over 60 characters"
    for key in ("title", "emoji", "colorFrom", "colorTo"):
        assert card.get(key), f"the card needs {key}"
    colours = {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert card["colorFrom"] in colours and card["colorTo"] in colours


def test_requirements_pin_the_gradio_of_the_card():
    card = front_matter(ROOT / "README.md")
    reqs = (ROOT / "requirements.txt").read_text().split()
    gradio_req = [r for r in reqs if r.startswith("gradio")]
    assert gradio_req, "requirements.txt must list gradio"
    # the Space installs sdk_version itself; the requirement must admit it
    from packaging.specifiers import SpecifierSet
    spec = SpecifierSet(gradio_req[0][len("gradio"):])
    assert card["sdk_version"] in spec
