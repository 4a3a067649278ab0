"""The documentation: the README (also the Hugging Face Space's card), CONTRIBUTING.md and docs/*.md.

Every relative link and image points to a file of this repository that exists, and a link's
``#anchor`` to a heading of its target (as GitHub names headings); the README stays short and links
every page of docs/; its deep-link examples open their tab with nothing ignored. Pure text, plus
``rnnviz.app.links`` for the deep links: no server, about a second.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote

import pytest

from tests import ROOT

README = ROOT / "README.md"
README_MAX_LINES = 260
PAGES = [README, ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)  # fenced code blocks
CODE_SPAN = re.compile(r"(`+)(?!`)(?:(?!\n[ \t]*\n).)+?(?<!`)\1(?!`)", re.DOTALL)  # inline code, within a paragraph
LINK = re.compile(r"!?\[([^\]]*)\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")  # [text](target), ![alt](src)
HTML_REF = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']+)["']""")
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.IGNORECASE)  # https:, mailto:, //host


def _prose(text: str) -> str:
    """The text outside code: fenced blocks dropped, inline code replaced by a placeholder."""
    if text.startswith("---\n"):  # YAML front matter (the Space card)
        text = text[4:].partition("\n---\n")[2]
    return CODE_SPAN.sub("code", FENCE.sub("", text))


def links(path: Path) -> list[str]:
    """Every link and image target of a Markdown file, outside code."""
    prose = _prose(path.read_text(encoding="utf-8"))
    return [m.group(2) for m in LINK.finditer(prose)] + HTML_REF.findall(prose)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text, lower case, without punctuation, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """The anchors of a Markdown file's headings (GitHub numbers repeats: x, x-1, x-2, ...)."""
    text = path.read_text(encoding="utf-8")
    if text.startswith("---\n"):
        text = text[4:].partition("\n---\n")[2]
    seen: dict[str, int] = {}
    out = set()
    for m in HEADING.finditer(FENCE.sub("", text)):
        s = slug(m.group(2))
        n = seen.get(s, 0)
        seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with each relative link of ``path``: a missing file, a missing heading, a path
    that leaves the repository ``root``."""
    problems = []
    for target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path.resolve()
        where = f"{path.relative_to(root)}: ({target})"
        if not dest.is_relative_to(root):
            problems.append(f"{where} leaves the repository")
        elif not dest.exists():
            problems.append(f"{where} points to {dest.relative_to(root)}, which does not exist")
        elif anchor and dest.suffix == ".md" and unquote(anchor).lower() not in anchors(dest):
            problems.append(f"{where}: {dest.relative_to(root)} has no heading #{anchor}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_image_points_to_a_file_and_heading_that_exist(page):
    assert links(page), f"{page.name}: no link found (is the link pattern still right?)"
    assert broken_links(page) == []


def test_the_link_check_sees_a_broken_file_a_broken_anchor_and_a_way_out(tmp_path):
    """The check itself: each kind of broken link is reported, and code is not read as links."""
    root = tmp_path.resolve()
    (root / "docs").mkdir()
    (root / "docs" / "explorer.md").write_text("# The explorer\n\n## Generate & step\n\n```\n# not a heading\n```\n")
    page = root / "docs" / "page.md"
    page.write_text("# Title\n\n![a](no_such.png) [b](explorer.md#no-such-heading) [c](../../etc/passwd)\n"
                    "[d](explorer.md#generate--step) [e](#title) [f](https://example.org/x) [g\ntwo lines](explorer.md)\n"
                    "`[h](not_a_link.md)` [i](explorer.md#not-a-heading)\n\n```\n[j](in_code.md)\n```\n")
    problems = broken_links(page, root)
    assert len(problems) == 4, problems
    assert "no_such.png" in problems[0] and "does not exist" in problems[0]
    assert "no heading #no-such-heading" in problems[1]
    assert "leaves the repository" in problems[2]
    assert "no heading #not-a-heading" in problems[3]


def test_github_anchors():
    assert slug("Generate & step") == "generate--step"
    assert slug("Reconstruct (VAE)") == "reconstruct-vae"
    assert slug("Training at scale: torchrun, DDP and GPUs") == "training-at-scale-torchrun-ddp-and-gpus"
    assert slug("The `rnnviz` [map](x.md)") == "the-rnnviz-map"


def test_the_readme_is_short_and_links_every_page_of_docs():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/"
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in links(README) if not EXTERNAL.match(t)}
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert page.resolve() in linked, f"README.md does not link {page.relative_to(ROOT)}"


def test_the_readme_keeps_its_quick_start_commands():
    text = README.read_text(encoding="utf-8")
    for command in (
            "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && .venv/bin/python explorer.py",
            ".venv/bin/pip install -r requirements-dev.txt && .venv/bin/python -m pytest",
            ".venv/bin/python -m rnnviz.site --out site/ && .venv/bin/python -m http.server -d site/ 8000"):
        assert command in text, command


def test_the_readme_deep_links_open_their_tab_with_nothing_ignored():
    """Each example link of the README parses, on the shipped models, to its tab with every setting
    that tab's link holds and no note; and every tab with a link has an example."""
    from rnnviz.app import links as deep
    from rnnviz.interventions import PRESETS

    ctx = deep.Context(models=tuple(sorted(p.stem for p in (ROOT / "checkpoints").glob("*.safetensors"))),
                       tabs=tuple(deep.TAB_SETTINGS), kinds=tuple(PRESETS))
    examples = re.findall(r"`(\?tab=[^`]+)`", README.read_text(encoding="utf-8"))
    tabs = set()
    for query in examples:
        asked = dict(parse_qsl(query[1:], keep_blank_values=True))
        view, notes = deep.parse(asked, ctx)
        assert notes == [], (query, notes)
        assert view.tab == asked["tab"] and view.given == {*deep.TAB_SETTINGS[view.tab], "tab"}, query
        tabs.add(view.tab)
    assert tabs == set(deep.TAB_SETTINGS)
