"""The checks of each value a job sends, against its component (``check_field``): strings, numbers,
choices, files (in Gradio's upload folder, never a URL) and drawings, with the files and drawings
one request names summed in one ``FileBudget`` (count, bytes, and pixels read from image headers,
never decoded)."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING

import gradio as gr
from .base import (DRAWING_KEYS, FILE_KEYS, FILE_META, MAX_CHOICE, MAX_DEPTH, MAX_DIGITS, MAX_FILES, MAX_ID, MAX_LAYERS,
                   MAX_REQUEST_BYTES, MAX_REQUEST_PIXELS, MAX_TEXT, URL_PREFIXES, Refused)

if TYPE_CHECKING:
    from .blobs import BlobStore


def field_name(block, i: int) -> str:
    label = getattr(block, "label", None) or getattr(block, "elem_id", None)
    return f"{label!s:.60}" if label else f"input {i + 1}"


def _is_url(path) -> bool:
    return isinstance(path, str) and path.strip().lower().startswith(URL_PREFIXES)


def upload_folder() -> Path:
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder()).resolve()


def _in_cache(path: str) -> bool:
    """Whether ``path`` lies in Gradio's upload folder (where every uploaded file is put)."""
    try:
        Path(path).resolve().relative_to(upload_folder())
    except (ValueError, OSError, RuntimeError):
        return False
    return True


def _is_file(value) -> bool:
    return isinstance(value, dict) and ("path" in value or "url" in value or value.get("meta") == FILE_META)


def _check_file(value, name: str, budget: FileBudget | None = None, image: bool = False):
    """A file a visitor uploaded to this server first: never a URL, a data URL or a server path."""
    if not isinstance(value, dict):
        raise Refused(400, f"{name}: expected an uploaded file, got a {type(value).__name__}")
    path = value.get("path")
    if _is_url(path) or _is_url(value.get("url")) and "path" not in value:
        raise Refused(400, f"{name}: files are not fetched from URLs or data URLs; upload the file instead")
    if not (isinstance(path, str) and path and len(path) <= MAX_TEXT and _in_cache(path)):
        raise Refused(400, f"{name}: the file must be uploaded first (through /gradio_api/upload)")
    if value.get("meta") != FILE_META or set(value) - FILE_KEYS:
        raise Refused(400, f"{name}: a file is {{'path': ..., 'meta': {{'_type': 'gradio.FileData'}}}} "
                           "as /gradio_api/upload answered it")
    for key in ("url", "orig_name", "mime_type"):
        if not isinstance(value.get(key), (str, type(None))) or len(value.get(key) or "") > MAX_TEXT:
            raise Refused(400, f"{name}: the file's {key} must be a short string")
    if not isinstance(value.get("size"), (int, type(None))) or not isinstance(value.get("is_stream", False), bool):
        raise Refused(400, f"{name}: the file's size must be a number and is_stream true or false")
    if budget is not None:
        budget.add_file(path, name, image)


def check_value(value, name: str, max_len: int, depth: int = 0, budget: FileBudget | None = None):
    """Raise ``Refused`` for an oversized string or number, or a file that was not uploaded (a URL,
    a data URL, a server path), anywhere in ``value``."""
    if depth > MAX_DEPTH:
        raise Refused(400, f"{name}: the value is nested too deeply")
    if isinstance(value, str):
        if len(value) > max_len:
            raise Refused(413, f"{name}: the value is too long ({len(value):,} characters; at most {max_len:,})")
    elif isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= 10**MAX_DIGITS:
            raise Refused(400, f"{name}: the number is too large (more than {MAX_DIGITS} digits)")
    elif isinstance(value, dict):
        if _is_file(value):
            _check_file(value, name, budget)
        for k, v in value.items():
            check_value(k, name, MAX_CHOICE, depth + 1)
            check_value(v, name, max_len, depth + 1, budget)
    elif isinstance(value, list):
        for v in value:
            check_value(v, name, max_len, depth + 1, budget)


SCALAR = (str, int, float, type(None))


