"""The explorer's handlers, driven through gradio_client against an app launched in this process,
plus its server-side state (registry, sessions, training service) and explorer.py's options."""

import json
import re
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rnnviz import ModelConfig, RowModel, save_checkpoint
from rnnviz.app import inputs
from rnnviz.app.registry import Registry
from rnnviz.app.operations import Explorer, Sessions
from rnnviz.app.training import TrainingRefused, TrainingService
from rnnviz.wire import decode_trace, encode_trace
from tests.apps import served as serving, tiny_checkpoints

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "mnist_small.npz"


def make_checkpoints(folder: Path) -> Path:
    tiny_checkpoints(folder, {"mnist_lstm": ModelConfig(hidden=32, head_hidden=64),
                              "mnist_gru": ModelConfig(cell="gru", hidden=32, head_hidden=64),
                              "deep_rnn": ModelConfig(cell="rnn", hidden=16, layers=2, head_hidden=32)},
                     {"test_nll": 543.2, "dataset": "test"})
    (folder / "broken.safetensors").write_bytes(b"not a checkpoint")
    return folder


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(explorer, client, url) for an app on tiny checkpoints and the fixture dataset."""
    from gradio_client import Client

    tmp = tmp_path_factory.mktemp("explorer")
    ckpts = make_checkpoints(tmp / "checkpoints")
    runs = tmp / "runs"
    training = TrainingService(runs, default_dataset=str(FIXTURE), threads=1, max_minutes=1.0)
    ex = Explorer(ckpts, runs, training=training)
    with serving(ex) as url:
        yield ex, Client(url, verbose=False), url
    training.shutdown()


def generate(client, key="shipped/mnist_lstm", digit="7", temperature=1.0, seed=0):
    return client.predict(key, digit, temperature, seed, api_name="/generate")


def payload_of(value: str) -> dict:
    """A step view's value: the JSON payload the page draws (``stepview``), sent once per Generate."""
    p = json.loads(value)
    assert set(p) >= {"id", "step", "layer", "columns"}, sorted(p)
    return p


def assert_same_trace(column: dict, trace):
    """The payload column carries ``trace`` bit for bit (float32), and says what it is."""
    arrays = decode_trace(column["trace"])
    f4 = lambda a: np.asarray(a, np.float32).ravel()  # noqa: E731
    names = ["image", "probs", "rowNll"] + [f"l{k}.{n}" for k in range(len(trace.layers)) for n in trace.names]
    assert sorted(arrays) == sorted(names)
    assert np.array_equal(arrays["image"], f4(trace.image)) and np.array_equal(arrays["probs"], f4(trace.probs))
    assert np.array_equal(arrays["rowNll"], f4(trace.row_nll))
    for k, layer in enumerate(trace.layers):
        for name in trace.names:
            assert np.array_equal(arrays[f"l{k}.{name}"], f4(layer[name])), (k, name)
    meta = column["trace"]
    assert (meta["cell"], meta["nlayers"], meta["names"], meta["label"], meta["seed"], meta["keepRows"]) == \
        (trace.cell, len(trace.layers), list(trace.names), trace.label, trace.seed, trace.keep_rows)


def session_view(ex, client, name="gen"):
    """The server's record of ``client``'s step view ``name`` (the downloads and the Units tab read it)."""
    return ex.sessions.get(client.session_hash).view(name)


# ---- Generate & step ----------------------------------------------------------------------------
REMOVED = ("/gen_step", "/gen_tick", "/gen_play", "/gen_pause", "/gen_layer", "/gen_order", "/comp_step",
           "/comp_play", "/comp_tick", "/comp_layer")  # scrubbing, Play, layer and unit order are the browser's


