"""Deep links: the view a visitor sees, written into and read back from the URL.

    ?model=mnist_gru&digit=3&seed=5&temperature=0.8&t=14&tab=generate

``SETTINGS`` is the one table of what a link may hold (as TensorFlow Playground's ``state.ts``):
each entry parses one query value or says why it cannot. ``parse`` turns a query string into a
``View`` and a list of notes, one per value it ignored; an ignored value falls back to its default
(the page shows the notes, and never raises on a link). ``query`` writes a ``View`` back, and
``link`` puts it after the app's public address (on a Hugging Face Space, ``https://$SPACE_HOST/``:
the page itself runs in an iframe whose own address the visitor never sees).

Pure functions: nothing here touches Gradio or a model. The limits are the widgets' (``inputs.LIMITS``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from .inputs import DIGITS, LIMITS, STEPS

MAX_VALUE_CHARS = 64  # a longer value is refused unread; a note shows at most this much of it
SEED_MAX = int(LIMITS["seed"].hi)
_ASCII_INT = re.compile(r"[0-9]{1,10}")  # ASCII only: "७" and "٣" are digits to str.isdigit
_ASCII_FLOAT = re.compile(r"[0-9]{1,3}(\.[0-9]{1,6})?")


@dataclass(frozen=True)
class View:
    """What a link reproduces: the Generate view at one step, and the tab that is open."""

    model: str | None = None  # a checkpoint key; None: the registry's default
    digit: str = "7"  # "0".."9" or "any"
    seed: int = 0
    temperature: float = 1.0
    t: int = 0  # the timestep (row) the slider shows
    tab: str = "generate"


@dataclass(frozen=True)
class Context:
    """What the running app allows: the checkpoint keys, the tab ids, the steps and the slider's
    temperature range."""

    models: Sequence[str]
    tabs: Sequence[str] = ("generate",)
    steps: int = STEPS
    temperature: tuple[float, float] = (LIMITS["temperature"].lo, LIMITS["temperature"].hi)


class Refused(ValueError):
    """One query value that cannot be used; the message says what would be."""


def _model(v: str, ctx: Context) -> str:
    if v not in ctx.models:
        raise Refused("not a model of this server")
    return v


def _digit(v: str, ctx: Context) -> str:
    if v not in DIGITS:
        raise Refused("not 0-9 or any")
    return v


def _seed(v: str, ctx: Context) -> int:
    if not _ASCII_INT.fullmatch(v) or int(v) > SEED_MAX:
        raise Refused(f"not a whole number 0..{SEED_MAX}")
    return int(v)


def _temperature(v: str, ctx: Context) -> float:
    lo, hi = ctx.temperature
    if not _ASCII_FLOAT.fullmatch(v) or not (math.isfinite(x := float(v)) and lo <= x <= hi):
        raise Refused(f"not a number in [{lo:g}, {hi:g}]")
    return x


def _step(v: str, ctx: Context) -> int:
    if not _ASCII_INT.fullmatch(v) or int(v) >= ctx.steps:
        raise Refused(f"not a step 0..{ctx.steps - 1}")
    return int(v)


def _tab(v: str, ctx: Context) -> str:
    if v not in ctx.tabs:
        raise Refused(f"not one of {', '.join(ctx.tabs)}")
    return v


# query name -> (View field, parser); parsers raise Refused
SETTINGS: dict[str, tuple[str, Callable[[str, Context], object]]] = {
    "model": ("model", _model),
    "digit": ("digit", _digit),
    "seed": ("seed", _seed),
    "temperature": ("temperature", _temperature),
    "t": ("t", _step),
    "tab": ("tab", _tab),
}


def _shown(value: str) -> str:
    """A visitor's value as a note may quote it: short, printable ASCII (the note is still escaped
    by whoever shows it)."""
    short = value[:MAX_VALUE_CHARS]
    clean = "".join(ch if " " <= ch <= "~" else "?" for ch in short)
    return clean + ("..." if len(value) > MAX_VALUE_CHARS else "")


def parse(params: Mapping[str, str], ctx: Context, default: View | None = None) -> tuple[View, list[str]]:
    """The view a query asks for, and a note for each value that was ignored (the default is used
    for it). Names outside ``SETTINGS`` are ignored silently (other tools add their own, e.g.
    ``__theme``)."""
    view = default or View()
    changes, notes = {}, []
    for name, (field, parser) in SETTINGS.items():
        if name not in params:
            continue
        raw = params[name]
        value = raw if isinstance(raw, str) else str(raw)
        try:
            if len(value) > MAX_VALUE_CHARS:
                raise Refused(f"longer than {MAX_VALUE_CHARS} characters")
            changes[field] = parser(value.strip(), ctx)
        except Refused as why:
            notes.append(f"ignored {name}={_shown(value)!r} ({why}); using {getattr(view, field)!r}")
    return replace(view, **changes), notes


def query(view: View) -> str:
    """The query string (no leading '?') that ``parse`` reads back as ``view``."""
    items = {"model": view.model, "digit": view.digit, "seed": view.seed,
             "temperature": f"{view.temperature:g}", "t": view.t, "tab": view.tab}
    return urlencode({k: v for k, v in items.items() if v is not None})


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
