"""The rules both front ends share, written once: palettes, colour scales, names, limits, URL settings.

The Gradio app and the static page draw with the same JavaScript view (``rnnviz/site/static/``), and
that view reads every colour, name, description and limit from ``as_json()``: the site writes it
to ``rules.json`` beside the modules, and the app puts the same JSON in the page's head
(``window.rnnvizRules``). Python reads the same names here (``render``, ``cells``, ``app.inputs``,
``app.links``). Nothing in this table is written again in JavaScript; ``tests/test_rules.py``
checks that the page's code holds none of it.

Pure data and one function: nothing here imports torch, Gradio or the app.
"""

from __future__ import annotations

# ---- palettes (anchors a lookup table interpolates evenly) -------------------------------------------
VIRIDIS = ("#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
           "#b5de2b", "#fde725")
BLUE_WHITE_RED = ("#053061", "#2166ac", "#4393c3", "#92c5de", "#d1e5f0", "#f7f7f7", "#fddbc7",
                  "#f4a582", "#d6604d", "#b2182b", "#67001f")
INFERNO = ("#000004", "#1b0c41", "#4a0c6b", "#781c6d", "#a52c60", "#cf4446", "#ed6925", "#fb9b06",
           "#f7d13d", "#fcffa4")
LUT_SIZE = 256  # entries of every colour lookup table

# The colour scale of each kind of value: (vmin, vmax, palette). The LSTM's cell state c is
# unbounded: its range is symmetric, fixed per trace and layer from the C_PERCENTILE-th percentile
# of |c| over every step, at least C_MIN, rounded up to a multiple of C_ROUND.
SCALES = {"gate": (0.0, 1.0, "viridis"), "tanh": (-1.0, 1.0, "blue_white_red"), "prob": (0.0, 1.0, "inferno")}
C_PERCENTILE, C_MIN, C_ROUND = 99.5, 1.0, 0.5
PALETTES = {"viridis": VIRIDIS, "blue_white_red": BLUE_WHITE_RED, "inferno": INFERNO}

# ---- the canvas (RGB) ---------------------------------------------------------------------------------
INK, PAPER = (245, 245, 245), (0, 0, 0)  # generated rows
KEPT_INK, KEPT_PAPER = (125, 200, 255), (8, 22, 40)  # rows copied from the given image (completion)
FUTURE = (34, 38, 52)  # rows not drawn yet
DIM_INK = (70, 74, 90)  # ink of the rows a completion will redraw (its preview)
NAN_RGB = (128, 128, 128)  # padding cells of a unit grid
ROW_MARK = "#22d3ee"  # the outline of the row being drawn
BAR_GENERATED, BAR_KEPT = "#f97316", "#9aa5b1"  # per-row NLL bars
# Intervene: the difference image (+1 red: ink only with the intervention, -1 blue: only without), the
# intervened steps, the two runs' lines and the change of h and c (a symmetric scale per comparison:
# the DELTA_PERCENTILE-th percentile of |change| over every step, at least and rounded up to DELTA_ROUND)
DIFF_ADDED, DIFF_REMOVED, DIFF_BOTH = (230, 80, 60), (60, 140, 235), (105, 105, 105)
INTERVENED = "#facc15"
RUN_COLORS = {"without": "#9aa5b1", "with": "#e6503c"}
DELTA_COLORS = {"h": "#f97316", "c": "#38bdf8"}
DELTA_PERCENTILE, DELTA_ROUND = 99.5, 0.05

# ---- cells: what each exposes per step (display order; the last entries are the carried state) -------
STATE_NAMES: dict[str, tuple[str, ...]] = {
    "lstm": ("i", "f", "g", "o", "c", "h"),
    "gru": ("r", "z", "n", "h"),
    "rnn": ("h",),
}
SIGMOID = frozenset("ifozr")  # gates in [0, 1]; the rest are tanh outputs (and c)
SATURATION = (0.1, 0.9)  # a gate below the first or above the second counts as saturated
DESCRIPTIONS: dict[str, str] = {
    "i": "input gate: how much of the candidate g enters the cell",
    "f": "forget gate: how much of the old cell state c is kept",
    "g": "candidate: the new content offered to the cell",
    "o": "output gate: how much of tanh(c) is shown as h",
    "c": "cell state: the LSTM's long-term memory",
    "h": "hidden state: what the layer passes up and to the next step",
    "r": "reset gate: how much of the old h the candidate n may look at",
    "z": "update gate: how much of the old h is kept (1 = keep)",
    "n": "candidate: the proposed new hidden state",
}
CELL_COLORS = {"lstm": "#f97316", "gru": "#38bdf8", "rnn": "#a3e635"}
OTHER_COLOR = "#9aa5b1"  # a cell with no colour of its own
COLUMN_STATES = {"lstm": ("f", "c", "h"), "gru": ("z", "h"), "rnn": ("h",)}  # compact columns: memory + h

