"""Input components that answer anything a script sends with a message, never a crash.

Gradio checks the range of a number, but a string, a list or None sent straight to the API makes
``gr.Slider``'s (and ``gr.Number``'s) preprocessing raise a ``TypeError``: the visitor then sees
"the app has raised an exception" and the server logs a traceback. Likewise a file that is not an
image, sent as a drawing, fails inside ``gr.Sketchpad``'s preprocessing. These subclasses check
first and raise ``gr.Error`` naming the field.

They are subclasses, not wrappers around instances, because Gradio rebuilds a component from its
class (``block.__class__(**kwargs)``) for a session whose page received an update of it; and they
are Gradio "templates", drawn by the stock front-end components. (Gradio writes a ``.pyi`` stub
next to a module that defines components, as it does for custom components.)

Also what every tab's Gradio code shares: ``slider``/``number`` (a checked widget over an
``inputs.LIMITS`` entry), the widget groups several tabs use (``sample_controls``,
``digit_source``), and the small helpers of a handler (``message``, ``warn``, ``plot``,
``session_id``).
"""

from __future__ import annotations

import json
import math
import os
from contextlib import nullcontext
from dataclasses import dataclass
from numbers import Real

import gradio as gr
from gradio.components.plot import PlotData
from PIL import Image

from ..render import digit_thumbnail
from .inputs import DIGITS, FIRST_TEST_DIGIT, LIMITS, MAX_DRAWING_PIXELS


def message(text: str) -> gr.Error:
    """An error for the visitor to read (raise it); not worth a traceback in the server's log, which
    then shows only real failures."""
    return gr.Error(text, print_exception=False)


def session_id(request: gr.Request | None) -> str | None:
    """The visitor's Gradio session hash (None outside a request: one shared "local" session)."""
    return getattr(request, "session_hash", None) if request is not None else None


def warn(notes):
    """Show each note (a value that was clamped, a model that was skipped) as a toast."""
    for note in notes:
        if note:
            gr.Warning(note)


def digit_for_model(ex, key, digit) -> tuple[str, str | None]:
    """The digit choice to draw ``digit`` with the model ``key`` of the explorer ``ex``: 'any' for an
    unconditional model (which cannot be asked for a class), with a note saying so; else ``digit``
    unchanged, and no note. InputError if there is no such model."""
    entry, _ = ex.model(key)
    if entry.config.num_classes or digit in (None, "any"):
        return digit, None
    return "any", f"{entry.name} is unconditional (it cannot be asked for a digit): the digit is now 'any'."


def plot(fig: dict) -> PlotData:
    """A plotly figure dict as gr.Plot's payload (skips building a validated go.Figure, ~250 ms)."""
    return PlotData(type="plotly", plot=json.dumps(fig))


def number_payload(component, payload) -> float | None:
    """``payload`` as a finite float inside ``component``'s bounds; None if nothing was sent."""
    name = component.label or component.elem_id or "a number"
    if payload is None or (isinstance(payload, str) and not payload.strip()):
        return None
    if isinstance(payload, bool) or not isinstance(payload, (Real, str)):
        raise message(f"{name} must be a number, got {str(payload)[:40]!r}")
    if isinstance(payload, str) and not payload.isascii():  # float() reads "७" as 7
        raise message(f"{name} must be a number written with the digits 0-9, got {payload[:40]!r}")
    try:
        x = float(payload)
    except (ValueError, OverflowError):  # OverflowError: a 401-digit integer
        raise message(f"{name} must be a number of at most 300 digits, got {str(payload)[:40]!r}") from None
    if not math.isfinite(x):
        raise message(f"{name} must be a finite number, got {str(payload)[:40]!r}")
    lo, hi = component.minimum, component.maximum
    if (lo is not None and x < lo) or (hi is not None and x > hi):
        raise message(f"{name}: the value {x:g} is outside the allowed range "
                      f"[{'-inf' if lo is None else f'{lo:g}'}, {'inf' if hi is None else f'{hi:g}'}]")
    return x


def checked(component, payload, preprocess):
    """``preprocess`` of a finite number in ``component``'s range; None (nothing sent) reaches the
    handler, which uses its default."""
    x = number_payload(component, payload)
    return None if x is None else preprocess(x)


# Each a direct subclass: a template's front-end block is named after its base class.
class Number(gr.Number):
    """``gr.Number`` that refuses anything but a finite number in its range with a message."""

    is_template = True  # drawn as a gr.Number

    def preprocess(self, payload):
        return checked(self, payload, super().preprocess)