def test_every_listener_has_an_api_name(served):
    """Every listener that runs Python has a name of its own, so a script can call it: none is a
    ``lambda`` (Gradio's default name for one), none renamed because two tabs chose the same name
    (Gradio then appends ``_1`` and a script reaches the other one), every one is served, and the
    documented ones are there. The step views' per-step endpoints are gone: a step costs no request."""
    from rnnviz.app.ui import build_app

    ex, client, _ = served
    fns = [fn for fn in build_app(ex).fns.values() if fn.fn is not None]
    names = [fn.api_name for fn in fns]
    assert len(set(names)) == len(names) and not [n for n in names if re.search(r"_\d+$|lambda", n)]
    served_names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    callable_names = {f"/{fn.api_name}" for fn in fns if all(event != "unload" for _, event in fn.targets)}
    assert len(callable_names) > 50 and callable_names <= served_names  # unload is the browser's, not the API's
    for needed in ("/generate", "/generate_new_seed", "/generate_with_model", "/copy_link", "/complete",
                   "/open_completion", "/gen_export_gif", "/gen_export_npz", "/gen_export_grid", "/train_start",
                   "/train_pause", "/train_resume", "/train_stop", "/train_tick", "/preview", "/describe"):
        assert needed in served_names, needed
    assert not served_names & set(REMOVED)
    assert not [n for n in served_names if re.fullmatch(r"/(gen|comp|compare|intervene|rec)_(step|tick|play|pause|layer|order)", n)], served_names


def test_generate_sends_the_trace_once_at_the_last_step(served):
    """The step view's value is one payload: the trace Python samples for the same model, digit,
    seed and temperature, bit for bit, the behaviour order of its units, and the last step."""
    from rnnviz import sample_traces
    from rnnviz.wire import trace_bytes

    ex, client, _ = served
    summary, value = generate(client, digit="3", seed=4, temperature=0.8)
    assert "digit **3**" in summary and "seed 4" in summary
    p = payload_of(value)
    assert (p["step"], p["layer"], len(p["columns"])) == (27, 0, 1)
    col = p["columns"][0]
    assert (col["entry"]["name"], col["entry"]["metrics"]) == ("mnist_lstm", {"test_nll": 543.2})
    assert col["entry"]["config"].items() >= {"cell": "lstm", "layers": 1, "hidden": 32, "latent": 0}.items()
    (expected,) = sample_traces(ex.model("shipped/mnist_lstm")[1], n=1, y=3, temperature=0.8, seed=4)
    assert_same_trace(col, expected)
    assert col["trace"]["temperature"] == 0.8 and col["trace"]["names"] == ["i", "f", "g", "o", "c", "h"]
    assert col["unitOrder"] == [ex.unit_studies.order("shipped/mnist_lstm", 0)[2].tolist()] and not col["note"]
    assert sorted(col["unitOrder"][0]) == list(range(32)) and col["unitOrder"][0] != list(range(32))
    v = session_view(ex, client)  # the server keeps what it sent (exports, Units)
    assert v.model_key == "shipped/mnist_lstm" and np.array_equal(v.trace.image, expected.image)
    floats, _ = trace_bytes(expected)
    assert len(value) < floats * 4 / 3 + 6_000  # the floats as base64, and little else


def test_same_seed_same_digit(served):
    _, client, _ = served
    a, b, c = (payload_of(generate(client, seed=s)[1]) for s in (11, 11, 12))
    data = [p["columns"][0]["trace"]["data"] for p in (a, b, c)]
    assert data[0] == data[1] and data[0] != data[2]
    assert len({a["id"], b["id"], c["id"]}) == 3  # every payload is new: the page redraws it


def test_copy_link_takes_the_step_from_the_page_and_clamps_it(served):
    """The step lives in the browser: Copy link sends it as its last input (``stepview.step_js``)."""
    from urllib.parse import parse_qs

    _, client, _ = served
    for t, expected in ((14, "14"), (0, "0"), (99, "27"), (-4, "0")):
        link = client.predict("shipped/mnist_gru", "3", 0.8, 5, t, api_name="/copy_link")
        assert parse_qs(link.split("?", 1)[1]) == {"model": ["mnist_gru"], "digit": ["3"], "seed": ["5"],
                                                   "temperature": ["0.8"], "t": [expected], "tab": ["generate"]}


def test_layers_of_a_deep_model(served):

    ex, client, _ = served
    p = payload_of(generate(client, key="shipped/deep_rnn", digit="any")[1])
    col = p["columns"][0]
    assert p["layer"] == 1 and col["trace"]["nlayers"] == 2  # opens on the top layer; both are sent
    assert_same_trace(col, session_view(ex, client).trace)
    assert [len(o) for o in col["unitOrder"]] == [16, 16]
    for k in (0, 1):
        assert col["unitOrder"][k] == ex.unit_studies.order("shipped/deep_rnn", k)[2].tolist()


