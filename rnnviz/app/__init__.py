"""The explorer: a Gradio app that steps through generation with the gates in sync.

- ``views``: pure functions from traces and training snapshots to images, HTML and figures;
- ``inputs``: pure functions that turn user input (drawings, numbers from the API) into model input;
- ``state``: server-side state: checkpoint registry, per-session trace cache, the one training run;
- ``ui``: the Gradio Blocks wiring (no model math).

Start it with ``python explorer.py``.
"""
