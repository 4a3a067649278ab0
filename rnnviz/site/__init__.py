"""A static explorer: a folder of HTML, JavaScript and weights that runs the model in the browser.

    python -m rnnviz.site --out site/                        # the shipped LSTM, GRU, RNN and mixture
    python -m rnnviz.site --checkpoint a.safetensors --checkpoint b.safetensors --out site/
    python -m http.server -d site/                           # or push site/ as a Static Space

The page (``static/``) is vanilla ES modules with no build step: ``model.js`` is the row model's math
(cells, conditioning, masked head, sampler), ``random.js`` PyTorch's CPU generator, ``state.js`` the
settings and the URL, ``draw.js`` the canvases, ``view.js`` a step view, ``group.js`` several traces on
one slider (Compare cells), ``page.js`` the wiring. ``view.js``, ``group.js``, ``intervene.js``,
``trace.js``, ``draw.js``, ``rules.js`` and ``view.css`` are the one view layer the Gradio app draws with
too (``gradio.js`` mounts them there); ``rules.json`` (``rnnviz.rules``) holds every colour, name and
limit they use. Nothing is fetched from any other host. This
module writes the weights the page reads: per model one ``models/<name>.bin`` of the
state dict's float32 tensors, little-endian, back to back, and ``models.json`` with each model's
config, metrics and tensor offsets. Only the model's tensors are exported (never optimizer state),
exactly as stored, so the page computes with the trained weights bit for bit.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np

from .. import rules
from ..checkpoint import CheckpointError, load_state, parameter_count, read_metadata
from ..mixture import is_mixture_file, load_mixture, read_mixture_metadata
from ..model import CELLS
from .about import about_page

ROOT = Path(__file__).resolve().parent
STATIC = ROOT / "static"
SHIPPED = ROOT.parent.parent / "checkpoints"
DEFAULT_CHECKPOINTS = tuple(SHIPPED / f"mnist_{c}.safetensors" for c in CELLS)  # the shipped LSTM, GRU, RNN
# exported too by default when shipped: the exact mixture of scan orders (its parts load when it is picked)
DEFAULT_MIXTURES = (SHIPPED / "mixture" / "mnist_mixture.safetensors",)
GALLERY = ROOT.parent / "assets" / "gallery.npz"  # the app's test digits for Complete (MNIST test set)
IMAGE_SIZE = rules.IMAGE_SIZE  # the page draws MNIST-size models only
MAX_SITE_BYTES = 64 * 1024 * 1024  # weights of all models together: a page should load in seconds
METRIC_NUMBERS = ("test_nll", "parameters", "train_seconds", "step")
METRIC_TEXTS = ("dataset", "test_nll_protocol", "binarization", "saved_at")


class SiteError(CheckpointError):
    """A checkpoint the static page cannot run, or a site that cannot be written; the message says why."""


def site_problem(config) -> str | None:
    """Why the page cannot run a model with this config (None if it can)."""
    if config.latent:
        return (f"it is a VAE (latent={config.latent}): the static page runs the class-conditional and "
                "unconditional row models only, not a VAE's encoder (use the Gradio app's Reconstruct tab)")
    if (config.height, config.width) != IMAGE_SIZE:
        return (f"the model draws {config.height}\u00d7{config.width} images; the page shows "
                f"{IMAGE_SIZE[0]}\u00d7{IMAGE_SIZE[1]} (MNIST-size) models only")
    return None


def model_name(path: Path, fallback: str = "model") -> str:
    """The model's name in the page and the URL: the file stem (or a mixture part's name, given as
    ``Path(name)``), letters, digits, '-' and '_' only, at most 40 characters."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", path.name.removesuffix(".safetensors")).strip("_-")[:40]
    return name or fallback


def _metrics(metrics: dict) -> dict:
    """The metrics the page shows: finite numbers and short texts (the page escapes every text)."""
    out = {}
    for key in METRIC_NUMBERS:
        v = metrics.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[key] = v
    for key in METRIC_TEXTS:
        if isinstance(metrics.get(key), str):
            out[key] = metrics[key][:200]
    return out