def test_bad_inputs_give_clear_errors(served):
    from gradio_client.exceptions import AppError

    _, client, _ = served
    with pytest.raises(AppError, match="unknown checkpoint"):
        generate(client, key="../../etc/passwd")
    with pytest.raises(AppError, match="broken|unknown checkpoint"):
        generate(client, key="shipped/broken")
    for bad in ({"digit": "12"}, {"temperature": 99.0}, {"seed": -5}):
        with pytest.raises(AppError):
            generate(client, **bad)
    assert "LSTM" in client.predict("shipped/mnist_lstm", api_name="/describe")


def test_export_before_generate_says_what_to_do(served):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    _, _, url = served
    fresh = Client(url, verbose=False)
    for name in ("/gen_export_gif", "/gen_export_npz"):
        with pytest.raises(AppError, match="press Generate first"):
            fresh.predict(api_name=name)
    with pytest.raises(AppError, match="press Complete first"):
        fresh.predict(api_name="/comp_export_gif")


# ---- Complete -----------------------------------------------------------------------------------
def complete(client, source="test digit", index=28, sketch=None, keep=14, n=3, digit="auto", seed=0):
    return client.predict("shipped/mnist_lstm", source, index, sketch, keep, n, digit, 1.0, seed,
                          api_name="/complete")


def test_complete_a_test_digit_and_open_a_completion(served):
    ex, client, _ = served
    gallery, note, preview, value = complete(client, n=3, keep=10)
    assert len(gallery) == 3 and "first 10 rows" in note and "best guess" in note
    sess = ex.sessions.get(client.session_hash)
    p = payload_of(value)
    assert p["step"] == 27 and p["columns"][0]["trace"]["keepRows"] == 10
    assert p["columns"][0]["entry"]["name"] == "mnist_lstm"
    assert_same_trace(p["columns"][0], sess.completions[0])  # the first completion opens
    opened = payload_of(open_completion(client, 2))
    assert_same_trace(opened["columns"][0], sess.completions[2])
    assert opened["id"] != p["id"] and opened["columns"][0]["trace"]["data"] != p["columns"][0]["trace"]["data"]
    prefix, _ = ex.gallery_binary(28)
    image = decode_trace(opened["columns"][0]["trace"])["image"].reshape(28, 28)
    assert (image[:10] == prefix[:10]).all()  # the kept rows are the test digit's
    assert session_view(ex, client, "comp").trace is sess.completions[2]
    assert payload_of(open_completion(client, 99))["columns"][0]["trace"]["data"] == \
        encode_trace(sess.completions[2])["data"]  # clamped to the last completion


def open_completion(client, k):
    """The step view's payload for completion ``k``. /open_completion answers it wrapped in a list of one
    (``test_open_completion_answers_the_payload_itself``); the page copes as JSON.parse(['x']) is 'x'."""
    out = client.predict(k, api_name="/open_completion")
    return out[0] if isinstance(out, list) and len(out) == 1 else out


def test_open_completion_answers_the_payload_itself(served):
    _, client, _ = served
    complete(client, n=2, keep=10)
    assert isinstance(client.predict(1, api_name="/open_completion"), str)


def test_completion_rows_kept_from_the_digit(served):
    ex, client, _ = served
    complete(client, index=8, keep=12, n=2, digit="2")
    sess = next(iter(s for s in ex.sessions.values() if s.completions and s.completions[0].keep_rows == 12))
    prefix, _ = ex.gallery_binary(8)
    for tr in sess.completions:
        assert (tr.image[:12] == prefix[:12]).all() and tr.label == 2


def _sketch_payload(tmp_path, layer: np.ndarray):
    from gradio_client import handle_file

    bg = tmp_path / "bg.png"
    Image.fromarray(np.full((280, 280, 4), 255, np.uint8)).save(bg)
    lay = tmp_path / "layer.png"
    Image.fromarray(layer).save(lay)
    comp = tmp_path / "comp.png"
    c = np.full((280, 280, 4), 255, np.uint8)
    c[layer[..., 3] > 0, :3] = 0
    Image.fromarray(c).save(comp)
    return {"background": handle_file(str(bg)), "layers": [handle_file(str(lay))], "composite": handle_file(str(comp))}


