"""The static-site exporter: ``python -m rnnviz.site``: what it writes, how big, and what it refuses
(a huge model, from its header alone)."""

import json
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnviz import ModelConfig, RowModel, save_checkpoint
from rnnviz.checkpoint import expected_tensors, load_state, read_metadata
from rnnviz.site import DEFAULT_CHECKPOINTS, SiteError, export_site, site_files
from tests import ROOT

VAE = ROOT / "checkpoints" / "mnist_vae.safetensors"
STATIC_FILES = ["draw.js", "group.js", "index.html", "inputs.js", "intervene.js", "model.js", "orders.js", "page.js", "random.js",
                "rules.js", "state.js", "trace.js", "view.css",
                "style.css", "view.js"]
shipped = pytest.mark.skipif(not all(p.exists() for p in DEFAULT_CHECKPOINTS), reason="shipped checkpoints missing")


def cli(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rnnviz.site", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd or ROOT, timeout=120)


def front_matter(readme: str) -> dict:
    head = readme.split("---\n")[1]
    return dict(line.split(": ", 1) for line in head.strip().splitlines())


@shipped
def test_default_site_is_the_shipped_models_and_mixture_a_start_under_8_mb(tmp_path):
    """The three shipped cells and the mixture of scan orders; what a page loads before a visitor
    picks the mixture (everything but the mixture's parts, which load when it is picked) is at most
    8 MB, and the mixture's parts at most the 25 MB it ships in."""
    out = tmp_path / "site"
    r = cli("--out", out)
    assert r.returncode == 0, r.stderr
    files = sorted(str(p) for p in site_files(out))
    manifest = json.loads((out / "models.json").read_text())
    mixture = manifest["models"][-1]
    parts = [p["file"] for p in mixture["parts"]]
    assert files == sorted([".nojekyll", "README.md", "about.html", "digits.json", "models.json", "rules.json", *STATIC_FILES,
                            "models/mnist_gru.bin", "models/mnist_lstm.bin", "models/mnist_rnn.bin", *parts])
    start = sum((out / f).stat().st_size for f in files if f not in parts)
    assert start <= 8 * 2**20, f"the page loads {start / 2**20:.2f} MB before the mixture is picked"
    assert sum((out / f).stat().st_size for f in parts) <= 25e6
    assert [m["name"] for m in manifest["models"]] == ["mnist_lstm", "mnist_gru", "mnist_rnn", "mnist_mixture"]
    assert mixture["mixture"] is True and len(parts) >= 2 and all(p.startswith("models/mnist_mixture.") for p in parts)
    assert len({p["config"]["order"] for p in mixture["parts"]}) >= 4  # several scan orders
    assert manifest["default"] == "mnist_lstm" and manifest["app_url"] is None
    lstm = manifest["models"][0]
    assert lstm["config"]["cell"] == "lstm" and lstm["metrics"]["test_nll"] == pytest.approx(
        read_metadata(ROOT / "checkpoints" / "mnist_lstm.safetensors")["metrics"]["test_nll"])
    assert "exact marginal" in lstm["metrics"]["test_nll_protocol"]
    every = [e for m in manifest["models"] for e in m.get("parts", [m])]  # a mixture's entries are its parts
    assert len(every) == 3 + len(mixture["parts"]) and not any(k.startswith("optim") for e in every for k in e["tensors"])
    assert f"wrote {len(files)} files" in r.stdout and "python -m http.server -d" in r.stdout


@shipped
def test_weights_are_the_state_dict_bit_for_bit(tmp_path):
    manifest = export_site(None, tmp_path)
    singles = [(m, load_state(path)[0]) for m, path in zip(manifest["models"], DEFAULT_CHECKPOINTS)]
    from rnnviz.mixture import load_mixture
    from rnnviz.site import DEFAULT_MIXTURES
    mixture = load_mixture(DEFAULT_MIXTURES[0])
    parts = list(zip(manifest["models"][-1]["parts"], mixture.parts))
    assert len(singles) == 3 and len(parts) == len(mixture)
    for entry, model in singles + parts:
        sd = model.state_dict()
        raw = (tmp_path / entry["file"]).read_bytes()
        assert len(raw) == entry["bytes"] == 4 * sum(v.numel() for v in sd.values())
        assert sorted(entry["tensors"]) == sorted(sd)
        for name, t in entry["tensors"].items():
            n = int(np.prod(t["shape"]))
            got = np.frombuffer(raw, "<f4", count=n, offset=t["offset"]).reshape(t["shape"])
            want = sd[name].numpy()
            assert got.tobytes() == want.astype("<f4").tobytes(), name  # bit for bit, NaN-safe
        assert entry["metrics"]["parameters"] == model.num_parameters()


@shipped
def test_readme_is_a_static_space_card(tmp_path):
    export_site(None, tmp_path, app_url="https://huggingface.co/spaces/someone/rnnviz")
    readme = (tmp_path / "README.md").read_text()
    card = front_matter(readme)
    assert card["sdk"] == "static" and card["app_file"] == "index.html"
    assert card["title"] == '"rnnviz static explorer"'  # quoted: any title is valid YAML
    for key in ("title", "emoji", "colorFrom", "colorTo", "short_description"):
        assert card[key], key
    assert len(card["short_description"]) <= 60  # the Hub's limit
    assert card["colorFrom"] in {"red", "yellow", "green", "blue", "indigo", "purple", "pink", "gray"}
    assert "https://huggingface.co/spaces/someone/rnnviz" in readme
    assert json.loads((tmp_path / "models.json").read_text())["app_url"] == "https://huggingface.co/spaces/someone/rnnviz"
    about = (tmp_path / "about.html").read_text()
    assert "W<sub>hi</sub> h<sub>t-1</sub>" in about and "MADE" in about and "VAE" not in about
    assert "\\sigma" not in about and "$" not in about  # TeX turned into HTML: no maths renderer needed


def test_no_other_host_is_named_by_the_page():
    """The page loads nothing from elsewhere: no absolute URL in its files (only the --app-url link)."""
    from rnnviz.site import STATIC

    for f in STATIC_FILES:
        text = (STATIC / f).read_text()
        assert "http://" not in text and "https://" not in text.replace("'^https?:\\/\\/'", ""), f
        assert "innerHTML" not in text, f"{f}: metadata must go in as text"


@shipped
@pytest.mark.skipif(not VAE.exists(), reason="no shipped VAE")
def test_a_vae_is_refused_with_the_reason(tmp_path):
    r = cli("--checkpoint", DEFAULT_CHECKPOINTS[2], "--checkpoint", VAE, "--out", tmp_path / "site")
    assert r.returncode != 0
    assert "VAE (latent=32)" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "site").exists()  # refused before anything was written


