"""The site's About page: the app's own About text (rnnviz/app/about.md, read as a file; rnnviz.app
is not imported), with its TeX turned into plain HTML (sub/superscripts and Unicode symbols), because
the page may load no maths renderer from another host. Only the TeX that about.md uses is known."""

from __future__ import annotations

import html
import re
from pathlib import Path

ABOUT = Path(__file__).resolve().parent.parent / "app" / "about.md"
STOP = "### The VAE"  # the sections after it describe tabs the static page does not have

SYMBOLS = {"sigma": "\u03c3", "odot": "\u2299", "in": "\u2208", "mid": "|", "sum": "\u2211", "ell": "\u2113",
           "dots": "\u2026", "ldots": "\u2026", "cdot": "\u00b7", "le": "\u2264", "ge": "\u2265", "times": "\u00d7",
           "tanh": "tanh", "log": "log", "exp": "exp", "qquad": "\u2003\u2003", "quad": "\u2003",
           "big": "", "Big": "", "bigl": "", "bigr": "", "left": "", "right": "", "begin": "", "end": "",
           ",": "\u2009", ";": "\u2009", " ": " ", "\\": "<br>", "|": "\u2016"}
BLACKBOARD = {"R": "\u211d", "N": "\u2115", "E": "\U0001d53c"}
TOKEN = re.compile(r"\\([A-Za-z]+|.)|([{}_^&])|([^\\{}_^&]+)", re.DOTALL)


def tex_html(tex: str) -> str:
    """TeX (as in about.md) to HTML: x_{t-1} -> x<sub>t-1</sub>, \\sigma -> σ, \\text{row} -> row."""
    tokens = TOKEN.findall(tex)
    pos = 0

    def group() -> str:  # the next {...} or single token, converted
        nonlocal pos
        if pos < len(tokens) and tokens[pos][1] == "{":
            pos += 1
            out = seq(until="}")
            pos += 1
            return out
        if pos < len(tokens) and len(tokens[pos][2]) > 1:  # x_t + 1: only the "t" goes down
            text = tokens[pos][2]
            tokens[pos] = ("", "", text[1:])
            return html.escape(text[0])
        return seq(single=True)

    def seq(until: str | None = None, single: bool = False) -> str:
        nonlocal pos
        out = []
        while pos < len(tokens):
            cmd, special, text = tokens[pos]
            if special == until == "}":
                break
            pos += 1
            if cmd in ("text", "operatorname", "mathrm"):
                out.append(group())
            elif cmd == "mathbb":
                inner = group()
                out.append(BLACKBOARD.get(inner, inner))
            elif cmd in ("begin", "end"):
                group()  # the environment's name
            elif cmd:
                out.append(SYMBOLS.get(cmd, html.escape(cmd)))
            elif special in ("_", "^"):
                tag = "sub" if special == "_" else "sup"
                out.append(f"<{tag}>{group()}</{tag}>")
            elif special == "{":
                out.append(seq(until="}"))
                pos += 1
            elif special == "&":  # between aligned equations
                out.append("\u2003\u2003")
            elif text:
                out.append(html.escape(text))
            if single:
                break
        return "".join(out)

    return re.sub(r"\s*<br>\s*", "<br>", seq().strip())


def about_html(text: str | None = None) -> str:
    """The About sections as HTML: display equations as blocks, inline ones in line."""
    from markdown_it import (
        MarkdownIt,  # a dependency of gradio, so installed with rnnviz
    )

    text = (ABOUT.read_text(encoding="utf-8") if text is None else text).split(STOP)[0]
    maths: list[str] = []

    def hold(m: re.Match) -> str:  # keep the TeX away from markdown (its _ and * mean emphasis)
        maths.append(m.group(0))
        return f"MATH{len(maths) - 1}X"

    text = re.sub(r"\$\$.*?\$\$|\$[^$\n]+\$", hold, text, flags=re.DOTALL)
    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    out = md.render(text)

    def put(m: re.Match) -> str:
        tex = maths[int(m.group(1))]
        if tex.startswith("$$"):
            return f'<div class="rv-eq">{tex_html(tex[2:-2])}</div>'
        return f'<span class="rv-math">{tex_html(tex[1:-1])}</span>'

    out = re.sub(r"<p>MATH(\d+)X</p>", put, out)
    return re.sub(r"MATH(\d+)X", put, out)


def about_page(title: str) -> str:
    return ('<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
            'content="width=device-width, initial-scale=1"><link rel="icon" href="data:,">'
            f'<title>About: {html.escape(title)}</title><link rel="stylesheet" href="style.css"></head>'
            '<body class="rv-about-page"><main><p><a href="index.html">\u2190 back to the explorer</a></p>'
            f'<h1>About</h1>{about_html()}</main></body></html>')