def test_complete_a_drawing(served, tmp_path):
    _, client, _ = served
    layer = np.zeros((280, 280, 4), np.uint8)
    layer[40:240, 120:150, 3] = 255  # a 1
    gallery, note, _, value = complete(client, source="drawing", sketch=_sketch_payload(tmp_path, layer), keep=14, n=2)
    assert len(gallery) == 2 and "first 14 rows" in note
    assert payload_of(value)["columns"][0]["trace"]["keepRows"] == 14


def test_blank_drawing_is_explained_not_crashed(served, tmp_path):
    from gradio_client.exceptions import AppError

    _, client, _ = served
    blank = _sketch_payload(tmp_path, np.zeros((280, 280, 4), np.uint8))
    with pytest.raises(AppError, match="empty"):
        complete(client, source="drawing", sketch=blank)
    assert client.predict("drawing", 0, blank, 14, api_name="/preview") is None  # a warning, no crash


def test_preview_of_a_test_digit(served):
    _, client, _ = served
    path = client.predict("test digit", 28, None, 10, api_name="/preview")
    assert Image.open(path).size == (28 * 6, 28 * 6)


# ---- Train ----------------------------------------------------------------------------------------
def test_training_run_from_the_page(served):
    ex, client, _ = served
    out = client.predict("lstm", 16, 2, 0.003, 32, 0.15, str(FIXTURE), "../evil/name", 0.25, True,
                         api_name="/train_start")
    notice, status = out[0], out[1]
    assert "running" in status or "Started" in notice
    tc = ex.training.run.trainer.config  # the regularizers reach the trainer, and the status names them
    assert (tc.dropout, tc.ema) == (0.25, 0.999) and "dropout 0.25, weights averaged" in status
    again = client.predict("gru", 16, 1, 0.003, 32, 0.15, str(FIXTURE), "", 0.0, False, api_name="/train_start")
    assert "already going" in again[0] and "by you" in again[0]
    deadline = time.time() + 60
    curve = None
    while time.time() < deadline:
        status, curve, samples, ckpt, timer = client.predict(api_name="/train_tick")
        if curve and curve.get("data"):
            break
        time.sleep(0.5)
    assert curve and curve["data"], "no loss curve within 60 s"
    assert "step" in status
    client.predict(api_name="/train_pause")
    client.predict(api_name="/train_resume")
    client.predict(api_name="/train_stop")
    ex.training.run.trainer.join(60)
    status = client.predict(api_name="/train_refresh")[0]
    assert "stopped" in status or "finished" in status
    run = ex.training.run
    assert run.out.parent == ex.training.runs_dir and run.out.name.startswith("evil_name")
    assert run.out.exists()
    key = f"run/{run.out.stem}"
    assert key in [k for _, k in ex.registry.choices()]
    assert "digit" in generate(client, key=key)[0]  # the new model generates


# ---- state ----------------------------------------------------------------------------------------
def test_registry_falls_back_and_skips_broken_files(tmp_path):
    folder = tmp_path / "ck"
    folder.mkdir()
    reg = Registry({"shipped": folder, "run": tmp_path / "none"})
    assert reg.default_key() is None and reg.choices() == []
    save_checkpoint(folder / "other.safetensors", RowModel(ModelConfig(hidden=8, head_hidden=16)), {})
    (folder / "junk.safetensors").write_bytes(b"\x80\x04junk" * 10)
    assert reg.default_key() == "shipped/other"
    assert len(reg.problems) == 1 and "pickle" in reg.problems[0]
    entry, model = reg.model("shipped/other")
    assert reg.model("shipped/other")[1] is model  # cached
    with pytest.raises(inputs.InputError, match="unknown checkpoint"):
        reg.model("shipped/../../x")


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


