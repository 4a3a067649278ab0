"""Checkpoints: weights in safetensors, configuration and metrics as JSON in the file's metadata.

A file holds ``model.*`` tensors (the model's state dict), optionally ``optim.*`` tensors (Adam's
moments, for resuming) and ``train.*`` tensors (a run with weight averaging: ``model.*`` is the
average, ``train.*`` the weights the optimizer was moving, which a resumed run continues), and
metadata::

    format: "rnnviz", format_version: "1"
    config: the ModelConfig as JSON
    metrics: JSON (dataset, binarization seed, test NLL, steps, training time, hardware, versions)
    optim: JSON of the optimizer's scalar state (step counts, hyper-parameters), when saved

Nothing here unpickles anything: safetensors holds raw tensors and a JSON header. Loading reads
the header alone first and checks all of it before any tensor or module is made: every field's
type, every tensor's dtype, shape and place in the file, the config against a set of ``Limits``
(the explorer's are narrow, the command line's are the ModelConfig bounds), and the tensors the
config implies (names, shapes, dtypes: ``expected_tensors``, computed without building the model)
against those the header lists. So a 260-byte file that claims a billion-parameter model is
refused in microseconds instead of making the loader allocate gigabytes, and every malformed
header gets a ``CheckpointError`` naming the field.

Writes go to a temporary file in the same folder, are flushed to disk and then renamed over the
target, so a crash mid-write leaves the previous file intact.
"""

from __future__ import annotations

import json
import math
import os
import platform
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as st_save

from .model import CELLS, ModelConfig, RowModel

FORMAT, FORMAT_VERSION = "rnnviz", "1"
MAX_HEADER_BYTES = 10 * 1024 * 1024
MAX_FILE_BYTES = 512 * 1024 * 1024
APP_FILE_BYTES = 50 * 1024 * 1024  # the explorer's upload limit
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