def check_field(block, value, name: str, budget: FileBudget, blobs: BlobStore | None = None, state=None):
    """Refuse a value of a type the component cannot take, before Gradio's own parsing raises."""
    choice = isinstance(block, (gr.Radio, gr.Dropdown))
    if isinstance(block, gr.ImageEditor):  # the sketchpad: {"background", "layers", "composite", "id"}
        if value is None:
            return
        if not isinstance(value, dict) or set(value) - DRAWING_KEYS:
            raise Refused(400, f"{name}: a drawing is {{'background', 'layers', 'composite'}} of uploaded images")
        for key in ("background", "composite"):
            if value.get(key) is not None:
                _check_file(value[key], f"{name} ({key})", budget, image=True)
        layers = value.get("layers")
        if layers is not None and not (isinstance(layers, list) and len(layers) <= MAX_LAYERS):
            raise Refused(400, f"{name}: the drawing's layers must be a list of at most {MAX_LAYERS} images")
        for layer in layers or []:
            _check_file(layer, f"{name} (a layer)", budget, image=True)
        drawing_id = value.get("id")
        if drawing_id is not None:
            if not isinstance(drawing_id, str) or len(drawing_id) > MAX_ID:
                raise Refused(400, f"{name}: the drawing's id must be a short string")
            if blobs is not None:
                blobs.charge(block, state, drawing_id, budget, name)
        return
    if isinstance(block, (gr.UploadButton, gr.File, gr.Image)):
        many = getattr(block, "file_count", "single") != "single"
        items = value if many and isinstance(value, list) else [value]
        for item in items:
            if item is not None:
                _check_file(item, name, budget, image=isinstance(block, gr.Image))
        return
    if choice:
        if getattr(block, "multiselect", False):
            if not (isinstance(value, (str, type(None))) or isinstance(value, list) and all(
                    isinstance(v, SCALAR) and not isinstance(v, bool) for v in value)):
                raise Refused(400, f"{name}: choose from the list (a list of choices)")
        elif not isinstance(value, SCALAR) or isinstance(value, bool):
            raise Refused(400, f"{name}: choose one of the choices (got a {type(value).__name__})")
    elif isinstance(block, gr.Checkbox):
        if not isinstance(value, (bool, type(None))):
            raise Refused(400, f"{name}: must be true or false (got a {type(value).__name__})")
    elif isinstance(block, (gr.Slider, gr.Number)):
        if not isinstance(value, SCALAR):
            raise Refused(400, f"{name}: must be a number (got a {type(value).__name__})")
    elif isinstance(block, gr.Textbox):
        if not isinstance(value, SCALAR) or isinstance(value, bool):
            raise Refused(400, f"{name}: must be text (got a {type(value).__name__})")
    check_value(value, name, MAX_CHOICE if choice else MAX_TEXT, budget=budget)


class FileBudget:
    """The files and images one request names, summed: at most ``MAX_FILES`` references,
    ``MAX_REQUEST_BYTES`` bytes, ``MAX_REQUEST_PIXELS`` pixels (read from the image headers only)."""

    def __init__(self, max_files: int = MAX_FILES, max_bytes: int = MAX_REQUEST_BYTES,
                 max_pixels: int = MAX_REQUEST_PIXELS):
        self.max_files, self.max_bytes, self.max_pixels = max_files, max_bytes, max_pixels
        self.files = self.bytes = self.pixels = 0
        self._sizes: dict[str, tuple[int, int]] = {}  # path -> (bytes, pixels), read once

    def add_file(self, path: str, name: str, image: bool):
        if path not in self._sizes:
            try:
                size = os.stat(path).st_size
            except OSError:
                size = 0  # gone: Gradio's own reading says so
            self._sizes[path] = (size, image_pixels(path) if image else 0)
        size, pixels = self._sizes[path]
        self.add(size, pixels, name)

    def add_blob(self, data: bytes, name: str):
        self.add(len(data), image_pixels(io.BytesIO(data)), name)

    def add(self, size: int, pixels: int, name: str):
        self.files += 1
        self.bytes += size
        self.pixels += pixels
        if self.files > self.max_files:
            raise Refused(413, f"{name}: the request names too many files (at most {self.max_files})")
        if self.bytes > self.max_bytes:
            raise Refused(413, f"{name}: the files of this request are too large together "
                               f"(at most {self.max_bytes // 2**20} MB)")
        if self.pixels > self.max_pixels:
            raise Refused(413, f"{name}: the drawing is too large: its images hold more than "
                               f"{self.max_pixels:,} pixels in all")


def image_pixels(source) -> int:
    """Width x height from an image's header (nothing is decoded); 0 if it is not an image."""
    from PIL import Image

    try:
        with Image.open(source) as im:
            w, h = im.size
    except Exception:  # not an image, or an unreadable one: Gradio's reading gives the message
        return 0
    return int(w) * int(h)
