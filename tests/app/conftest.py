"""The app tests' fixtures: ``served`` (the explorer a module describes, served in this process) and
``app`` (``tests.app.App``: an explorer with a gradio_client, for hostile input). Both are made once
per module and closed at its end."""

import pytest

from tests import FIXTURE
from tests.app import App, Served, launched, make_checkpoints


@pytest.fixture(scope="module")
def served(request, tmp_path_factory):
    """A ``tests.app.Served``: the explorer on the checkpoints the test module lists, served on a free
    port. The module says what it serves with constants:

    - ``CHECKPOINTS``: ``name: spec`` as ``tests.app.make_checkpoints`` takes them (listed as
      ``shipped/<name>``), with ``METRICS`` (default none) as every model's metrics;
    - ``TRAINING``: ``"fixture"`` (default: a one-thread service on the fixture dataset, runs of at
      most a minute), ``"off"`` (turned off) or ``"blocked"`` (on, but its runs folder cannot be
      made, so Start always refuses and no run outlives the module);
    - ``UPLOADS``: True to give the explorer an uploads folder.
    """
    from rnnviz.app.operations import Explorer
    from rnnviz.app.training import TrainingService

    module = request.module
    tmp = tmp_path_factory.mktemp(module.__name__.rsplit(".", 1)[-1])
    checkpoints = make_checkpoints(tmp / "checkpoints", module.CHECKPOINTS, getattr(module, "METRICS", None))
    training = getattr(module, "TRAINING", "fixture")
    runs = tmp / "runs"
    if training == "fixture":
        service = TrainingService(runs, default_dataset=str(FIXTURE), threads=1, max_minutes=1.0)
    elif training == "off":
        service = TrainingService(runs, enabled=False, disabled_reason="off in tests")
    elif training == "blocked":
        (tmp / "blocked").write_text("a file, so no runs folder can be made under it")
        runs = tmp / "blocked" / "runs"
        service = TrainingService(runs, default_dataset=str(FIXTURE), threads=1, max_minutes=1.0)
    else:
        raise ValueError(f"TRAINING = {training!r}")
    kw = {"uploads_dir": tmp / "uploads"} if getattr(module, "UPLOADS", False) else {}
    ex = Explorer(checkpoints, runs, training=service, **kw)
    try:
        with launched(ex) as (url, demo):
            served = Served(ex, url, demo, checkpoints, tmp)
            yield served
            if "client" in served.__dict__:
                served.client.close()
    finally:
        service.shutdown(30)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """``tests.app.App``: an explorer (at most 32 sessions) and a gradio_client connected to it."""
    a = App(tmp_path_factory.mktemp("app"), max_sessions=32)
    yield a
    a.close()