class Slider(gr.Slider):
    """``gr.Slider`` that refuses anything but a finite number in its range with a message."""

    is_template = True  # drawn as a gr.Slider

    def preprocess(self, payload):
        return checked(self, payload, super().preprocess)


class Sketchpad(gr.Sketchpad):
    """``gr.Sketchpad`` that answers an unreadable upload (not an image, a decompression bomb, ...)
    with a message."""

    def get_block_name(self) -> str:  # gr.Sketchpad is itself a template of gr.ImageEditor
        return "imageeditor"

    def get_block_class(self) -> str:
        return "imageeditor"

    def preprocess(self, payload):
        check_drawing_files(payload)
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception as e:  # PIL and file errors: whatever was sent is not a drawing
            raise message(f"The drawing could not be read as an image ({type(e).__name__}).") from None


def _drawing_paths(payload) -> list:
    """The file paths (or whatever stands in their place) of a sketchpad payload."""
    if payload is None:
        return []

    def get(obj, key):
        return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)

    if not isinstance(payload, dict) and not hasattr(payload, "layers"):
        return [payload]
    out = [get(payload, "background"), get(payload, "composite")] + list(get(payload, "layers") or [])
    paths = []
    for item in out:
        if item is None:
            continue
        path = get(item, "path") if isinstance(item, dict) or hasattr(item, "path") else item
        paths.append(path)
    return paths


def check_drawing_files(payload):
    """Refuse a drawing whose files are URLs or data URLs (never fetched), or whose image header
    (read without decoding a pixel) gives more than ``inputs.MAX_DRAWING_PIXELS`` pixels."""
    for path in _drawing_paths(payload):
        if not isinstance(path, (str, os.PathLike)):
            raise message(f"The drawing must be an uploaded image file, got {type(path).__name__}.")
        text = str(path)
        if text.strip().lower().startswith(("http:", "https:", "data:", "ftp:", "file:", "//")) or len(text) > 4096:
            raise message("The drawing must be an image uploaded to this server: URLs and data URLs are not read.")
        try:
            with Image.open(text) as im:  # lazy: reads the header only
                w, h = im.size
        except (OSError, ValueError, Image.DecompressionBombError):
            continue  # not readable as an image: Gradio's own reading gives the message below
        if w * h > MAX_DRAWING_PIXELS:
            raise message(f"The drawing is too large ({w}\u00d7{h} pixels; at most {MAX_DRAWING_PIXELS:,} pixels).")


def _limited(name: str, kw: dict) -> dict:
    lim = LIMITS[name]
    return {"minimum": lim.lo, "maximum": None if lim.open_above else lim.hi, "step": lim.step,
            "value": lim.default, "label": lim.label, **kw}


def slider(name: str, **kw) -> Slider:
    """A checked slider over ``inputs.LIMITS[name]`` (range, step, default and label; ``kw`` may
    override the label, value or layout)."""
    return Slider(**_limited(name, kw))


def number(name: str, **kw) -> Number:
    """A checked whole-number box over ``inputs.LIMITS[name]`` (see ``slider``)."""
    kw = _limited(name, kw)
    kw.pop("step")
    return Number(precision=0, **kw)


def sample_controls(prefix: str, side_by_side: bool = False):
    """The digit, temperature and seed inputs of a tab that samples (elem ids ``<prefix>_digit``,
    ``_temperature``, ``_seed``); ``side_by_side`` puts temperature and seed in one row."""
    digit = gr.Radio(DIGITS, value="7", label="digit", elem_id=f"{prefix}_digit")
    with gr.Row() if side_by_side else nullcontext():
        temperature = slider("temperature", elem_id=f"{prefix}_temperature",
                             **({"min_width": 110} if side_by_side else {}))
        seed = number("seed", elem_id=f"{prefix}_seed", **({"min_width": 90} if side_by_side else {}))
    return digit, temperature, seed


