"""Deep links: the view a visitor sees, written into and read back from the URL.

    ?model=mnist_gru&digit=3&seed=5&temperature=0.8&t=14&tab=generate
    ?tab=intervene&model=mnist_lstm&kind=forget+everything+%28f+%3D+0%29&from=10&through=27&t=12
    ?tab=complete&model=mnist_lstm&test=28&keep=14&n=6&as=auto&seed=0&k=2&t=20

What a link may hold, in which order, with which default and limits, is ``rnnviz.rules.URL_SETTINGS``
(the static page's ``state.js`` reads the same table); this module says how the app reads each kind
of setting. ``parse`` turns a query string into a ``View`` and a list of notes, one per value it
ignored (an ignored value falls back to its default; the page shows the notes and never raises on a
link). ``query`` writes the settings of one tab back (``TAB_SETTINGS``), and ``link`` puts it after
the app's public address (on a Hugging Face Space, ``https://$SPACE_HOST/``: the page itself runs in
an iframe whose own address the visitor never sees).

Pure functions: nothing here touches Gradio or a model.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from urllib.parse import urlencode

from .. import rules
from .inputs import LIMITS, STEPS

MAX_VALUE_CHARS = rules.URL_MAX_CHARS  # a longer value is refused unread; a note shows at most this much of it
SEED_MAX = rules.SEED_MAX
_ASCII_INT = re.compile(r"[0-9]{1,10}")  # ASCII only: "७" and "٣" are digits to str.isdigit
_ASCII_FLOAT = re.compile(r"[0-9]{1,3}(\.[0-9]{1,6})?")
_UNITS = re.compile(r"all|[0-9]{1,4}(-[0-9]{1,4})?(\s*,\s*[0-9]{1,4}(-[0-9]{1,4})?){0,15}")

# query name -> View field, where they differ ("as", "from" are Python keywords)
FIELDS = {"as": "complete_as", "from": "first", "through": "last"}
# the settings each tab's link holds (besides ``tab``), in the table's order
TAB_SETTINGS = {
    "generate": ("model", "digit", "seed", "temperature", "t"),
    "compare": ("models", "digit", "seed", "temperature", "t"),
    "intervene": ("model", "kind", "from", "through", "units", "digit", "seed", "temperature", "t"),
    "complete": ("model", "test", "keep", "n", "as", "seed", "temperature", "k", "t"),
    "reconstruct": ("model", "test", "seed", "temperature", "t"),
    "units": ("model", "unit", "layer"),
    "forcing": ("model", "test", "keep", "seed", "temperature"),
}


def _default(name: str):
    return rules.URL_SETTINGS[name][1]


@dataclass(frozen=True)
class View:
    """What a link reproduces: one tab's view and its settings (defaults: ``rules.URL_SETTINGS``)."""

    model: str | None = None  # a model's link name; None: the registry's default
    digit: str = _default("digit")  # "0".."9" or "any"
    seed: int = _default("seed")
    temperature: float = _default("temperature")
    t: int | None = None  # the step the view shows; None: its last
    tab: str = _default("tab")
    models: tuple[str, ...] | None = None  # Compare cells; None: its default models
    test: int = _default("test")  # the test digit (Complete, Reconstruct, Teacher forcing)
    keep: int = _default("keep")  # rows kept (Complete, Teacher forcing)
    n: int = _default("n")  # completions
    complete_as: str = _default("as")  # "auto", "any" or a digit
    k: int = _default("k")  # the completion on the slider
    kind: str | None = None  # an intervention (Intervene); None: the model's first
    first: int = _default("from")
    last: int = _default("through")
    units: str = _default("units")
    unit: int = _default("unit")  # Units
    layer: int | None = None  # Units: None, the top layer
    given: frozenset = field(default=frozenset(), compare=False)  # the settings the link gave


@dataclass(frozen=True)
class Context:
    """What the running app allows: the models' link names, the tab ids, the steps, the slider's
    temperature range and the interventions' names."""

    models: Sequence[str]
    tabs: Sequence[str] = ("generate",)
    steps: int = STEPS
    temperature: tuple[float, float] = (LIMITS["temperature"].lo, LIMITS["temperature"].hi)
    kinds: Sequence[str] = ()


class Refused(ValueError):
    """One query value that cannot be used; the message says what would be."""


def _whole(v: str, lo: int, hi: int) -> int:
    if not _ASCII_INT.fullmatch(v) or not lo <= int(v) <= hi:
        raise Refused(f"not a whole number {lo}..{hi}")
    return int(v)


def _limit(name: str) -> Callable[[str, Context], object]:
    """A number within ``LIMITS[name]`` (the temperature within the context's range)."""
    lim = LIMITS[name]

    def parse(v: str, ctx: Context):
        if not lim.integer:
            lo, hi = ctx.temperature if name == "temperature" else (lim.lo, lim.hi)
            if not _ASCII_FLOAT.fullmatch(v) or not (math.isfinite(x := float(v)) and lo <= x <= hi):
                raise Refused(f"not a number in [{lo:g}, {hi:g}]")
            return x
        return _whole(v, int(lim.lo), int(lim.hi))

    return parse


def _model(v: str, ctx: Context) -> str:
    if v not in ctx.models:
        raise Refused("not a model of this server")
    return v