def test_training_disabled_and_missing_data(tmp_path):
    off = TrainingService(tmp_path, enabled=False, disabled_reason="Training is turned off here.")
    with pytest.raises(TrainingRefused, match="turned off"):
        off.start("me", "lstm", 16, 1, 1e-3, 32, 0.1, None)
    missing = TrainingService(tmp_path, default_dataset=str(tmp_path / "nope.npz"))
    assert missing.dataset_problem()
    with pytest.raises(TrainingRefused):
        missing.start("me", "lstm", 16, 1, 1e-3, 32, 0.1, None)
    with pytest.raises(inputs.InputError, match="dataset must be"):
        missing.start("me", "lstm", 16, 1, 1e-3, 32, 0.1, "/etc/passwd")
    with pytest.raises(inputs.InputError, match="cell"):
        missing.start("me", "transformer", 16, 1, 1e-3, 32, 0.1, None)
    with pytest.raises(inputs.InputError, match="dropout must be a finite number"):
        missing.start("me", "lstm", 16, 1, 1e-3, 32, 0.1, None, None, float("nan"))
    with pytest.raises(inputs.InputError, match="weight averaging must be true or false"):
        missing.start("me", "lstm", 16, 1, 1e-3, 32, 0.1, None, None, 0.1, "yes")


def test_only_the_owner_controls_a_run_on_spaces(tmp_path):
    svc = TrainingService(tmp_path, default_dataset=str(FIXTURE), owner_only=True, threads=1)
    msg, notes = svc.start("alice", "rnn", 99999, 1, 1e-3, 32, 0.05, None, None, 0.9)
    try:
        assert "Started" in msg and any("hidden size" in n for n in notes)  # clamped to the limit
        assert any("dropout 0.9 is outside [0, 0.6]" in n for n in notes) and svc.run.trainer.config.dropout == 0.6
        with pytest.raises(TrainingRefused, match="Only the visitor"):
            svc.control("bob", "stop")
        with pytest.raises(TrainingRefused, match="another visitor"):
            svc.start("bob", "lstm", 16, 1, 1e-3, 32, 0.05, None)
        assert "Stopping" in svc.control("alice", "stop")
    finally:
        svc.shutdown(60)


def test_a_run_started_from_the_page_leaves_the_page_thread_count_alone(tmp_path):
    """The trainer sets its thread count for its own thread: the page's handlers (this thread, and
    threads started while it trains) keep theirs."""
    import threading

    import torch

    before = torch.get_num_threads()
    svc = TrainingService(tmp_path, default_dataset=str(FIXTURE), threads=1 if before > 1 else 2)
    try:
        svc.start("me", "rnn", 16, 1, 1e-3, 32, 0.05, None)
        time.sleep(0.5)  # the trainer's thread is running and has set its own count
        seen = []
        t = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
        t.start(), t.join()
        assert torch.get_num_threads() == before and seen == [before]
    finally:
        svc.shutdown(60)
    assert torch.get_num_threads() == before


def test_the_train_tab_curve_reads_the_runs_metrics_log(tmp_path):
    """The Train tab draws the same stream scripts and TensorBoard users read: the run's
    <name>.metrics.jsonl beside its checkpoint."""
    from rnnviz.app.tabs.train import curve_rows
    from rnnviz.train import read_metrics_log

    svc = TrainingService(tmp_path, default_dataset=str(FIXTURE), threads=1)
    try:
        svc.start("me", "rnn", 16, 1, 1e-3, 32, 0.05, None, "logged")
        assert svc.run.trainer.join(120)
    finally:
        svc.shutdown(60)
    log = read_metrics_log(tmp_path / "logged.safetensors")
    assert log and svc.history() == log
    rows = curve_rows(svc.history())
    assert [r["step"] for r in rows if r["series"] == "train loss"] == [r["step"] for r in log
                                                                    if r.get("train_loss") is not None]


