"""The explorer's server-side state (rnnviz/app/operations.py): without checkpoints, and its sessions:
a bounded LRU whatever the number of visitors (in Python and through the server, Gradio's own copies
included), dropped when a visitor leaves, and a short load test while the app trains."""

# ---- many sessions -------------------------------------------------------------------------------
import time

import httpx
import pytest

from rnnviz.app import inputs
from rnnviz.app.operations import Explorer
from rnnviz.app.sessions import Sessions
from rnnviz.app.training import TrainingService
from tests import FIXTURE


def test_the_session_cache_is_bounded_whatever_the_number_of_sessions(app):
    from rnnviz import sample_traces

    ex = Explorer(app.tmp / "checkpoints", app.tmp / "runs", max_sessions=16)
    _, model = ex.model("shipped/mnist_lstm")
    (trace,) = sample_traces(model, 1, y=1, seed=0)
    for k in range(200):
        ex.sessions.get(f"visitor-{k}").view("gen").trace = trace
    assert len(ex.sessions) == 16 and "visitor-199" in ex.sessions and "visitor-0" not in ex.sessions
    assert ex.sessions.drop("visitor-199") and "visitor-199" not in ex.sessions
    assert not ex.sessions.drop("visitor-199")


def test_two_hundred_sessions_through_the_server_stay_within_the_bound(app):
    deps = httpx.get(app.url + "config").json()["dependencies"]
    # the Train tab's timer tick: no inputs, reads the visitor's session (what it was last sent); queued,
    # so each visitor joins the queue and reads its answer from its session's stream, as the page does
    fn = next(d.get("id", i) for i, d in enumerate(deps) if d.get("api_name") == "train_tick")
    with httpx.Client(timeout=30) as http:
        for k in range(200):
            r = http.post(app.url + "gradio_api/queue/join",
                          json={"data": [], "fn_index": fn, "session_hash": f"many-{k}", "event_data": None,
                                "trigger_id": None})
            assert r.status_code == 200, r.text
            stream = http.get(app.url + "gradio_api/queue/data", params={"session_hash": f"many-{k}"}).text
            assert '"msg":"process_completed"' in stream.replace(" ", "") and '"success":true' in stream.replace(" ", ""), \
                stream[-300:]
    assert len(app.ex.sessions) == app.ex.sessions.max_sessions == 32
    assert "many-199" in app.ex.sessions and "many-0" not in app.ex.sessions
    from rnnviz.app.ui import GRADIO_SESSIONS

    assert len(app.demo.state_holder.session_data) <= GRADIO_SESSIONS < 200  # Gradio's own copies too


def test_closing_a_session_drops_its_traces(app, monkeypatch):
    """demo.unload runs when a visitor's connection ends (Gradio 6.31: the heartbeat stream closes)."""
    from gradio_client import Client

    monkeypatch.setenv("GRADIO_HEARTBEAT_INTERVAL", "0.3")  # read by the server per connection
    clients = [Client(app.url, verbose=False) for _ in range(3)]
    for c in clients:
        c.predict("shipped/mnist_lstm", "1", 1.0, 0, api_name="/generate")
    hashes = [c.session_hash for c in clients]
    assert all(h in app.ex.sessions for h in hashes)
    for c in clients:
        c.close()
    deadline = time.time() + 20
    while any(h in app.ex.sessions for h in hashes) and time.time() < deadline:
        time.sleep(0.1)
    assert not any(h in app.ex.sessions for h in hashes), "unload did not drop the sessions"
    app.generate_works()


def test_a_short_load_test_serves_every_request(app):
    """benchmarks/load_test.py in small: 5 visitors for 10 s while the app trains; no errors. Scrubbing
    sends no request any more (the step views are drawn in the browser), so each visitor generates."""
    from benchmarks.load_test import run_visitors

    status, out = app.call("/train_start", "lstm", 16, 1, 0.002, 32, 1.0, str(FIXTURE), "load")
    assert status == "ok" and app.training.active()
    try:
        res = run_visitors(app.url, users=5, duration=10, scrubs=0, think=0.05)
    finally:
        app.call("/train_stop")
        app.training.run.trainer.join(60)
    assert res["errors"] == 0, res["error_samples"]
    assert res["endpoints"]["/generate"]["n"] >= 5 and set(res["endpoints"]) == {"/generate"}
    assert app.training.run.trainer.snapshot()["step"] > 0  # it trained meanwhile


# ---- public deployment ------------------------------------------------------------------------------------


def test_explorer_without_checkpoints_says_how_to_get_one(tmp_path):
    ex = Explorer(tmp_path / "none", tmp_path / "runs", training=TrainingService(tmp_path / "runs"))
    with pytest.raises(inputs.InputError, match="No checkpoint found"):
        ex.generate(None, "7", 1.0, 0)


def test_sessions_are_a_bounded_lru():
    s = Sessions(max_sessions=3)
    first = s.get("a")
    for k in "bcd":
        s.get(k)
    assert len(s) == 3 and s.get("a") is not first  # "a" was evicted
    assert s.get(None) is s.get(None)
