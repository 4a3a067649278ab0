"""One table of the rules both front ends share (rnnviz.rules): the page's JavaScript reads every
colour, name, description, limit and URL setting from it and writes none of them again."""

import json
import re
from pathlib import Path

import pytest

from rnnviz import cells, render, rules
from rnnviz.app import inputs, links
from rnnviz.site import STATIC, export_site

JS = sorted(STATIC.glob("*.js"))
CSS = sorted(STATIC.glob("*.css"))
APP_JS = Path(inputs.__file__).with_name("page.js")


def sources(files) -> dict[str, str]:
    return {f.name: f.read_text(encoding="utf-8") for f in files}


def test_python_reads_the_table():
    assert cells.STATE_NAMES is rules.STATE_NAMES and cells.DESCRIPTIONS is rules.DESCRIPTIONS
    assert render.GATE_SCALE.anchors == rules.VIRIDIS and render.PROB_SCALE.anchors == rules.INFERNO
    assert render.TANH_SCALE.anchors == rules.BLUE_WHITE_RED
    for name, (label, lo, hi, default, step, integer) in rules.LIMITS.items():
        lim = inputs.LIMITS[name]
        assert (lim.label, lim.lo, lim.hi, lim.default, lim.step, lim.integer) == (label, lo, hi, default, step, integer)
    assert links.SEED_MAX == rules.SEED_MAX and inputs.DIGITS == list(rules.DIGITS)
    assert links.Context(models=()).temperature == (rules.LIMITS["temperature"][1], rules.LIMITS["temperature"][2])


def test_the_site_writes_the_same_json(tmp_path):
    ckpt = Path(__file__).resolve().parent.parent / "checkpoints" / "mnist_lstm.safetensors"
    if not ckpt.exists():
        pytest.skip("shipped checkpoint missing")
    export_site([ckpt], tmp_path / "site")
    assert json.loads((tmp_path / "site" / "rules.json").read_text()) == json.loads(json.dumps(rules.as_json()))


def literal_values():
    """Every value of the table that would betray a copy if it stood in the page's code: colours,
    descriptions, the seed limit."""
    colours = set(rules.VIRIDIS + rules.BLUE_WHITE_RED + rules.INFERNO) | set(rules.CELL_COLORS.values())
    colours |= {rules.ROW_MARK, rules.BAR_GENERATED, rules.BAR_KEPT, rules.OTHER_COLOR, rules.INTERVENED}
    colours |= set(rules.RUN_COLORS.values()) | set(rules.DELTA_COLORS.values())
    rgb = {", ".join(map(str, c)) for c in (rules.INK, rules.KEPT_INK, rules.KEPT_PAPER, rules.FUTURE, rules.DIM_INK,
                                             rules.NAN_RGB, rules.DIFF_ADDED, rules.DIFF_REMOVED, rules.DIFF_BOTH)}
    texts = {d.split(":")[0] + ":" for d in rules.DESCRIPTIONS.values()}
    return colours, rgb, texts


@pytest.mark.parametrize("name,text", list(sources(JS + CSS + [APP_JS]).items()))
def test_no_rule_is_written_again_in_the_page(name, text):
    colours, rgb, texts = literal_values()
    low = text.lower()
    found = [c for c in colours if c.lower() in low]
    found += [c for c in rgb if re.search(r"\[\s*" + re.escape(c).replace(r",\ ", r",\s*") + r"\s*\]", text)]
    found += [t for t in texts if t in text]
    found += [s for s in ("2147483647", "2 ** 31", "0.05, 2", "['i', 'f', 'g', 'o', 'c', 'h']") if s in text]
    assert not found, f"{name} writes rules of rnnviz/rules.py again: {found}"


def test_the_check_would_see_a_copy():
    """The scan above finds a palette, a description and a state list when they are there."""
    colours, rgb, texts = literal_values()
    copy = "export const V = ['#440154', '#482878']; const d = 'forget gate: x'; const s = [245, 245, 245];"
    assert any(c in copy for c in colours)
    assert any(t in copy for t in texts)
    assert any(re.search(r"\[\s*" + re.escape(c).replace(r",\ ", r",\s*") + r"\s*\]", copy) for c in rgb)


def test_every_rule_the_page_reads_is_in_the_table():
    """Each rules().<key> the modules read exists in rules.as_json() (a typo would be undefined)."""
    table = rules.as_json()
    keys = set()
    for text in sources(JS).values():
        keys |= set(re.findall(r"rules\(\)\.(\w+)", text))
    assert keys, "the modules read nothing from the rules"
    assert keys <= set(table), f"read but not in rnnviz.rules.as_json(): {sorted(keys - set(table))}"
