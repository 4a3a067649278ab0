"""What the command-line tools share (``rnnviz-sample``, ``rnnviz-export``, ``rnnviz-evaluate``): a
checkpoint loaded within the command line's limits, a ``--digit`` checked against it, an output path
checked before any work. Each failure exits with a one-line ``error: ...`` message, no traceback.
"""

from __future__ import annotations

import os
from pathlib import Path

from .checkpoint import CLI_LIMITS, CheckpointError, load_state


def cli_state(checkpoint: str):
    """(model, metadata) of ``checkpoint`` for a command-line tool, within the command line's limits
    (``CLI_LIMITS``, checked from the header before anything is allocated); a bad file exits with
    a one-line message naming the problem, no traceback."""
    try:
        model, meta = load_state(checkpoint, limits=CLI_LIMITS)
    except CheckpointError as e:
        raise SystemExit(f"error: {e}")
    except (MemoryError, RuntimeError) as e:  # a model inside the limits that this machine cannot hold
        raise SystemExit(f"error: {checkpoint}: not enough memory to load the model ({str(e)[:200]})")
    return model, meta


def cli_model(checkpoint: str, digit: int | None):
    """The model of ``checkpoint`` for a command-line tool, checked against ``--digit``; a bad file
    or digit exits with the message (no traceback)."""
    model, _ = cli_state(checkpoint)
    C = model.config.num_classes
    if digit is not None and not (C and 0 <= digit < C):
        raise SystemExit(f"error: --digit must be in [0, {C - 1}]" if C else
                         "error: the model is unconditional: drop --digit")
    return model


def check_output(path: str, flag: str) -> None:
    """Fail before any work when ``path`` (given as ``flag``) cannot be written."""
    p = Path(path)
    if p.is_dir():
        raise SystemExit(f"error: {flag} {path} is a folder; give a file name")
    folder = p.resolve().parent
    if not folder.is_dir():
        raise SystemExit(f"error: {flag} {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK) or (p.exists() and not os.access(p, os.W_OK)):
        raise SystemExit(f"error: {flag} {path}: not writable")
