"""The explorer's tabs, one module each, in page order.

Every module exposes ``build(ex, ckpt, ...) -> Handle`` (its layout, called inside its ``gr.Tab``;
``ckpt`` is the page's model menu; Generate and Complete also take the page's ``Downloads``) and
``wire(handle, tab)`` (its events, called after the whole layout; ``tab`` is the ``gr.Tab`` it was
built in). A tab's figures and captions live in its module; ``ui.build_app`` only adds the tabs.
"""

from . import compare, complete, forcing, generate, intervene, reconstruct, saturation, train, units  # noqa: F401