# ---- scan orders: the 8 symmetries of the square --------------------------------------------------------
# name -> (lines are columns, lines run backwards, pixels run backwards). "rows" is the classic order:
# rows top-down, each row left to right; "_rl" runs lines (or pixels) right to left, "_bu" bottom-up.
ORDERS = {
    "rows": (False, False, False),
    "rows_rl": (False, False, True),
    "rows_bu": (False, True, False),
    "rows_bu_rl": (False, True, True),
    "cols": (True, False, False),
    "cols_bu": (True, False, True),
    "cols_rl": (True, True, False),
    "cols_rl_bu": (True, True, True),
}
ORDER_NAMES = {
    "rows": "rows top-down, left to right",
    "rows_rl": "rows top-down, right to left",
    "rows_bu": "rows bottom-up, left to right",
    "rows_bu_rl": "rows bottom-up, right to left",
    "cols": "columns left to right, top-down",
    "cols_bu": "columns left to right, bottom-up",
    "cols_rl": "columns right to left, top-down",
    "cols_rl_bu": "columns right to left, bottom-up",
}
# one colour per order: the "which order?" view's lines and legend
ORDER_COLORS = {"rows": "#f97316", "rows_rl": "#facc15", "rows_bu": "#a3e635", "rows_bu_rl": "#34d399",
                "cols": "#38bdf8", "cols_bu": "#818cf8", "cols_rl": "#e879f9", "cols_rl_bu": "#fb7185"}
# An exact mixture of several models (rnnviz.mixture) draws the part a sample comes from with its own
# generator, seeded with (seed + MIXTURE_PART_STREAM) mod 2^32 (MT19937 reads the low 32 bits), so the
# part is independent of the label and pixel draws of the part, which use the generator seeded with seed.
MIXTURE_PART_STREAM = 0x6D697820  # "mix "

# ---- model sizes ----------------------------------------------------------------------------------------
# What any ModelConfig may hold, field -> (lo, hi) (rnnviz.model checks it; the command line's checkpoint
# limits are the upper ends). The explorer's narrower limits are rnnviz.checkpoint.APP_LIMITS.
MODEL_BOUNDS = {"hidden": (1, 4096), "layers": (1, 8), "num_classes": (0, 1000), "head_hidden": (1, 8192),
                "height": (1, 512), "width": (2, 512), "latent": (0, 1024)}

# ---- what a visitor may choose ----------------------------------------------------------------------
IMAGE_SIZE = (28, 28)  # the explorer's views draw MNIST-size models
STEPS = IMAGE_SIZE[0]  # one step per line
DIGITS = ("any",) + tuple(str(d) for d in range(10))
SEED_MAX = 2**31 - 1
# name -> (label, lo, hi, default, widget step, whole number)
LIMITS = {
    "temperature": ("temperature", 0.1, 2.0, 1.0, 0.05, False),
    "seed": ("seed", 0, SEED_MAX, 0, 1, True),
    "step": ("timestep", 0, STEPS - 1, 0, 1, True),
    "keep_rows": ("rows to keep", 0, STEPS - 1, 14, 1, True),
    "completions": ("completions", 1, 8, 6, 1, True),
    "first_step": ("from step", 0, STEPS - 1, 10, 1, True),
    "last_step": ("through step", 0, STEPS - 1, STEPS - 1, 1, True),
    "test_digit": ("test digit #", 0, 39, 28, 1, True),  # the explorer's 40 test digits (assets/gallery.npz)
    "completion": ("completion #", 0, 7, 0, 1, True),  # which completion a view steps through
    # a hidden unit and a layer of any model (the model's own size is checked where it is read)
    "unit": ("unit", 0, MODEL_BOUNDS["hidden"][1] - 1, 0, 1, True),
    "layer": ("layer", 0, MODEL_BOUNDS["layers"][1] - 1, 0, 1, True),
}
PLAY_MS = 250  # Play: milliseconds per step

