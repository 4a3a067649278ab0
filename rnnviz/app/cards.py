"""The Markdown lines several tabs share: a checkpoint's description and a trace's summary.

Nothing here holds state, touches Gradio or runs a model. (The step views themselves are drawn in
the browser by the shared JavaScript view: ``stepview``.)
"""

from __future__ import annotations

import html

from ..rules import ORDER_NAMES
from ..trace import Trace

# ---- Markdown shared by several tabs -------------------------------------------------------------
MD_SPECIAL = set("\\`*_{}[]()<>#+-.!|~&:\"'=")


def md_text(value, max_len: int = 80) -> str:
    """Text from a checkpoint's metadata (a visitor's upload) as inert Markdown: cut to ``max_len``
    characters, HTML escaped and every Markdown sign backslash-escaped (no link, image or tag)."""
    text = " ".join(str(value).split())
    text = text if len(text) <= max_len else text[:max_len] + "\u2026"
    return "".join(f"\\{ch}" if ch in MD_SPECIAL else html.escape(ch) for ch in text)


def model_summary(config, metrics: dict, name: str) -> str:
    """Markdown line describing a checkpoint (``metrics``: its registry entry's; every text from it
    is escaped: an upload's metadata is a visitor's)."""
    nll = metrics.get("test_nll")
    parts = [f"**{md_text(name)}**: {config.cell.upper()}, {config.layers} \u00d7 {config.hidden} units"]
    if getattr(config, "order", "rows") != "rows":
        parts.append(f"writes {ORDER_NAMES[config.order]}")
    if metrics.get("parameters"):
        parts.append(f"{int(metrics['parameters']) / 1e6:.2f} M parameters")
    if nll is not None:
        parts.append(f"test NLL {float(nll):.2f} nats")
    if metrics.get("dataset"):
        parts.append(f"trained on {md_text(metrics['dataset'])}")
    if metrics.get("train_seconds"):
        parts.append(f"{float(metrics['train_seconds']) / 60:.0f} min, {int(metrics.get('step', 0))} steps")
    return " \u00b7 ".join(parts)


def trace_summary(trace: Trace, model_name: str) -> str:
    """Markdown: what this trace is."""
    what = "completion" if trace.keep_rows else "sample"
    label = "unconditional" if trace.label is None else f"digit **{trace.label}**"
    extra = f", first {trace.keep_rows} rows kept" if trace.keep_rows else ""
    seed = "" if trace.seed is None else f", seed {trace.seed}"
    return (f"**{model_name}**: {what} of {label}{extra}, temperature {trace.temperature:g}{seed}. "
            f"NLL {trace.nll:.1f} nats (\u2212log p(image | digit) under the model, temperature 1).")