# The command line reads anything a ModelConfig allows whose weights fit the file-size limit.
CLI_LIMITS = Limits(hidden=4096, layers=8, num_classes=1000, head_hidden=8192, latent=1024, height=512,
                    width=512, parameters=MAX_FILE_BYTES // 4, name="the command line's limit")
# The explorer shows 28x28 digits of at most 10 classes, and takes what fits its 50 MB upload limit:
# 13,107,200 float32 parameters (the per-field caps are sanity bounds under that budget).
APP_LIMITS = Limits(hidden=1024, layers=4, num_classes=10, head_hidden=1024, latent=256, height=28, width=28,
                    parameters=APP_FILE_BYTES // 4, image_size=(28, 28), header_bytes=1024 * 1024,
                    name="the explorer's limit")


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


# ---- writing --------------------------------------------------------------------------------------
def cpu_model() -> str:
    """The CPU's model name as the OS reports it (Linux: /proc/cpuinfo), or "" where it does not."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()[:100]
    except OSError:
        pass
    return ""


def environment() -> dict:
    """Library versions and hardware, recorded with every checkpoint."""
    import numpy

    info = {"torch": torch.__version__, "numpy": numpy.__version__, "python": platform.python_version(),
            "platform": platform.platform(), "cpu": cpu_model() or platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict, dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        scalars["state"][str(idx)] = {}
        for key, val in st.items():
            if torch.is_tensor(val) and val.dim() > 0:
                tensors[f"optim.{idx}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars["state"][str(idx)][key] = float(val)
    return tensors, scalars


def save_checkpoint(path: str | os.PathLike, model: RowModel, metrics: dict | None = None,
                    optimizer: torch.optim.Optimizer | None = None, training: RowModel | None = None) -> Path:
    """Write ``model`` (and optionally the optimizer, and the ``training`` weights when ``model``
    is their average) to ``path`` atomically."""
    path = Path(path)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if training is not None:
        tensors.update({f"train.{k}": v.detach().cpu().contiguous() for k, v in training.state_dict().items()})
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION,
            "config": json.dumps(model.config.to_dict()),
            "metrics": json.dumps(metrics or {}, default=str)}
    if optimizer is not None:
        opt_tensors, scalars = _optimizer_tensors(optimizer)
        tensors.update(opt_tensors)
        meta["optim"] = json.dumps(scalars)
    return write_safetensors(path, tensors, meta)


def remove_files(paths) -> list[Path]:
    """Delete each of ``paths`` that can be deleted (a partial file a killed writer left, say);
    returns those removed."""
    removed = []
    for p in paths:
        try:
            Path(p).unlink()
            removed.append(Path(p))
        except OSError:
            pass
    return removed


def write_safetensors(path: str | os.PathLike, tensors: dict, meta: dict[str, str]) -> Path:
    """Write ``tensors`` and ``meta`` as a safetensors file at ``path`` atomically (a temporary file in
    the same folder, flushed to disk and renamed over ``path``: a reader never sees half a file);
    refused if the header would be too large to load again."""
    path = Path(path)
    data = st_save(tensors, metadata=meta)
    (n,) = struct.unpack("<Q", data[:8])
    if n > MAX_HEADER_BYTES:  # it could not be loaded again
        raise CheckpointError(f"{path}: the metadata makes a {n} byte header, over the {MAX_HEADER_BYTES} "
                              "byte limit (are the metrics very large?)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it owner-only; a checkpoint is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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


def read_metadata(path: str | os.PathLike, limits: Limits = CLI_LIMITS) -> dict:
    """Config, metrics and format of a checkpoint, parsed, without reading any tensor: the header
    is checked throughout, the config against ``limits``, and the tensors it lists against the
    config. {"config": ModelConfig, "metrics": dict, "optim": dict (when saved)}."""
    header = read_header(path, limits)
    meta = _parse_metadata(path, header, limits)
    _check_listed_tensors(path, header, meta["config"])
    return meta


# ---- loading --------------------------------------------------------------------------------------
def _read_tensors(path: Path, prefix: str) -> dict[str, torch.Tensor]:
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k[len(prefix):]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
    except Exception as e:  # safetensors raises its own error types for malformed files
        raise CheckpointError(f"{path}: could not read tensors ({e})") from None


def load_state(path: str | os.PathLike, limits: Limits = CLI_LIMITS) -> tuple[RowModel, dict]:
    """(model on the CPU in eval mode, metadata dict with "config" and "metrics").

    The header is checked against ``limits`` before the model is built (the explorer passes
    APP_LIMITS). Raises CheckpointError with the reason.
    """
    path = Path(path)
    meta = read_metadata(path, limits)
    model = RowModel(meta["config"])
    model.load_state_dict(_checked_weights(path, model, _read_tensors(path, "model."), "model."))
    model.eval()
    return model, meta


def _checked_weights(path, model: RowModel, got: dict, prefix: str) -> dict:
    """``got`` if it is exactly ``model``'s state dict in names, shapes and dtypes, and finite."""
    expected = model.state_dict()
    if set(got) != set(expected):  # for model.* the header said otherwise: the file changed while we read it
        raise CheckpointError(f"{path}: {prefix}* tensors do not match the config"
                              + (" (the file changed while loading?)" if prefix == "model." else ""))
    for k, v in expected.items():
        if got[k].shape != v.shape or got[k].dtype != v.dtype:
            raise CheckpointError(f"{path}: tensor {prefix + k!r} is {tuple(got[k].shape)} {got[k].dtype}, "
                                  f"the config needs {tuple(v.shape)} {v.dtype}")
        if not torch.isfinite(got[k]).all():
            raise CheckpointError(f"{path}: tensor {prefix + k!r} holds NaN or infinite values")
    return got


def load_training_weights(path: str | os.PathLike, model: RowModel) -> bool:
    """Load the ``train.*`` weights of a run with weight averaging into ``model`` (built from the
    file's config); False, and ``model`` untouched, if the file has none (its ``model.*`` are then
    the training weights)."""
    got = _read_tensors(Path(path), "train.")
    if not got:
        return False
    model.load_state_dict(_checked_weights(path, model, got, "train."))
    return True


def load_checkpoint(path: str | os.PathLike, limits: Limits = CLI_LIMITS) -> RowModel:
    """The model stored at ``path``, on the CPU, in eval mode. Only safetensors files are read.
    Its metrics: ``load_state(path)[1]["metrics"]`` or ``read_metadata(path)["metrics"]``."""
    return load_state(path, limits)[0]


def load_optimizer_state(path: str | os.PathLike, optimizer: torch.optim.Optimizer) -> None:
    """Restore Adam's moments and step counts saved by ``save_checkpoint(..., optimizer=...)``."""
    meta = read_metadata(path)
    if "optim" not in meta:
        raise CheckpointError(f"{path}: holds no optimizer state to resume from")
    scalars = meta["optim"]
    if not (isinstance(scalars.get("state"), dict) and isinstance(scalars.get("param_groups"), list)
            and all(isinstance(st, dict) for st in scalars["state"].values())):
        raise CheckpointError(f"{path}: metadata 'optim' should hold a 'state' object of objects and a "
                              "'param_groups' list")
    tensors = _read_tensors(Path(path), "optim.")
    try:
        state = {}
        for idx, st in scalars["state"].items():
            entry = {k: torch.tensor(v) for k, v in st.items()}
            for name, t in tensors.items():
                i, key = name.split(".", 1)
                if i == idx:
                    entry[key] = t
            state[int(idx)] = entry
        optimizer.load_state_dict({"state": state, "param_groups": scalars["param_groups"]})
    except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
        raise CheckpointError(f"{path}: optimizer state does not fit this model ({str(e)[:200]})") from None


# ---- publishing -----------------------------------------------------------------------------------
def publish(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write ``src``'s model weights, config and metrics alone to ``dst``: no optimizer state and no
    training weights (with weight averaging the file's model is the average, and that is what it
    keeps). The file to ship: a third of a resumable one's size, loaded and scored the same, but it
    cannot be ``--resume``d (``--init-from`` still can start a run from it)."""
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise CheckpointError(f"{dst}: write the published copy to a new path, not over its source")
    model, meta = load_state(src)
    metrics = dict(meta["metrics"])
    names = read_header(src)  # the tensor names, without reading the tensors themselves
    dropped = [what for what, prefix in (("optimizer state", "optim."), ("training weights", "train."))
               if any(n.startswith(prefix) for n in names)]
    metrics["published_from"] = {"file": src.name, "dropped": dropped}
    return save_checkpoint(dst, model, metrics)

