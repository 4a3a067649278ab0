"""The wheel: built from this checkout, installed into a fresh virtual environment (which borrows
this environment's packages, torch included, through a .pth file instead of downloading them), then
used from another folder: ``rnnviz-explorer`` serves the page and ``rnnviz-sample`` draws digits.
About 30 s; it runs with the rest of the suite (``pytest -q``). And the package's shape, read from
its source without importing it: no import cycle between its modules, no lazy module ``__getattr__``."""

import ast
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
from tests import ROOT
from tests.app import tiny_checkpoints

PACKAGE = ROOT / "rnnviz"


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


@pytest.mark.package
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


@pytest.mark.package
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


# ---- the import graph ----------------------------------------------------------------------------
def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _packages_above(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _imports(path: Path, module: str) -> list[tuple[str, str, bool]]:
    """(module, or module.name for ``from module import name``; module; inside a function) of every
    import statement of ``path`` that runs: relative imports resolved, those under ``if TYPE_CHECKING``
    left out, those in a function body (or a lambda) marked."""
    here = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def walk(node, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                body = child.orelse  # the if-branch never runs
            else:
                body = [child]
            for stmt in body:
                if isinstance(stmt, ast.Import):
                    found.extend((a.name, a.name, in_function) for a in stmt.names)
                elif isinstance(stmt, ast.ImportFrom):
                    parts = here.split(".")[:len(here.split(".")) - stmt.level + 1] if stmt.level else []
                    base = ".".join(parts + ([stmt.module] if stmt.module else []))
                    found.extend((f"{base}.{a.name}", base, in_function) for a in stmt.names)
                walk(stmt, in_function or isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    walk(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return found


def import_graph(module_level_only: bool = True) -> dict[str, set[str]]:
    """module -> the modules of the package it imports. ``from m import x`` reaches the submodule
    m.x when there is one, else m; importing a module also runs the packages above it, except those
    above the importer (they are already being imported when it runs)."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        edges = set()
        for target, base, in_function in _imports(path, name):
            if in_function and module_level_only:
                continue
            target = target if target in files else base
            if target in files:
                edges |= {t for t in {target} | (_packages_above(target) - _packages_above(name))
                          if t in files and t != name}
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a list of modules, the first repeated at the end) per strongly connected group."""
    cycles, done = [], set()
    for start in sorted(graph):
        if start in done:
            continue
        stack, path, on_path = [(start, iter(sorted(graph[start])))], [start], {start}
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                cycle = path[path.index(child):] + [child]
                if not any(set(cycle) <= set(c) for c in cycles):
                    cycles.append(cycle)
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
                on_path.add(child)
    return cycles


def test_no_import_cycle_between_the_package_modules():
    """Only imports that run when a module is imported count (module level, class bodies, module-level
    ``if``/``try``): an import inside a function runs once everything is loaded, and one under
    ``if TYPE_CHECKING`` never. So a module may still import another lazily, but two modules never
    need each other half-loaded; a lazy re-export is refused by the next test."""
    graph = import_graph(module_level_only=True)
    assert "rnnviz.analysis" in graph and "rnnviz.units" in graph["rnnviz.analysis"]  # the walker sees them
    assert {"rnnviz.model", "rnnviz.probes"} <= graph["rnnviz.units"]
    cycles = find_cycles(graph)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_find_cycles_names_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"], ["e", "e"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_hands_out_names_through_a_module_getattr():
    """A module-level ``__getattr__`` that imports on first use is how a cycle hides (rnnviz.analysis
    once handed out rnnviz.units' functions that way while units imported analysis): re-export with
    a plain import instead, or import from where the name lives."""
    offenders = [_module_name(p) for p in PACKAGE.rglob("*.py")
                 if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__"
                        for n in ast.parse(p.read_text(encoding="utf-8")).body)]
    assert not offenders, f"module __getattr__ in {offenders}"
