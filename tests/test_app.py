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
from rnnviz.app.state import Explorer, Sessions
from rnnviz.app.training import TrainingRefused, TrainingService
from tests.apps import served as serving, tiny_checkpoints

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "mnist_small.npz"
MAX_STEP_BYTES = 150_000


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


def plot_json(value) -> dict:
    return json.loads(value["plot"])


# ---- Generate & step ----------------------------------------------------------------------------
def test_every_listener_has_an_api_name(served):
    """Every listener that runs Python has a name of its own, so a script can call it: none is a
    ``lambda`` (Gradio's default name for one), none renamed because two tabs chose the same name
    (Gradio then appends ``_1`` and a script reaches the other one), every one is served, and the
    documented ones are there."""
    from rnnviz.app.ui import build_app

    ex, client, _ = served
    fns = [fn for fn in build_app(ex).fns.values() if fn.fn is not None]
    names = [fn.api_name for fn in fns]
    assert len(set(names)) == len(names) and not [n for n in names if re.search(r"_\d+$|lambda", n)]
    served_names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    callable_names = {f"/{fn.api_name}" for fn in fns if all(event != "unload" for _, event in fn.targets)}
    assert len(callable_names) > 70 and callable_names <= served_names  # unload is the browser's, not the API's
    for needed in ("/generate", "/gen_step", "/gen_tick", "/gen_play", "/gen_pause", "/gen_layer", "/complete",
                   "/open_completion", "/comp_step", "/train_start", "/train_pause", "/train_resume",
                   "/train_stop", "/train_tick", "/preview", "/describe"):
        assert needed in served_names


def test_generate_returns_every_view_for_step_zero(served):
    _, client, _ = served
    summary, canvas, gates, fig, step, layer = generate(client, digit="3", seed=4)
    assert "digit **3**" in summary and "seed 4" in summary
    assert 'data-step="0"' in canvas and "data:image/png;base64," in canvas
    assert gates.count('<figure class="rv-gate"') == 6  # i f g o c h
    fig = plot_json(fig)
    assert sum(d["type"] == "heatmap" for d in fig["data"]) == 6
    assert step == 0


def test_same_seed_same_digit(served):
    _, client, _ = served
    assert generate(client, seed=11)[1] == generate(client, seed=11)[1]
    assert generate(client, seed=11)[1] != generate(client, seed=12)[1]


def test_scrub_changes_canvas_and_gates_and_stays_small(served):
    _, client, _ = served
    generate(client, seed=5)
    frames = [client.predict(t, api_name="/gen_step") for t in (0, 13, 27)]
    for t, (canvas, gates) in zip((0, 13, 27), frames):
        assert f'data-step="{t}"' in canvas and f'data-step="{t}"' in gates
        assert len(canvas) + len(gates) < MAX_STEP_BYTES
    assert len({f[0] for f in frames}) == 3 and len({f[1] for f in frames}) == 3


def test_scrub_rejects_steps_outside_the_image(served):
    from gradio_client.exceptions import AppError

    _, client, _ = served
    generate(client, seed=5)
    assert 'data-step="27"' in client.predict(27, api_name="/gen_step")[0]
    for bad in (28, -1):
        with pytest.raises(AppError, match="value"):
            client.predict(bad, api_name="/gen_step")


def test_play_and_tick(served):
    _, client, _ = served
    generate(client)
    step, canvas, _, timer = client.predict(27, api_name="/gen_play")  # at the end: restarts
    assert step == 0 and 'data-step="0"' in canvas
    step, canvas, _, _ = client.predict(3, api_name="/gen_tick")
    assert step == 4 and 'data-step="4"' in canvas
    step, canvas, _, _ = client.predict(26, api_name="/gen_tick")
    assert step == 27 and 'data-step="27"' in canvas
    client.predict(5, api_name="/gen_play")
    client.predict(api_name="/gen_pause")
    step, canvas, _, _ = client.predict(5, api_name="/gen_tick")  # a tick after Pause draws nothing
    assert canvas is None or 'data-step="6"' not in canvas


def test_layers_of_a_deep_model(served):
    _, client, _ = served
    out = generate(client, key="shipped/deep_rnn", digit="any")
    gates_top = out[2]
    assert "layer 2 of 2" in gates_top
    gates0, fig0 = client.predict(0, 5, api_name="/gen_layer")
    assert "layer 1 of 2" in gates0 and 'data-step="5"' in gates0
    cursor = [s for s in plot_json(fig0)["layout"]["shapes"] if s["name"] == "cursor"]
    assert cursor[0]["x0"] == 5


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


def test_scrub_before_generate_says_what_to_do(served):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    _, _, url = served
    fresh = Client(url, verbose=False)
    with pytest.raises(AppError, match="Generate"):
        fresh.predict(4, api_name="/gen_step")


# ---- Complete -----------------------------------------------------------------------------------
def complete(client, source="test digit", index=28, sketch=None, keep=14, n=3, digit="auto", seed=0):
    return client.predict("shipped/mnist_lstm", source, index, sketch, keep, n, digit, 1.0, seed,
                          api_name="/complete")


def test_complete_a_test_digit_and_open_a_completion(served):
    _, client, _ = served
    gallery, note, preview, canvas, gates, fig, step, layer = complete(client, n=3, keep=10)
    assert len(gallery) == 3 and "first 10 rows" in note and "best guess" in note
    assert 'data-step="0"' in canvas
    opened = client.predict(2, api_name="/open_completion")
    assert opened[0] != canvas or opened[1] != gates
    canvas5, _ = client.predict(5, api_name="/comp_step")
    assert "(kept)" in canvas5  # row 5 < 10 kept rows


def test_completion_rows_kept_from_the_digit(served):
    ex, client, _ = served
    complete(client, index=8, keep=12, n=2, digit="2")
    sess = next(iter(s for s in ex.sessions._data.values() if s.completions and s.completions[0].keep_rows == 12))
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
    gallery, note, *_ = complete(client, source="drawing", sketch=_sketch_payload(tmp_path, layer), keep=14, n=2)
    assert len(gallery) == 2 and "first 14 rows" in note


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
