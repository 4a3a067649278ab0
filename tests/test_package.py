"""The wheel: built from this checkout, installed into a fresh virtual environment (which borrows
this environment's packages, torch included, through a .pth file instead of downloading them), then
used from another folder: ``rnnviz-explorer`` serves the page and ``rnnviz-sample`` draws digits.
About 30 s; it runs with the rest of the suite (``pytest -q``)."""

import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.request
import venv
import zipfile
from pathlib import Path

import pytest

from rnnviz import ModelConfig
from tests.apps import tiny_checkpoints

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.package


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the sources (an in-tree build would leave build/ here)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copy(ROOT / "pyproject.toml", src)
    shutil.copy(ROOT / "README.md", src)
    shutil.copytree(ROOT / "rnnviz", src / "rnnviz", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyi"))
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
                    "-w", str(out), str(src)], check=True, timeout=120)
    (whl,) = out.glob("rnnviz-*.whl")
    return whl


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed (no dependencies fetched); returns its bin/ folder."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=False, symlinks=True)
    bindir = env / ("Scripts" if os.name == "nt" else "bin")
    py = bindir / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # this environment's packages (torch, gradio, ...) after the venv's own, so the wheel's rnnviz wins
    Path(site, "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index", "-q",
                    str(wheel)], check=True, timeout=120)
    return bindir


def test_wheel_holds_every_subpackage_and_data_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in ("rnnviz/app/__main__.py", "rnnviz/app/tabs/__init__.py", "rnnviz/app/style.css",
                     "rnnviz/app/about.md", "rnnviz/assets/gallery.npz"):
        assert required in names, required
    for f in (ROOT / "rnnviz" / "site" / "static").glob("*"):  # the static site's page, scripts and style
        assert f"rnnviz/site/static/{f.name}" in names, f.name
    assert "rnnviz/site/__main__.py" in names
    entry = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry).decode()
    for cmd in ("rnnviz-explorer", "rnnviz-train", "rnnviz-sample", "rnnviz-evaluate", "rnnviz-export", "rnnviz-publish", "rnnviz-site"):
        assert f"{cmd} = " in scripts


def test_installed_commands_serve_and_sample_from_another_folder(installed, tmp_path):
    work = tmp_path / "elsewhere"
    tiny_checkpoints(work / "checkpoints", {"mnist_lstm": ModelConfig(hidden=16, head_hidden=32)})
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["GRADIO_ANALYTICS_ENABLED"] = "False"
    where = subprocess.run([str(installed / "python"), "-c", "import rnnviz.app, sys; print(rnnviz.app.__file__)"],
                           cwd=work, env=env, capture_output=True, text=True, check=True).stdout
    assert str(installed.parent) in where and str(ROOT) not in where  # the wheel's copy, not the checkout

    png = work / "grid.png"
    subprocess.run([str(installed / "rnnviz-sample"), "--checkpoint", "checkpoints/mnist_lstm.safetensors",
                    "--out", str(png), "--digit", "3", "--n", "2"], cwd=work, env=env, check=True, timeout=120)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    port = _free_port()
    log = (tmp_path / "explorer.log").open("w")
    proc = subprocess.Popen([str(installed / "rnnviz-explorer"), "--port", str(port)], cwd=work, env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, page = time.monotonic() + 90, None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    page = r.read().decode("utf-8", "replace")
                break
            except OSError:
                time.sleep(0.5)
        assert page is not None, (tmp_path / "explorer.log").read_text()[-3000:]
        assert "rnnviz explorer" in page
        # the default checkpoint folder is ./checkpoints of the folder it was started in
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/config", timeout=10) as r:
            assert "shipped/mnist_lstm" in r.read().decode()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