def size_problem(config) -> str | None:
    """Why the model's weights alone are over ``MAX_SITE_BYTES`` (None if they fit), from its config."""
    n = parameter_count(config)
    if 4 * n > MAX_SITE_BYTES:
        return (f"its {n:,} parameters are {4 * n / 2**20:,.0f} MB as float32, more than the page's "
                f"{MAX_SITE_BYTES // 2**20} MB limit")
    return None


def _pack(model, where) -> tuple[dict, bytes]:
    """(tensor offsets and shapes, the bytes): the model's own float32 tensors, little-endian, back
    to back (masks are buffers the page rebuilds, not stored)."""
    tensors, chunks, offset = {}, [], 0
    for key, value in model.state_dict().items():
        a = np.ascontiguousarray(value.detach().cpu().numpy(), dtype="<f4")
        if value.dtype.is_floating_point is False or a.dtype != np.dtype("<f4"):
            raise SiteError(f"{where}: tensor {key!r} is {value.dtype}, the page reads float32 only")
        tensors[key] = {"offset": offset, "shape": list(a.shape)}
        chunks.append(a.tobytes())
        offset += a.nbytes
    return tensors, b"".join(chunks)


def export_model(path: str | Path) -> tuple[dict, bytes]:
    """(manifest entry, the bytes of ``models/<name>.bin``) for the checkpoint at ``path``. A model
    the page cannot run, or too large for it, is refused from the file's header, before any tensor
    is read or the model built."""
    path = Path(path)
    config = read_metadata(path)["config"]  # the header only; raises CheckpointError with the reason
    problem = site_problem(config) or size_problem(config)
    if problem:
        raise SiteError(f"{path}: cannot export for the static page: {problem}")
    model, meta = load_state(path)  # safetensors only; raises CheckpointError with the reason
    name = model_name(path)
    tensors, data = _pack(model, path)
    return ({"name": name, "file": f"models/{name}.bin", "bytes": len(data), "config": config.to_dict(),
             "metrics": _metrics(meta["metrics"]), "tensors": tensors}, data)


def export_mixture(path: str | Path) -> tuple[dict, list[tuple[str, bytes]]]:
    """(manifest entry, [(file, bytes)] one per part) for the mixture file at ``path``
    (``rnnviz.mixture``): the entry has ``mixture: true`` and ``parts``, each part an entry like a
    model's (``models/<name>.<k>.bin``). Checked from the header first, as a model is."""
    path = Path(path)
    meta = read_mixture_metadata(path)
    for k, config in enumerate(meta.configs):
        problem = site_problem(config) or size_problem(config)
        if problem:
            raise SiteError(f"{path} (part {k}): cannot export for the static page: {problem}")
    mixture, name = load_mixture(path), model_name(path)
    parts, files = [], []
    for k, (part, pname, pm) in enumerate(zip(mixture.parts, mixture.names, mixture.part_metrics)):
        tensors, data = _pack(part, f"{path} (part {k})")
        file = f"models/{name}.{k}.bin"
        parts.append({"name": model_name(Path(pname), f"part{k}"), "file": file,
                      "bytes": len(data), "config": part.config.to_dict(), "metrics": _metrics(pm),
                      "tensors": tensors})
        files.append((file, data))
    entry = {"name": name, "mixture": True, "bytes": sum(p["bytes"] for p in parts),
             "config": parts[0]["config"], "metrics": _metrics(mixture.metrics), "parts": parts}
    return entry, files


def _export(path: Path) -> tuple[dict, list[tuple[str, bytes]]]:
    if is_mixture_file(path):
        return export_mixture(path)
    entry, data = export_model(path)
    return entry, [(entry["file"], data)]


def gallery() -> dict:
    """The app's test digits (grayscale 0-255, binarized in the page as the app does), as JSON."""
    with np.load(GALLERY, allow_pickle=False) as z:
        images, labels = z["images"].astype(np.uint8), z["labels"].astype(int)
    return {"source": "MNIST test set", "labels": labels.tolist(),
            "images": base64.b64encode(images.tobytes()).decode("ascii"), "shape": list(images.shape)}


