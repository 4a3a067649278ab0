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
"""

from __future__ import annotations

import math
from numbers import Real

import gradio as gr


def message(text: str) -> gr.Error:
    """An error for the visitor to read (raise it); not worth a traceback in the server's log, which
    then shows only real failures."""
    return gr.Error(text, print_exception=False)


def number_payload(component, payload) -> float | None:
    """``payload`` as a finite float inside ``component``'s bounds; None if nothing was sent."""
    name = component.label or component.elem_id or "a number"
    if payload is None or (isinstance(payload, str) and not payload.strip()):
        return None
    if isinstance(payload, bool) or not isinstance(payload, (Real, str)):
        raise message(f"{name} must be a number, got {str(payload)[:40]!r}")
    try:
        x = float(payload)
    except ValueError:
        raise message(f"{name} must be a number, got {payload[:40]!r}") from None
    if not math.isfinite(x):
        raise message(f"{name} must be a finite number, got {payload!r}")
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
        try:
            return super().preprocess(payload)
        except gr.Error:
            raise
        except Exception as e:  # PIL and file errors: whatever was sent is not a drawing
            raise message(f"The drawing could not be read as an image ({type(e).__name__}).") from None