@dataclass
class DigitSource:
    """Where a tab's digit comes from (Complete, Reconstruct): one of the explorer's test digits
    (a gallery, or its number) or a drawing; ``source`` says which."""
    gallery: gr.Gallery
    pick_tab: gr.Tab
    draw_tab: gr.Tab
    sketch: Sketchpad
    source: gr.Radio
    index: Number

    @property
    def inputs(self) -> list:
        """(source, index, sketch): what a handler reads the digit from."""
        return [self.source, self.index, self.sketch]

    def wire(self, prefix: str, preview, preview_in: list, preview_out: list):
        """Clicking a test digit picks it and previews it; opening *Draw* or *Test digits* switches
        the source (api names ``<prefix>_pick_test_digit``, ``_preview_after_pick``, ``_use_drawing``,
        ``_use_test_digit``; no prefix for Complete, the first)."""
        p = f"{prefix}_" if prefix else ""

        def pick(evt: gr.SelectData):
            return evt.index, "test digit"

        self.gallery.select(pick, None, [self.index, self.source], api_name=f"{p}pick_test_digit",
                            show_progress="hidden").then(preview, preview_in, preview_out,
                                                         api_name=f"{p}preview_after_pick", show_progress="hidden")
        self.draw_tab.select(lambda: "drawing", None, [self.source], api_name=f"{p}use_drawing",
                             show_progress="hidden")
        self.pick_tab.select(lambda: "test digit", None, [self.source], api_name=f"{p}use_test_digit",
                             show_progress="hidden")


# Gradio 6's sketchpad opens on its image tool and draws nothing (it says "select the draw tool to
# start") until its Brush is clicked, and no option of gr.Sketchpad chooses the first tool. So the
# sketchpad picks its Brush itself whenever that placeholder shows: when it is first drawn and after
# Clear. (The placeholder, `.empty.wrap`, shows exactly while the tool is the image tool and nothing
# is drawn.) The Brush is the first button of the tool bar (a sketchpad has no image sources).
BRUSH_JS = """
const sketchId = %s;
const root = element.closest('[role=tabpanel]') || element.parentElement || document.body;
const pick = () => {
  const sketch = document.getElementById(sketchId);
  if (!sketch || !sketch.querySelector('.empty.wrap')) return;
  const brush = sketch.querySelector('.toolbar-wrap button[aria-label="Brush"]') ||
                sketch.querySelector('.toolbar-wrap .half-container button');
  if (brush) brush.click();
};
new MutationObserver(pick).observe(root, {childList: true, subtree: true});
pick();
"""


def digit_source(ex, prefix: str, label: str, columns: int = 8) -> DigitSource:
    """The explorer's test digits (``ex.gallery_images``) beside a sketchpad, and which of the two
    to use. Element ids are ``<prefix>_gallery``, ``_sketch``, ``_index`` (Complete, the first,
    has no prefix: ``test_gallery``, ``sketch``, ``gallery_index``)."""
    thumbs = [digit_thumbnail(img) for img in ex.gallery_images]
    ids = {"gallery": "test_gallery", "sketch": "sketch", "index": "gallery_index", "pick": "pick", "draw": "draw"}
    if prefix:
        ids = {k: f"{prefix}_{k}" for k in ids}
    with gr.Tabs():
        with gr.Tab("Test digits", id=ids["pick"]) as pick_tab:
            gallery = gr.Gallery(thumbs, columns=columns, height="auto", allow_preview=False, show_label=False,
                                 object_fit="contain", elem_id=ids["gallery"], buttons=[],
                                 elem_classes="rv-pixelated")
        with gr.Tab("Draw", id=ids["draw"]) as draw_tab:
            sketch = Sketchpad(
                canvas_size=(280, 280), fixed_canvas=True, type="numpy",
                brush=gr.Brush(default_size=18, colors=["#000000"], color_mode="fixed"),
                label="draw a digit", elem_id=ids["sketch"], height=340)
            gr.HTML("", js_on_load=BRUSH_JS % json.dumps(ids["sketch"]), visible="hidden")  # the Brush from the start
    with gr.Row():
        source = gr.Radio(["test digit", "drawing"], value="test digit", label=label, scale=2)
        index = Number(FIRST_TEST_DIGIT, precision=0, minimum=0, maximum=len(ex.gallery_images) - 1,
                       label="test digit #", scale=1, elem_id=ids["index"])
    return DigitSource(gallery, pick_tab, draw_tab, sketch, source, index)


def layer_choices(nlayers: int) -> list[tuple[str, int]]:
    """The layer menu of a model with ``nlayers`` recurrent layers (0 = bottom)."""
    return [(f"layer {k + 1}" + (" (top)" if k == nlayers - 1 else ""), k) for k in range(nlayers)]
