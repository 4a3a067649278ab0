"""Fixtures for the whole suite (each defined once; tests/app/conftest.py holds the app's)."""

import os

import pytest
import torch

from rnnviz import ModelConfig, RowModel, save_checkpoint
from tests import FIXTURE, node_path

__all__ = ["FIXTURE"]  # (modules import it from tests; this name stays for old imports)


@pytest.fixture(autouse=True, scope="session")
def _gradio_cache(tmp_path_factory):
    """Gradio's cache (uploads, exported files) in a fresh folder of this test run rather than the
    machine's shared /tmp/gradio (an apps' Blocks reads it when it is built, inside a test)."""
    with pytest.MonkeyPatch.context() as mp:
        if not os.environ.get("GRADIO_TEMP_DIR"):
            mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        yield


@pytest.fixture(autouse=True, scope="session")
def _gradio_ports():
    """Each pytest-xdist worker its own range of Gradio's default ports (100 from GRADIO_SERVER_PORT),
    for any server started without a port of its own: two workers never try the same one. (The
    servers the tests start take a free port: ``tests.app.serving``.)"""
    with pytest.MonkeyPatch.context() as mp:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")  # gw0, gw1, ... ("" without xdist)
        if worker.startswith("gw") and not os.environ.get("GRADIO_SERVER_PORT"):
            mp.setenv("GRADIO_SERVER_PORT", str(17860 + 100 * int(worker[2:])))
        yield


@pytest.fixture(autouse=True, scope="session")
def _one_ssl_context():
    """httpx builds an SSL context, reading the whole CA bundle, for every client it makes (each
    ``httpx.get``/``post`` and each ``gradio_client`` request too): about 40 ms of CPU each, three
    quarters of the time of tests/app/test_guard.py's request fuzz (2,300 requests; measured
    2026-12-05). Every server the tests talk to is plain HTTP on loopback, so the clients of this test
    process share one default context, made once. (With another httpx, nothing is shared.)"""
    try:
        from httpx._transports import default
        real = default.create_ssl_context
    except (ImportError, AttributeError):
        yield
        return
    made = {}

    def shared(verify=True, cert=None, trust_env=True):
        if verify is not True or cert is not None:
            return real(verify=verify, cert=cert, trust_env=trust_env)
        if trust_env not in made:
            made[trust_env] = real(verify=verify, cert=cert, trust_env=trust_env)
        return made[trust_env]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(default, "create_ssl_context", shared)
        yield


@pytest.fixture(autouse=True, scope="session")
def _quiet_torch():
    """At most 2 torch threads, and no more threads in all than cores when xdist runs workers side by side."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1) // workers)))


@pytest.fixture(scope="session")
def node() -> str:
    """The ``node`` executable: the test is skipped without it (an error when RNNVIZ_REQUIRE_NODE or
    CI is set)."""
    return node_path()


@pytest.fixture
def small_config():
    return ModelConfig(cell="lstm", hidden=32, layers=1, head_hidden=64)


@pytest.fixture
def tiny_checkpoint(tmp_path, small_config):
    torch.manual_seed(0)
    path = tmp_path / "tiny.safetensors"
    save_checkpoint(path, RowModel(small_config).eval(), {"dataset": "mnist", "test_nll": 123.4})
    return path
