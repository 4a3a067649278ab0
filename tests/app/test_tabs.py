"""The explorer's Generate & step, Complete and Train tabs: their handlers driven through
gradio_client against an app launched in this process (the ``served`` fixture of
tests/app/conftest.py) on tiny checkpoints, a broken file and the fixture dataset."""

import json
import re
import time

import numpy as np
import pytest
from PIL import Image

from rnnviz import ModelConfig
from rnnviz.wire import decode_trace, encode_trace
from tests import FIXTURE

# what the shared ``served`` fixture (tests/app/conftest.py) serves here; a Train tab on the fixture dataset
CHECKPOINTS = {"mnist_lstm": ModelConfig(hidden=32, head_hidden=64),
               "mnist_gru": ModelConfig(cell="gru", hidden=32, head_hidden=64),
               "deep_rnn": ModelConfig(cell="rnn", hidden=16, layers=2, head_hidden=32),
               "broken": b"not a checkpoint"}
METRICS = {"test_nll": 543.2, "dataset": "test"}


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

    ex, client = served.ex, served.client
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

    ex, client = served.ex, served.client
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
    client = served.client
    a, b, c = (payload_of(generate(client, seed=s)[1]) for s in (11, 11, 12))
    data = [p["columns"][0]["trace"]["data"] for p in (a, b, c)]
    assert data[0] == data[1] and data[0] != data[2]
    assert len({a["id"], b["id"], c["id"]}) == 3  # every payload is new: the page redraws it


def test_copy_link_takes_the_step_from_the_page_and_clamps_it(served):
    """The step lives in the browser: Copy link sends it as its last input (``stepview.step_js``)."""
    from urllib.parse import parse_qs

    client = served.client
    for t, expected in ((14, "14"), (0, "0"), (99, "27"), (-4, "0")):
        link = client.predict("shipped/mnist_gru", "3", 0.8, 5, t, api_name="/copy_link")
        assert parse_qs(link.split("?", 1)[1]) == {"model": ["mnist_gru"], "digit": ["3"], "seed": ["5"],
                                                   "temperature": ["0.8"], "t": [expected], "tab": ["generate"]}


def test_layers_of_a_deep_model(served):

    ex, client = served.ex, served.client
    p = payload_of(generate(client, key="shipped/deep_rnn", digit="any")[1])
    col = p["columns"][0]
    assert p["layer"] == 1 and col["trace"]["nlayers"] == 2  # opens on the top layer; both are sent
    assert_same_trace(col, session_view(ex, client).trace)
    assert [len(o) for o in col["unitOrder"]] == [16, 16]
    for k in (0, 1):
        assert col["unitOrder"][k] == ex.unit_studies.order("shipped/deep_rnn", k)[2].tolist()


def test_bad_inputs_give_clear_errors(served):
    from gradio_client.exceptions import AppError

    client = served.client
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

    url = served.url
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
    ex, client = served.ex, served.client
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
    client = served.client
    complete(client, n=2, keep=10)
    assert isinstance(client.predict(1, api_name="/open_completion"), str)


def test_completion_rows_kept_from_the_digit(served):
    ex, client = served.ex, served.client
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
    client = served.client
    layer = np.zeros((280, 280, 4), np.uint8)
    layer[40:240, 120:150, 3] = 255  # a 1
    gallery, note, _, value = complete(client, source="drawing", sketch=_sketch_payload(tmp_path, layer), keep=14, n=2)
    assert len(gallery) == 2 and "first 14 rows" in note
    assert payload_of(value)["columns"][0]["trace"]["keepRows"] == 14


def test_blank_drawing_is_explained_not_crashed(served, tmp_path):
    from gradio_client.exceptions import AppError

    client = served.client
    blank = _sketch_payload(tmp_path, np.zeros((280, 280, 4), np.uint8))
    with pytest.raises(AppError, match="empty"):
        complete(client, source="drawing", sketch=blank)
    assert client.predict("drawing", 0, blank, 14, api_name="/preview") is None  # a warning, no crash


def test_preview_of_a_test_digit(served):
    client = served.client
    path = client.predict("test digit", 28, None, 10, api_name="/preview")
    assert Image.open(path).size == (28 * 6, 28 * 6)


# ---- Train ----------------------------------------------------------------------------------------
def test_training_run_from_the_page(served):
    ex, client = served.ex, served.client
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
