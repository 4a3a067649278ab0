"""The explorer's tabs beyond Generate, Complete and Train, one module each.

Every module exposes ``build(ex, ckpt) -> handle`` (its layout; call it inside the tab's
``gr.Tab``) and ``wire(handle, tab)`` (its events; call it after the layout, ``tab`` being the
``gr.Tab`` it was built in). ``ui.build_app`` only adds the tab and calls both.
"""

from . import compare, forcing, intervene, reconstruct, saturation  # noqa: F401
