"""The explorer: a Gradio app that steps through generation with the gates in sync.

- ``views``: pure functions from traces and training snapshots to images, HTML and figures;
- ``inputs``: pure functions that turn user input (drawings, numbers from the API) into model input;
- ``state``: server-side state: checkpoint registry, per-session trace cache, the one training run;
- ``stepview``: the step views (a trace, or a few on one slider) and the helpers handlers share;
- ``tabs``: one module per lab tab (Compare cells, Intervene, Reconstruct), each ``build`` + ``wire``;
- ``ui``: the Gradio Blocks page that puts them together (no model math).

Start it with ``python explorer.py``.
"""
