"""What a checkpoint's header must hold, checked before any tensor or module is made.

A safetensors file starts with an 8-byte length and a JSON header that lists every tensor (dtype,
shape, where its bytes lie) and a ``__metadata__`` object of strings (rnnviz's: format, config,
metrics, optim; see ``rnnviz.checkpoint``). Here:

- the sizes: ``MAX_FILE_BYTES``, ``MAX_HEADER_BYTES``, the explorer's ``APP_FILE_BYTES``, and the
  ``Limits`` a model must fit (``CLI_LIMITS``: any ModelConfig whose weights fit the file-size limit;
  ``APP_LIMITS``: the explorer's), with ``expected_tensors`` / ``parameter_count``, computed from a
  config without building the model;
- ``read_header``: the header, every field checked (types, dtypes, shapes, offsets inside the file and
  tiling it), so every malformed header gets a ``CheckpointError`` naming the field;
- ``check_metadata``: the metadata parsed (strict JSON), the config checked against the limits and the
  tensors the header lists against those the config implies.

``rnnviz.checkpoint`` reads and writes the files with these checks and re-exports every public name.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path

from .model import CELLS, ModelConfig
from .rules import IMAGE_SIZE, MODEL_BOUNDS

FORMAT, FORMAT_VERSION = "rnnviz", "1"
MAX_HEADER_BYTES = 10 * 1024 * 1024
MAX_FILE_BYTES = 512 * 1024 * 1024
APP_FILE_BYTES = 50 * 1024 * 1024  # the explorer's upload limit (APP_LIMITS.file_bytes)
MAX_INT_DIGITS = 30  # longer integers in a header are refused before Python converts them

# safetensors dtype -> (bytes per element, the torch dtype it loads as; named in messages)
DTYPES = {"BOOL": (1, "torch.bool"), "U8": (1, "torch.uint8"), "I8": (1, "torch.int8"),
          "F8_E5M2": (1, "torch.float8_e5m2"), "F8_E4M3": (1, "torch.float8_e4m3fn"),
          "I16": (2, "torch.int16"), "U16": (2, "torch.uint16"), "F16": (2, "torch.float16"),
          "BF16": (2, "torch.bfloat16"), "I32": (4, "torch.int32"), "U32": (4, "torch.uint32"),
          "F32": (4, "torch.float32"), "I64": (8, "torch.int64"), "U64": (8, "torch.uint64"),
          "F64": (8, "torch.float64")}


class CheckpointError(ValueError):
    """A file that is not a usable rnnviz checkpoint; the message says why."""


# ---- limits ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    """What model a checkpoint may describe, checked from its header before anything is allocated.

    The per-field caps bound each size; ``parameters`` bounds them together (4 bytes each, as
    float32), which is what memory and the cost of a job follow.
    """

    hidden: int
    layers: int
    num_classes: int
    head_hidden: int
    latent: int
    height: int  # most rows
    width: int  # most pixels per row
    parameters: int  # most parameters in all
    image_size: tuple[int, int] | None = None  # the one (height, width) accepted, if any
    header_bytes: int = MAX_HEADER_BYTES
    # the largest file these limits are for: ``read_header`` refuses any file over MAX_FILE_BYTES, and
    # the explorer refuses an upload over its limits' file_bytes before reading it (rnnviz.app.uploads)
    file_bytes: int = MAX_FILE_BYTES
    name: str = "the limit"  # how messages call these limits

    def problem(self, config: ModelConfig) -> str | None:
        """Why ``config`` is outside these limits (None if it is inside). Allocates nothing."""
        c = config
        if self.image_size is not None and (c.height, c.width) != tuple(self.image_size):
            h, w = self.image_size
            return (f"the model draws {c.height}\u00d7{c.width} images (another dataset size); "
                    f"{self.name} is {h}\u00d7{w} images")
        for field in ("hidden", "layers", "num_classes", "head_hidden", "latent", "height", "width"):
            value, cap = getattr(c, field), getattr(self, field)
            if value > cap:
                return f"config {field!r} is {value}, over {self.name} of {cap}"
        n = parameter_count(c)
        if n > self.parameters:
            return (f"the config implies {n:,} parameters ({4 * n / 2**20:,.0f} MB as float32), over "
                    f"{self.name} of {self.parameters:,}")
        return None


# The command line reads anything a ModelConfig allows (rules.MODEL_BOUNDS) whose weights fit the
# file-size limit.
CLI_LIMITS = Limits(**{field: hi for field, (_, hi) in MODEL_BOUNDS.items()}, parameters=MAX_FILE_BYTES // 4,
                    name="the command line's limit")
# The explorer shows 28x28 digits (rules.IMAGE_SIZE) of at most 10 classes, and takes what fits its
# 50 MB upload limit: 13,107,200 float32 parameters (the per-field caps are sanity bounds under that
# budget; the Train tab's choices, rnnviz.app.training.TRAIN_LIMITS, read them).
APP_LIMITS = Limits(hidden=1024, layers=4, num_classes=10, head_hidden=1024, latent=256, height=IMAGE_SIZE[0],
                    width=IMAGE_SIZE[1], parameters=APP_FILE_BYTES // 4, image_size=IMAGE_SIZE,
                    header_bytes=1024 * 1024, file_bytes=APP_FILE_BYTES, name="the explorer's limit")


def expected_tensors(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The state dict of ``RowModel(config)``, name -> shape (all float32), without building it.

    Mirrors the modules in rnnviz/model.py (torch's nn.LSTM/GRU/RNN weight layout, the masked head,
    the VAE encoder); tests check it against RowModel for every cell and many sizes.
    """
    c = config
    gates = {"lstm": 4, "gru": 3, "rnn": 1}[c.cell]
    shapes = {}
    for k in range(c.layers):
        n_in = c.input_size if k == 0 else c.hidden
        shapes[f"rnn.weight_ih_l{k}"] = (gates * c.hidden, n_in)
        shapes[f"rnn.weight_hh_l{k}"] = (gates * c.hidden, c.hidden)
        shapes[f"rnn.bias_ih_l{k}"] = (gates * c.hidden,)
        shapes[f"rnn.bias_hh_l{k}"] = (gates * c.hidden,)
    ctx = c.hidden + c.width
    shapes.update({"head.pix_to_hid": (c.head_hidden, c.width), "head.hid_to_out": (c.width, c.head_hidden),
                   "head.pix_to_out": (c.width, c.width),
                   "head.ctx_to_hid.weight": (c.head_hidden, ctx), "head.ctx_to_hid.bias": (c.head_hidden,),
                   "head.ctx_to_out.weight": (c.width, ctx), "head.ctx_to_out.bias": (c.width,)})
    if c.latent:
        ch, hid = 32, 256  # Encoder's channels and hidden units
        flat = 2 * ch * ((c.height + 3) // 4) * ((c.width + 3) // 4)
        shapes.update({"encoder.conv.0.weight": (ch, 1, 3, 3), "encoder.conv.0.bias": (ch,),
                       "encoder.conv.2.weight": (2 * ch, ch, 3, 3), "encoder.conv.2.bias": (2 * ch,),
                       "encoder.fc.0.weight": (hid, flat), "encoder.fc.0.bias": (hid,),
                       "encoder.fc.2.weight": (2 * c.latent, hid), "encoder.fc.2.bias": (2 * c.latent,)})
    return shapes


def parameter_count(config: ModelConfig) -> int:
    """``RowModel(config).num_parameters()``, computed from the config alone."""
    return sum(math.prod(s) for s in expected_tensors(config).values())


# ---- reading the header ---------------------------------------------------------------------------
def _what(v) -> str:
    """A JSON value's type in words, with a short rendering, for messages."""
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(v), type(v).__name__)
    if v is None or isinstance(v, dict):
        return kind
    text = repr(v)
    return f"{kind} {text[:40] + '...' if len(text) > 40 else text}"