def test_what_the_page_cannot_run_is_refused(tmp_path, capsys):
    from rnnviz.site.__main__ import main

    def cli(*args):  # in-process (one subprocess above shows the CLI itself prints no traceback)
        code = main([str(a) for a in args])
        return subprocess.CompletedProcess(args, code, *capsys.readouterr())

    torch.manual_seed(0)
    other = save_checkpoint(tmp_path / "small_images.safetensors",
                            RowModel(ModelConfig(hidden=8, head_hidden=16, height=14, width=14)), {})
    r = cli("--checkpoint", other, "--out", tmp_path / "a")
    assert r.returncode != 0 and "14\u00d714 images" in r.stderr and "Traceback" not in r.stderr
    pickle = tmp_path / "model.safetensors"
    pickle.write_bytes(b"\x80\x04\x95" + b"\0" * 64)
    r = cli("--checkpoint", pickle, "--out", tmp_path / "b")
    assert r.returncode != 0 and "pickle" in r.stderr and "Traceback" not in r.stderr
    r = cli("--checkpoint", tmp_path / "missing.safetensors", "--out", tmp_path / "c")
    assert r.returncode != 0 and "no such file" in r.stderr
    a = save_checkpoint(tmp_path / "x" / "m.safetensors", RowModel(ModelConfig(hidden=8, head_hidden=16)), {})
    b = save_checkpoint(tmp_path / "y" / "m.safetensors", RowModel(ModelConfig(hidden=8, head_hidden=16)), {})
    with pytest.raises(SiteError, match="both be called 'm'"):
        export_site([a, b], tmp_path / "d")
    r = cli("--checkpoint", a, "--out", tmp_path / "e", "--app-url", "javascript:alert(1)")
    assert r.returncode != 0 and "--app-url must be an http(s) address" in r.stderr


def test_metadata_is_kept_as_data_and_names_are_safe(tmp_path):
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "<i>odd name &.safetensors", RowModel(ModelConfig(hidden=8, head_hidden=16)),
                           {"dataset": "<script>alert(1)</script>", "test_nll": float("nan"), "parameters": "many"})
    manifest = export_site([path], tmp_path / "site")
    entry = manifest["models"][0]
    assert entry["name"] == "i_odd_name" and (tmp_path / "site" / "models" / "i_odd_name.bin").exists()
    assert entry["metrics"] == {"dataset": "<script>alert(1)</script>"}  # texts stay texts; the page writes textContent
    # exporting another model into the same folder leaves no stale weights behind
    rnn = RowModel(ModelConfig(cell="rnn", hidden=8, head_hidden=16))
    other = save_checkpoint(tmp_path / "other.safetensors", rnn, {})
    export_site([other], tmp_path / "site")
    assert sorted(p.name for p in (tmp_path / "site" / "models").iterdir()) == ["other.bin"]


def _sparse_model(path: Path, config: ModelConfig) -> Path:
    """A well-formed checkpoint of ``config`` whose tensor bytes are a hole (sparse: no disk, no time)."""
    header, offset = {"__metadata__": {"format": "rnnviz", "format_version": "1",
                                       "config": json.dumps(config.to_dict()), "metrics": "{}"}}, 0
    for name, shape in expected_tensors(config).items():
        n = 4 * int(np.prod(shape))
        header[f"model.{name}"] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return path


def test_the_site_exporter_refuses_a_huge_model_from_its_header(tmp_path):
    path = _sparse_model(tmp_path / "huge.safetensors", ModelConfig(hidden=2048, layers=3, head_hidden=2048))
    assert path.stat().st_size > 300 * 2**20
    code = ("import json, resource, sys\n"
            "from rnnviz.site import SiteError, export_model\n"
            "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024\n"
            "before = peak()\n"
            "try:\n"
            "    export_model(sys.argv[1]); message = None\n"
            "except SiteError as e:\n"
            "    message = str(e)\n"
            "print(json.dumps({'message': message, 'rise_mb': (peak() - before) / 2**20}))\n")
    r = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout)
    assert out["message"] and "more than the page's 64 MB limit" in out["message"], out
    assert out["rise_mb"] < 100, out  # loading it would take its 339 MB at least