# ---- deep links: what a URL may hold, in the order a link writes it ----------------------------------
# name -> (kind, default, limit): a "limit" is a number within LIMITS[limit]; a "step" a whole number in
# [0, steps); "model", "models" (up to 3, comma-separated), "digit", "as" (auto or a digit),
# "intervention", "units" (all, or a list like 3, 17, 200-210) and "tab" are checked against what the
# server (or page) offers. Each tab reads the settings it has (README: Deep links).
URL_SETTINGS = {
    "model": ("model", None, None),
    "digit": ("digit", "7", None),
    "seed": ("limit", 0, "seed"),
    "temperature": ("limit", 1.0, "temperature"),
    "t": ("step", None, None),  # none: the view opens at its last step
    "tab": ("tab", "generate", None),
    "models": ("models", None, None),  # Compare cells
    "test": ("limit", 28, "test_digit"),  # Complete, Reconstruct, Teacher forcing
    "keep": ("limit", 14, "keep_rows"),  # Complete, Teacher forcing
    "n": ("limit", 6, "completions"),  # Complete
    "as": ("as", "auto", None),  # Complete: the digit to complete as
    "k": ("limit", 0, "completion"),  # Complete: the completion on the slider
    "kind": ("intervention", None, None),  # Intervene
    "from": ("limit", 10, "first_step"),
    "through": ("limit", STEPS - 1, "last_step"),
    "units": ("units", "all", None),
    "unit": ("limit", 0, "unit"),  # Units
    "layer": ("limit", None, "layer"),
}
URL_MAX_CHARS = 64  # a longer value is refused unread
URL_LIST_MAX = 3  # models a Compare link may name


def as_json() -> dict:
    """Everything above as one JSON-ready dict: what the JavaScript view reads (``rules.json``)."""
    return {
        "palettes": {k: list(v) for k, v in PALETTES.items()},
        "lutSize": LUT_SIZE,
        "scales": {k: {"vmin": lo, "vmax": hi, "palette": p} for k, (lo, hi, p) in SCALES.items()},
        "cScale": {"percentile": C_PERCENTILE, "min": C_MIN, "round": C_ROUND},
        "canvas": {"ink": INK, "paper": PAPER, "keptInk": KEPT_INK, "keptPaper": KEPT_PAPER, "future": FUTURE,
                   "dimInk": DIM_INK, "nan": NAN_RGB, "rowMark": ROW_MARK, "barGenerated": BAR_GENERATED,
                   "barKept": BAR_KEPT, "diffAdded": DIFF_ADDED, "diffRemoved": DIFF_REMOVED,
                   "diffBoth": DIFF_BOTH, "intervened": INTERVENED},
        "runColors": RUN_COLORS,
        "deltaColors": DELTA_COLORS,
        "deltaScale": {"percentile": DELTA_PERCENTILE, "round": DELTA_ROUND},
        "stateNames": {k: list(v) for k, v in STATE_NAMES.items()},
        "sigmoid": sorted(SIGMOID),
        "saturation": list(SATURATION),
        "descriptions": DESCRIPTIONS,
        "orders": {k: list(v) for k, v in ORDERS.items()},
        "orderNames": ORDER_NAMES,
        "orderColors": ORDER_COLORS,
        "mixturePartStream": MIXTURE_PART_STREAM,
        "cellColors": CELL_COLORS,
        "otherColor": OTHER_COLOR,
        "columnStates": {k: list(v) for k, v in COLUMN_STATES.items()},
        "imageSize": list(IMAGE_SIZE),
        "steps": STEPS,
        "digits": list(DIGITS),
        "seedMax": SEED_MAX,
        "limits": {k: {"label": lab, "lo": lo, "hi": hi, "default": d, "step": s, "integer": i}
                   for k, (lab, lo, hi, d, s, i) in LIMITS.items()},
        "playMs": PLAY_MS,
        "url": {"settings": [{"name": k, "kind": kind, "default": d, "limit": lim}
                             for k, (kind, d, lim) in URL_SETTINGS.items()],
                "maxChars": URL_MAX_CHARS, "listMax": URL_LIST_MAX},
    }