# ---- explorer.py ----------------------------------------------------------------------------------
def test_explorer_options_and_environment(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import explorer

    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "9999")
    monkeypatch.setenv("RNNVIZ_TRAIN_DATASET", "x.npz")
    args = explorer.parse_args([])
    assert (args.host, args.port, args.train_dataset, args.share) == ("0.0.0.0", 9999, "x.npz", False)
    args = explorer.parse_args(["--host", "127.0.0.1", "--port", "7000", "--share"])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7000, True)
    assert explorer.training_policy({})[0] is True
    enabled, reason, owner_only = explorer.training_policy({"SYSTEM": "spaces"})
    assert not enabled and "RNNVIZ_ALLOW_TRAINING" in reason and owner_only
    assert explorer.training_policy({"SYSTEM": "spaces", "RNNVIZ_ALLOW_TRAINING": "1"})[0] is True


def test_explorer_main_launches_where_asked(monkeypatch, tmp_path, capsys):
    import gradio as gr

    monkeypatch.syspath_prepend(str(ROOT))
    import explorer

    calls = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: calls.append(kw))
    ckpts = make_checkpoints(tmp_path / "ck")
    (ckpts / "mnist_lstm.safetensors").unlink()  # the default is missing: another one is used
    monkeypatch.delenv("SYSTEM", raising=False)
    explorer.main(["--checkpoint-dir", str(ckpts), "--runs-dir", str(tmp_path / "runs"), "--port", "7999"])
    out = capsys.readouterr()
    assert "http://127.0.0.1:7999" in out.out and "not found; using shipped/" in out.err
    assert calls[-1]["server_name"] == "127.0.0.1" and calls[-1]["server_port"] == 7999
    assert calls[-1]["run_history"] is False and "head" in calls[-1] and "css" in calls[-1]
    monkeypatch.setenv("SYSTEM", "spaces")
    explorer.main(["--checkpoint-dir", str(ckpts), "--runs-dir", str(tmp_path / "runs")])
    assert "server_name" not in calls[-1] and "server_port" not in calls[-1]  # the Space's settings apply


def test_rnnviz_explorer_finds_checkpoints_where_a_user_expects(monkeypatch, tmp_path):
    """``rnnviz-explorer`` reads ./checkpoints where it is started; in a folder without one, a
    source checkout's checkpoints/ (an editable install); ``python explorer.py`` always its own."""
    from rnnviz.app import __main__ as cli

    monkeypatch.syspath_prepend(str(ROOT))
    import explorer

    (tmp_path / "here" / "checkpoints").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "here")
    assert Path(cli.parse_args([]).checkpoint_dir) == tmp_path / "here" / "checkpoints"
    assert Path(cli.parse_args([]).runs_dir) == tmp_path / "here" / "runs" / "explorer"
    assert Path(explorer.parse_args([]).checkpoint_dir) == ROOT / "checkpoints"
    monkeypatch.chdir(tmp_path)
    assert Path(cli.parse_args([]).checkpoint_dir) == ROOT / "checkpoints"  # this checkout's
    monkeypatch.setattr(cli, "CHECKOUT", tmp_path / "site-packages")  # an installed wheel: no checkout
    assert Path(cli.parse_args([]).checkpoint_dir) == tmp_path / "checkpoints"


def test_the_train_tab_says_in_one_sentence_where_the_data_goes(tmp_path, monkeypatch):
    """Offline, the Train tab's notice and a refused Start say where to put MNIST or to pass
    --data-root: one sentence, no server path, none of torchvision's own text."""
    monkeypatch.setenv("RNNVIZ_NO_DOWNLOAD", "1")
    svc = TrainingService(tmp_path / "runs", default_dataset="mnist", data_root=str(tmp_path / "mydata"))
    with pytest.raises(TrainingRefused) as refused:
        svc.start("me", "lstm", 16, 1, 1e-3, 32, 0.1, None)
    for text in (svc.dataset_problem(), str(refused.value)):
        assert "MNIST/" in text and "mydata/" in text and "--data-root" in text
        assert str(tmp_path) not in text and "download=True" not in text and "root=" not in text
        assert text.endswith(".") and ". " not in text and "\n" not in text  # one sentence
    monkeypatch.delenv("RNNVIZ_NO_DOWNLOAD")
    monkeypatch.delenv("RNNVIZ_DATA", raising=False)
    monkeypatch.chdir(tmp_path)  # no data/ here
    svc = TrainingService(tmp_path / "runs", default_dataset="mnist")
    assert "into data/" in svc.dataset_problem() and "Start downloads it" in svc.dataset_problem()
