"""A trace as the browser receives it: every number exact (float32), in one compact payload.

The explorer's step views are drawn in the browser (``rnnviz/site/static/view.js``). The server
computes a trace once per Generate (Complete, Compare, Run, ...) and sends it once; scrubbing,
Play and hover then cost no request. ``encode_trace`` packs the image, the probabilities, the
per-step NLL and every layer's gates and states into one little-endian float32 buffer (base64 in
JSON) and lists where each array lies; ``rnnviz/site/static/trace.js`` reads it back into the same
object the page's own sampler (``model.js``) makes. A 1x256 LSTM's trace is about 180 KB of
floats (240 KB as base64): ``trace_bytes`` says how many.
"""

from __future__ import annotations

import base64

import numpy as np

from .trace import Trace

FORMAT = "rnnviz-trace"
VERSION = 1


def _arrays(trace: Trace) -> list[tuple[str, np.ndarray]]:
    """(name, array) of everything numeric a view draws, in buffer order."""
    out = [("image", trace.image), ("probs", trace.probs), ("rowNll", trace.row_nll)]
    for k, layer in enumerate(trace.layers):
        out += [(f"l{k}.{name}", layer[name]) for name in trace.names]
    return out


def encode_trace(trace: Trace) -> dict:
    """The JSON-ready payload of ``trace`` (see the module docstring)."""
    chunks, index, offset = [], [], 0
    for name, a in _arrays(trace):
        flat = np.ascontiguousarray(np.asarray(a, dtype="<f4").ravel())
        index.append([name, offset, int(flat.size)])
        chunks.append(flat.tobytes())
        offset += flat.size
    H, W = trace.image.shape
    return {
        "format": FORMAT, "version": VERSION,
        "cell": trace.cell, "height": int(H), "width": int(W), "hidden": int(trace.layers[0]["h"].shape[1]),
        "nlayers": len(trace.layers), "names": list(trace.names),
        "label": trace.label, "keepRows": int(trace.keep_rows), "temperature": float(trace.temperature),
        "seed": trace.seed, "order": getattr(trace, "order", "rows"),
        "arrays": index, "data": base64.b64encode(b"".join(chunks)).decode("ascii"),
    }


def decode_trace(payload: dict) -> dict[str, np.ndarray]:
    """The arrays of a payload by name (for tests: what the browser reads)."""
    raw = np.frombuffer(base64.b64decode(payload["data"]), dtype="<f4")
    return {name: raw[off:off + n] for name, off, n in payload["arrays"]}


def trace_bytes(trace: Trace) -> tuple[int, int]:
    """(bytes of float32 data, bytes of the whole JSON payload) of ``trace``."""
    import json

    payload = encode_trace(trace)
    return len(base64.b64decode(payload["data"])), len(json.dumps(payload))
