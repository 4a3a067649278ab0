"""What every test module may share: the repository's root, the fixture dataset, a free port, and the
rule for the outside tools the tests drive (Node.js, Chromium and the playwright package).

An outside tool that is missing skips the tests that need it, unless the environment says it is
required: ``RNNVIZ_REQUIRE_NODE`` for node, ``RNNVIZ_REQUIRE_BROWSER`` for chromium and playwright
(``.ci/run`` sets both). Then a missing tool is an error, never a skip.
"""

import os
import shutil
import socket
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "mnist_small.npz"  # 200 test digits and a few training ones

__all__ = ["FIXTURE", "ROOT", "MissingTool", "free_port", "node_path", "required", "tool_missing"]


class MissingTool(RuntimeError):
    """A tool the environment says is required (``RNNVIZ_REQUIRE_*``) is missing."""


def required(variable: str) -> bool:
    """Whether ``variable`` (``RNNVIZ_REQUIRE_BROWSER`` or ``RNNVIZ_REQUIRE_NODE``) is set to anything
    but empty or 0."""
    return os.environ.get(variable, "").strip() not in ("", "0")


def tool_missing(variable: str, what: str, module_level: bool = True, also: tuple[str, ...] = ()):
    """Skip (the calling module, or the test when ``module_level`` is False) because ``what`` is
    missing, or raise ``MissingTool`` when ``variable`` (or one of ``also``) says the tool is required."""
    if required(variable) or any(required(v) for v in also):
        raise MissingTool(f"{variable} is set but {what}")
    pytest.skip(what, allow_module_level=module_level)


def node_path() -> str:
    """The ``node`` executable (``RNNVIZ_NODE`` or the first on PATH); skips the calling module without
    it (raises when RNNVIZ_REQUIRE_NODE or CI is set)."""
    node = os.environ.get("RNNVIZ_NODE") or shutil.which("node")
    if not node or not Path(node).exists():
        tool_missing("RNNVIZ_REQUIRE_NODE", "node is not installed: these tests run the page's JavaScript "
                                            "under Node.js (apt-get install nodejs)", also=("CI",))
    return node


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now (the OS picks it, so two pytest-xdist
    workers asking at once get different ones)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