def card(title: str, models: list[dict], app_url: str | None) -> str:
    """README.md of the site folder: a Hugging Face Static Space card and how to serve the folder."""
    names = ", ".join(m["name"] for m in models)
    link = f"\nThe full Gradio lab (training, interventions, the VAE): {app_url}\n" if app_url else ""
    return (f"---\ntitle: {json.dumps(title)}\nemoji: \u270d\ufe0f\ncolorFrom: indigo\ncolorTo: yellow\nsdk: static\n"
            f"app_file: index.html\npinned: false\nshort_description: Watch recurrent networks write digits, "
            f"in your browser\n---\n\n# {title}\n\nA static page that runs recurrent image models ({names}) in "
            "the visitor's browser: generate a digit, scrub through its 28 steps (every gate and state), "
            "complete a drawing, compare the cells on one digit and seed, share a link to the exact view. No server: push this folder as a Hugging "
            "Face Static Space, serve it with GitHub Pages, or locally with `python -m http.server -d .`.\n"
            f"{link}\nMade with `python -m rnnviz.site` (rnnviz).\n")


def export_site(checkpoints=None, out: str | Path = "site", app_url: str | None = None,
                title: str = "rnnviz static explorer") -> dict:
    """Write the static site for ``checkpoints`` (default: the shipped LSTM, GRU and RNN, and the
    shipped mixture of scan orders when it is there) into
    ``out``. Returns the manifest. Raises SiteError/CheckpointError naming the reason."""
    paths = [Path(p) for p in (checkpoints or DEFAULT_CHECKPOINTS)]
    if not checkpoints and not all(p.is_file() for p in paths):
        raise SiteError(f"the shipped checkpoints are not in {SHIPPED} (an installed package does not carry "
                        "them): name yours with --checkpoint PATH")
    if not checkpoints:
        paths += [p for p in DEFAULT_MIXTURES if p.is_file()]
    if app_url is not None and not re.fullmatch(r"https?://[^\s\"'<>]+", app_url):
        raise SiteError(f"--app-url must be an http(s) address, got {app_url[:80]!r}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SiteError(f"{out} exists and is not a folder")
    seen = {}
    for p in paths:
        n = model_name(p)
        if n in seen:
            raise SiteError(f"two checkpoints would both be called {n!r} on the page ({seen[n]} and {p}): rename one")
        seen[n] = p
    exported = [_export(p) for p in paths]  # every check before anything is written
    models = [entry for entry, _ in exported]
    total = sum(m["bytes"] for m in models)
    if total > MAX_SITE_BYTES:
        raise SiteError(f"the weights add up to {total / 2**20:.1f} MB, more than the page's "
                        f"{MAX_SITE_BYTES // 2**20} MB limit: export fewer or smaller models")
    (out / "models").mkdir(parents=True, exist_ok=True)
    written = set()
    for _, files in exported:
        for file, data in files:
            (out / file).write_bytes(data)
            written.add(Path(file).name)
    for old in (out / "models").glob("*.bin"):  # weights of an earlier export into the same folder
        if old.name not in written:
            old.unlink()
    for f in STATIC.iterdir():
        if f.is_file() and f.suffix in (".html", ".js", ".css") and f.name != "gradio.js":  # gradio.js: the app's host
            shutil.copyfile(f, out / f.name)
    manifest = {"format": "rnnviz-site", "version": 1, "title": title, "app_url": app_url,
                "default": models[0]["name"], "models": models}
    (out / "models.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    (out / "digits.json").write_text(json.dumps(gallery()), encoding="utf-8")
    (out / "rules.json").write_text(json.dumps(rules.as_json()), encoding="utf-8")  # what the page's modules read
    (out / "about.html").write_text(about_page(title), encoding="utf-8")
    (out / "README.md").write_text(card(title, models, app_url), encoding="utf-8")
    (out / ".nojekyll").write_text("")  # GitHub Pages: serve the files as they are
    return manifest


def site_files(out: str | Path) -> list[Path]:
    """Every file of a written site, relative to it, sorted."""
    out = Path(out)
    return sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