def _short(v) -> str:
    text = repr(v)
    return text[:60] + "..." if len(text) > 60 else text


def _pairs(pairs: list) -> dict:
    """A JSON object that names a key twice is refused: readers disagree on which value counts."""
    out = {}
    for k, v in pairs:
        if k in out:
            raise CheckpointError(f"the key {_short(k)} appears twice in one object")
        out[k] = v
    return out


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise CheckpointError(f"an integer of {len(text)} digits")
    return int(text)


def parse_json(text: str | bytes, what: str, path) -> object:
    """``text`` as JSON, or CheckpointError naming ``what``: duplicate keys, integers longer than
    MAX_INT_DIGITS, nesting too deep and non-UTF-8 bytes are refused too."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        return json.loads(text, object_pairs_hook=_pairs, parse_int=_int)
    except UnicodeDecodeError as e:
        raise CheckpointError(f"{path}: {what} is not JSON: not UTF-8 text ({e})") from None
    except CheckpointError as e:
        raise CheckpointError(f"{path}: {what} is not valid JSON: {e}") from None
    except RecursionError:
        raise CheckpointError(f"{path}: {what} is not valid JSON: nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, and Python's own integer limits
        raise CheckpointError(f"{path}: {what} is not valid JSON ({str(e)[:200]})") from None


def _check_tensor(path, name: str, info, data_len: int) -> tuple[int, int]:
    """Check one tensor entry of the header; returns its (begin, end) in the data section."""
    t = f"{path}: tensor {_short(name)}"
    if not isinstance(info, dict):
        raise CheckpointError(f"{t} should be an object with dtype, shape and data_offsets, got {_what(info)}")
    for field in ("dtype", "shape", "data_offsets"):
        if field not in info:
            raise CheckpointError(f"{t} has no {field!r}")
    dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPES:
        raise CheckpointError(f"{t}: 'dtype' should be a safetensors dtype ({', '.join(DTYPES)}), "
                              f"got {_what(dtype)}")
    if not (isinstance(shape, list) and len(shape) <= 16
            and all(type(d) is int and d >= 0 for d in shape)):
        raise CheckpointError(f"{t}: 'shape' should be a list of at most 16 integers >= 0, got {_what(shape)}")
    if not (isinstance(offs, list) and len(offs) == 2 and all(type(o) is int and o >= 0 for o in offs)):
        raise CheckpointError(f"{t}: 'data_offsets' should be two integers [begin, end] >= 0, got {_what(offs)}")
    begin, end = offs
    if begin > end:
        raise CheckpointError(f"{t}: 'data_offsets' {offs} end before they begin")
    if end > data_len:
        raise CheckpointError(f"{t} lies outside the file (truncated?): its data_offsets end at byte {end}, "
                              f"the data section has {data_len}")
    need = math.prod(shape) * DTYPES[dtype][0]
    if end - begin != need:
        raise CheckpointError(f"{t}: 'data_offsets' span {end - begin} bytes, its shape {tuple(shape)} of "
                              f"{dtype} needs {need}")
    return begin, end


def _check_layout(path, spans: list[tuple[int, int, str]], data_len: int) -> None:
    """The tensors tile the data section: no overlap, no gap, nothing after the last one
    (the same rule the safetensors library applies, with a message that names the tensors)."""
    pos, prev = 0, None
    for begin, end, name in sorted(spans):
        if begin < pos:
            raise CheckpointError(f"{path}: tensors {_short(prev)} and {_short(name)} overlap in the file "
                                  f"('data_offsets')")
        if begin > pos:
            raise CheckpointError(f"{path}: tensor {_short(name)} starts at byte {begin} but the data before it "
                                  f"ends at {pos} ('data_offsets' leave a gap)")
        pos, prev = end, name
    if pos != data_len:
        raise CheckpointError(f"{path}: {data_len - pos} bytes after the last tensor "
                              "(the header does not describe the whole file)")


def read_header(path: str | os.PathLike, limits: Limits = CLI_LIMITS) -> dict:
    """The safetensors JSON header of ``path``, every field checked: sizes, tensor entries
    (dtype, shape, data_offsets inside the file and tiling it) and ``__metadata__`` (strings)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"{path}: the file is empty")
    if size > MAX_FILE_BYTES:
        raise CheckpointError(f"{path}: {size} bytes is larger than the {MAX_FILE_BYTES} byte limit")
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise CheckpointError(f"{path}: too short to be a safetensors file ({size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > MAX_HEADER_BYTES:
            if head[:1] == b"\x80" or head[:2] == b"PK":
                raise CheckpointError(f"{path}: looks like a pickle or torch.save file; only "
                                      "safetensors checkpoints are loaded (a pickle can run code)")
            raise CheckpointError(f"{path}: not a safetensors file (header claims {n} bytes, "
                                  f"file has {size})")
        if n > limits.header_bytes:
            raise CheckpointError(f"{path}: the header is {n} bytes, over {limits.name} of {limits.header_bytes}")
        raw = f.read(n)
    if raw[:1] != b"{":
        raise CheckpointError(f"{path}: not a safetensors file (header is not JSON: it does not start "
                              "with '{')")
    header = parse_json(raw, "the header", path)
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: not a safetensors file (header is not an object)")
    data_len = size - 8 - n
    spans = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = _check_tensor(path, name, info, data_len)
        spans.append((begin, end, name))
    _check_layout(path, spans, data_len)
    meta = header.get("__metadata__")
    if meta is not None and not isinstance(meta, dict):
        raise CheckpointError(f"{path}: header '__metadata__' should be an object of strings, got {_what(meta)}")
    for key, value in (meta or {}).items():
        if not isinstance(value, str):
            hint = " (the JSON encoded as text)" if key in ("config", "metrics", "optim") else ""
            raise CheckpointError(f"{path}: metadata {_short(key)} should be a string{hint}, got {_what(value)}")
    return header


def _parse_metadata(path, header: dict, limits: Limits) -> dict:
    meta = header.get("__metadata__") or {}
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an rnnviz checkpoint (metadata format is "
                              f"{_short(meta.get('format'))}, expected {FORMAT!r})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: format version {_short(meta.get('format_version'))} is not supported "
                              f"(this rnnviz reads version {FORMAT_VERSION})")
    out = {key: parse_json(meta[key], f"metadata {key!r}", path) for key in ("config", "metrics", "optim")
           if key in meta}
    if "config" not in out:
        raise CheckpointError(f"{path}: metadata has no model config")
    for key in out:
        if not isinstance(out[key], dict):
            raise CheckpointError(f"{path}: metadata {key!r} is not a JSON object (got {_what(out[key])})")
    out["config"] = _config(path, out["config"])
    problem = limits.problem(out["config"])
    if problem:
        raise CheckpointError(f"{path}: {problem}")
    out.setdefault("metrics", {})
    return out


def _config(path, d: dict) -> ModelConfig:
    if not isinstance(d.get("cell", "lstm"), str):
        raise CheckpointError(f"{path}: bad model config: 'cell' should be one of {sorted(CELLS)}, "
                              f"got {_what(d['cell'])}")
    try:
        return ModelConfig.from_dict(d)
    except (TypeError, ValueError) as e:
        text = str(e)
        raise CheckpointError(f"{path}: bad model config: {text[:300] + '...' if len(text) > 300 else text}") \
            from None


def _check_listed_tensors(path, header: dict, config: ModelConfig) -> None:
    """The ``model.*`` tensors the header lists are exactly those the config implies."""
    listed = {k[len("model."):]: v for k, v in header.items() if k.startswith("model.")}
    expected = expected_tensors(config)
    missing = sorted(set(expected) - set(listed))
    extra = sorted(set(listed) - set(expected))
    if missing or extra:
        raise CheckpointError(f"{path}: tensors do not match the config "
                              f"(missing {missing[:5]}, unexpected {[k[:60] for k in extra[:5]]})")
    for k, shape in expected.items():
        got_shape, got_dtype = tuple(listed[k]["shape"]), listed[k]["dtype"]
        if got_shape != shape or got_dtype != "F32":
            raise CheckpointError(f"{path}: tensor {k!r} is {got_shape} {DTYPES[got_dtype][1]}, "
                                  f"the config needs {shape} torch.float32")


def check_metadata(path, header: dict, limits: Limits) -> dict:
    """The metadata of a checked ``header`` parsed: {"config": ModelConfig, "metrics": dict, "optim":
    dict (when saved)}, the config within ``limits`` and the tensors the header lists exactly those
    it implies. CheckpointError naming the problem otherwise."""
    meta = _parse_metadata(path, header, limits)
    _check_listed_tensors(path, header, meta["config"])
    return meta