def _models(v: str, ctx: Context) -> tuple[str, ...]:
    names = tuple(x.strip() for x in v.split(","))
    if not 1 <= len(names) <= rules.URL_LIST_MAX or any(x not in ctx.models for x in names):
        raise Refused(f"not 1 to {rules.URL_LIST_MAX} models of this server, comma-separated")
    return names


def _digit(v: str, ctx: Context) -> str:
    if v not in rules.DIGITS:
        raise Refused("not 0-9 or any")
    return v


def _as(v: str, ctx: Context) -> str:
    if v != "auto" and v not in rules.DIGITS:
        raise Refused("not auto, any or 0-9")
    return v


def _step(v: str, ctx: Context) -> int:
    return _whole(v, 0, ctx.steps - 1)


def _tab(v: str, ctx: Context) -> str:
    if v not in ctx.tabs:
        raise Refused(f"not one of {', '.join(ctx.tabs)}")
    return v


def _kind(v: str, ctx: Context) -> str:
    if v not in ctx.kinds:
        raise Refused("not an intervention of this server")
    return v


def _units(v: str, ctx: Context) -> str:
    if not _UNITS.fullmatch(v):
        raise Refused("not 'all' or a list like 3, 17, 200-210")
    return v


KINDS = {"model": _model, "models": _models, "digit": _digit, "as": _as, "step": _step, "tab": _tab,
         "intervention": _kind, "units": _units}


def _parser(name: str) -> Callable[[str, Context], object]:
    kind, _, limit = rules.URL_SETTINGS[name]
    return _limit(limit) if kind == "limit" else KINDS[kind]


# query name -> (View field, parser); parsers raise Refused. Built from the one table.
SETTINGS: dict[str, tuple[str, Callable[[str, Context], object]]] = {
    name: (FIELDS.get(name, name), _parser(name)) for name in rules.URL_SETTINGS}


def _shown(value: str) -> str:
    """A visitor's value as a note may quote it: short, printable ASCII (the note is still escaped
    by whoever shows it)."""
    short = value[:MAX_VALUE_CHARS]
    clean = "".join(ch if " " <= ch <= "~" else "?" for ch in short)
    return clean + ("..." if len(value) > MAX_VALUE_CHARS else "")


def parse(params: Mapping[str, str], ctx: Context, default: View | None = None) -> tuple[View, list[str]]:
    """The view a query asks for, and a note for each value that was ignored (the default is used
    for it). Names outside ``SETTINGS`` are ignored silently (other tools add their own, e.g.
    ``__theme``). ``View.given`` names the settings the link gave and that were used."""
    view = default or View()
    changes, notes = {}, []
    for name, (fld, parser) in SETTINGS.items():
        if name not in params:
            continue
        raw = params[name]
        value = raw if isinstance(raw, str) else str(raw)
        try:
            if len(value) > MAX_VALUE_CHARS:
                raise Refused(f"longer than {MAX_VALUE_CHARS} characters")
            changes[fld] = parser(value.strip(), ctx)
        except Refused as why:
            notes.append(f"ignored {name}={_shown(value)!r} ({why}); using {getattr(view, fld)!r}")
    given = frozenset(n for n, (fld, _) in SETTINGS.items() if fld in changes)
    return replace(view, **changes, given=given), notes


def _text(name: str, value) -> str:
    if name == "models":
        return ",".join(value)
    if name == "temperature":
        return f"{value:g}"
    return str(value)


def query(view: View, tab: str | None = None) -> str:
    """The query string (no leading '?') that ``parse`` reads back as ``view``: the settings of
    ``tab``'s link (default: the view's tab) and the tab, in the table's order."""
    tab = tab or view.tab
    names = TAB_SETTINGS.get(tab, TAB_SETTINGS["generate"])
    items = {name: getattr(view, FIELDS.get(name, name)) for name in rules.URL_SETTINGS if name in names}
    items["tab"] = tab
    return urlencode({k: _text(k, v) for k, v in items.items() if v is not None})


def public_base(environ: Mapping[str, str] | None = None) -> str | None:
    """The app's public address when it is known on the server: a Space's own host. None
    elsewhere: the page then puts the link after its own address."""
    host = (os.environ if environ is None else environ).get("SPACE_HOST", "").strip()
    if host and re.fullmatch(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?", host):
        return f"https://{host}/"
    return None


def link(view: View, base: str) -> str:
    """The full link to ``view`` after ``base`` (an address ending in '/')."""
    return f"{base}?{query(view)}"


def address(view: View) -> str:
    """What Copy link gives: the full link on a Space, else the query the page puts after its own
    address (``COPY_JS``)."""
    base = public_base()
    return link(view, base) if base else "?" + query(view)


# after a Copy link handler: make the link absolute from the page's own address, copy it, and show it
# in the address bar too (off a Space; there the page is an iframe and its parent's address is the Space's)
COPY_JS = """(link) => {
  if (!link) return link;
  const url = link.startsWith('?') ? window.location.origin + window.location.pathname + link : link;
  try { if (link.startsWith('?')) window.history.replaceState(null, '', url); } catch (e) {}
  try { navigator.clipboard && navigator.clipboard.writeText(url).catch(() => {}); } catch (e) {}
  return url;
}"""
