"""The explorer: a Gradio app that steps through generation with the gates in sync.

Start it with ``rnnviz-explorer`` (``__main__.py``) or ``python explorer.py`` from a checkout.

- ``ui``: the page: the header (model menu, upload) and the tabs in order;
- ``tabs/``: one module per tab (``build`` its layout, ``wire`` its events, its figures and captions);
- ``stepview``: the player (slider, Play/Pause, timer) and the step views built on it;
- ``cards``: the HTML cards sent on every scrub (canvas, unit grids, columns);
- ``figures``: the figures' shared layout and cursor, and the units x time figure;
- ``components``: checked Gradio inputs and the widget groups several tabs use;
- ``inputs``: pure input checks and the one table of limits (``LIMITS``);
- ``links``: deep links (the URL's settings);
- ``state``: per-visitor sessions and ``Explorer``, the operations the page calls;
- ``registry``: the checkpoints the app can use; ``uploads``: visitors' checkpoints;
- ``training``: the server's one training run; ``measurements``: the analysis tabs' server side;
- ``downloads``: GIF / .npz / PNG downloads of a step view.

Colours and image encoding are the core's (``rnnviz.render``); the model math is rnnviz's.
"""
