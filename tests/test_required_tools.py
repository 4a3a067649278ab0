"""The rule for the outside tools the tests drive (tests/__init__.py): without node, chromium or the
playwright package the tests that need them are skipped, unless the environment says the tool is
required (``RNNVIZ_REQUIRE_NODE``, ``RNNVIZ_REQUIRE_BROWSER``; .ci/run sets both): then a missing
one is an error, and a pytest run with it fails instead of skipping."""

import importlib
import os
import subprocess
import sys

import pytest

import tests
from tests import ROOT, MissingTool

BLOCK_PLAYWRIGHT = ("import sys; sys.modules['playwright'] = None; sys.modules['playwright.sync_api'] = None; "
                    "import pytest; sys.exit(pytest.main(sys.argv[1:]))")  # importing playwright fails


def import_fresh(monkeypatch, name: str):
    """Import ``name`` again (its module-level checks run again); the one imported before is put back."""
    monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        return importlib.import_module(name)
    finally:
        sys.modules.pop(name, None)


@pytest.fixture
def no_playwright(monkeypatch):
    monkeypatch.setitem(sys.modules, "playwright", None)
    monkeypatch.setitem(sys.modules, "playwright.sync_api", None)
    monkeypatch.delenv("RNNVIZ_REQUIRE_BROWSER", raising=False)


def test_without_playwright_the_browser_tests_skip_unless_required(no_playwright, monkeypatch):
    with pytest.raises(pytest.skip.Exception, match="playwright"):
        import_fresh(monkeypatch, "tests.browser")
    for value in ("1", "yes"):
        monkeypatch.setenv("RNNVIZ_REQUIRE_BROWSER", value)
        with pytest.raises(MissingTool, match="RNNVIZ_REQUIRE_BROWSER is set but the playwright package"):
            import_fresh(monkeypatch, "tests.browser")
    monkeypatch.setenv("RNNVIZ_REQUIRE_BROWSER", "0")  # 0 or empty: not required
    with pytest.raises(pytest.skip.Exception):
        import_fresh(monkeypatch, "tests.browser")


def test_without_chromium_the_browser_tests_skip_unless_required(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNVIZ_CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.delenv("RNNVIZ_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception, match="chromium is not installed"):
        import_fresh(monkeypatch, "tests.browser")
    monkeypatch.setenv("RNNVIZ_REQUIRE_BROWSER", "1")
    with pytest.raises(MissingTool, match="RNNVIZ_REQUIRE_BROWSER is set but chromium"):
        import_fresh(monkeypatch, "tests.browser")


def test_without_node_the_javascript_tests_skip_unless_required(monkeypatch, tmp_path):
    monkeypatch.setenv("RNNVIZ_NODE", str(tmp_path / "no-node"))
    for variable in ("RNNVIZ_REQUIRE_NODE", "CI"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(pytest.skip.Exception, match="node is not installed"):
        tests.node_path()
    for variable in ("RNNVIZ_REQUIRE_NODE", "CI"):
        with monkeypatch.context() as m:
            m.setenv(variable, "1")
            with pytest.raises(MissingTool, match="node is not installed"):
                tests.node_path()


def test_a_required_browser_without_playwright_fails_the_run(tmp_path):
    """End to end, as CI runs it: pytest on a browser test module with playwright unimportable exits
    with an error (and skips nothing) when RNNVIZ_REQUIRE_BROWSER is set, and skips it otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RNNVIZ_REQUIRE", "PYTEST_"))}
    args = [sys.executable, "-c", BLOCK_PLAYWRIGHT, "-q", "-p", "no:cacheprovider", "-o", "addopts=",
            "--basetemp", str(tmp_path / "run"), "tests/browser/test_links.py"]
    required = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300,
                              env=dict(env, RNNVIZ_REQUIRE_BROWSER="1"))
    out = required.stdout + required.stderr
    assert required.returncode not in (0, 5), out[-3000:]  # 5: no tests ran
    assert "MissingTool" in out and "playwright package is not installed" in out, out[-3000:]
    assert "skipped" not in out.splitlines()[-1], out[-3000:]
    skipped = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    last = skipped.stdout.strip().splitlines()[-1]
    assert skipped.returncode == 5 and "1 skipped" in last, skipped.stdout[-3000:] + skipped.stderr[-3000:]
