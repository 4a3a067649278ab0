"""The explorer's analysis tabs (Gate saturation, Teacher forcing), the Train tab's live saturation
and the download buttons, driven through gradio_client against an app launched in this process on
tiny checkpoints and the fixture dataset (tests/fixtures/mnist_small.npz, 200 test digits)."""

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rnnviz import ModelConfig
from rnnviz.app.downloads import Downloads
from rnnviz.app.measurements import Analyses
from rnnviz.app.operations import Explorer
from rnnviz.app.training import TrainingService
from rnnviz.export import load_trace_npz
from tests import FIXTURE
from tests.app import make_checkpoints, plot_json

LSTM, GRU, RNN, VAE, DEEP = ("shipped/mnist_lstm", "shipped/mnist_gru", "shipped/mnist_rnn", "shipped/mnist_vae",
                             "shipped/deep_gru")


# what the shared ``served`` fixture (tests/app/conftest.py) serves here; a Train tab on the fixture dataset
CHECKPOINTS = {"mnist_lstm": ModelConfig(hidden=32, head_hidden=64),
               "mnist_gru": ModelConfig(cell="gru", hidden=32, head_hidden=64),
               "mnist_rnn": ModelConfig(cell="rnn", hidden=16, head_hidden=32),
               "mnist_vae": ModelConfig(hidden=16, head_hidden=32, num_classes=0, latent=4),
               "deep_gru": ModelConfig(cell="gru", hidden=16, layers=2, head_hidden=32)}
METRICS = {"test_nll": 543.2, "dataset": "test"}


def skipped(value) -> bool:
    """What gradio_client returns for ``gr.skip()``."""
    return value is None or value == {"__type__": "update"}


def fresh(url):
    from gradio_client import Client

    return Client(url, verbose=False)


# ---- gate saturation ------------------------------------------------------------------------------
def test_saturation_has_a_panel_per_gate_with_fractions(served):
    client = served.client
    note, fig, layer = client.predict(LSTM, None, api_name="/saturation")
    fig = plot_json(fig)
    assert [t["name"] for t in fig["data"]] == ["i", "f", "o"]
    for t in fig["data"]:
        x, y = np.array(t["x"]), np.array(t["y"])
        assert len(x) == len(y) == 32
        assert ((x >= 0) & (x <= 1) & (y >= 0) & (y <= 1)).all() and (x + y <= 1 + 1e-6).all()
    # read on the fixture's test split (200 digits), with the true labels; a table per gate
    assert "200 digits" in note and "mnist_small" in note and "true labels" in note
    assert note.count("| **") == 3
    gru = plot_json(client.predict(GRU, None, api_name="/saturation")[1])
    assert [t["name"] for t in gru["data"]] == ["r", "z"]


def test_saturation_is_cached_per_checkpoint(served):
    ex = served.ex
    a = Analyses(ex)
    first = a.saturation(LSTM)
    again = a.saturation(LSTM)
    assert again.sat is first.sat and again.seconds == 0.0
    path = ex.registry.get(LSTM).path
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))  # a new file: measured anew
    assert a.saturation(LSTM).sat is not first.sat


def test_saturation_of_an_rnn_says_it_has_no_gates(served):
    client = served.client
    note, fig, _ = client.predict(RNN, None, api_name="/saturation")
    assert "no gates" in note and plot_json(fig)["data"] == []
    assert "no gates" in plot_json(fig)["layout"]["annotations"][0]["text"]


def test_saturation_of_a_vae_and_of_a_lower_layer(served):
    client = served.client
    note, fig, _ = client.predict(VAE, None, api_name="/saturation")
    assert "q(z | x)" in note and len(plot_json(fig)["data"]) == 3
    note, _, layer = client.predict(DEEP, None, api_name="/saturation")
    assert "layer 2 of 2 (top)" in note and layer["value"] == 1 and len(layer["choices"]) == 2
    note, _, layer = client.predict(DEEP, 0, api_name="/saturation_layer")
    assert "layer 1 of 2" in note and layer["value"] == 0


def test_saturation_falls_back_to_the_gallery(tmp_path):
    training = TrainingService(tmp_path / "runs", default_dataset=str(tmp_path / "missing.npz"))
    ex = Explorer(make_checkpoints(tmp_path / "ckpt", CHECKPOINTS, METRICS), tmp_path / "runs", training=training)
    r = Analyses(ex).saturation(GRU)
    assert r.sat["images"] == 40 and not r.full and "gallery" in r.source


def test_the_tabs_of_one_explorer_share_its_analyses(served, tmp_path):
    """Gate saturation, Teacher forcing and the unit studies use the Explorer's one ``Analyses`` (one
    cache, one lock, the test digits read once); another Explorer has its own."""
    import gradio as gr

    from rnnviz.app.tabs import forcing, saturation

    ex = served.ex
    with gr.Blocks():
        ckpt = gr.Dropdown()
        sat, forc = saturation.build(ex, ckpt), forcing.build(ex, ckpt)
    assert sat.analyses is forc.analyses is ex.analyses is ex.unit_studies.analyses
    other = Explorer(ex.registry.folders["shipped"], tmp_path / "runs", uploads_dir=tmp_path / "uploads")
    assert other.analyses is not ex.analyses and other.unit_studies is not ex.unit_studies
    assert other.unit_studies.analyses is other.analyses
    entry = ex.registry.get(LSTM)
    full, few = ex.analyses.test_batch(entry), ex.analyses.test_batch(entry, 50)
    assert len(full.images) == 200 and "first 200 images" in full.source
    assert len(few.images) == 50 and "first 50 images" in few.source and few.key != full.key
    np.testing.assert_array_equal(few.images, full.images[:50])


def test_saturation_follows_the_model_only_once_the_tab_was_opened(served):
    url = served.url
    client = fresh(url)
    assert all(skipped(v) for v in client.predict(GRU, None, api_name="/saturation_model"))
    client.predict(LSTM, None, api_name="/saturation_tab")
    note, fig, _ = client.predict(GRU, None, api_name="/saturation_model")
    assert "mnist_gru" in note and len(plot_json(fig)["data"]) == 2


def test_saturation_bad_inputs(served):
    from gradio_client.exceptions import AppError

    client = served.client
    with pytest.raises(AppError, match="unknown checkpoint"):
        client.predict("../../etc/passwd", None, api_name="/saturation")


# ---- teacher forcing vs free running ----------------------------------------------------------------
def test_forcing_figure_and_caption(served):
    ex, client = served.ex, served.client
    note, fig = client.predict(LSTM, 28, 3, 1.0, 4, api_name="/forcing")
    fig = plot_json(fig)
    assert sum(t["type"] == "heatmap" for t in fig["data"]) == 4
    assert sum(t["type"] == "scatter" for t in fig["data"]) == 2  # h and c distance
    _, label = ex.gallery_binary(28)
    assert f"test digit #28 (a {label})" in note and f"true label {label}" in note
    assert "the first 4 rows kept" in note
    assert "NLL teacher forced" in note and "free running" in note
    texts = " ".join(a["text"] for a in fig["layout"]["annotations"])
    if "first differing row" in texts:
        row = int(texts.split("first differing row: ")[1].split()[0])
        assert f"at **row {row}**" in note and row >= 4
    else:
        assert "the true image" in note


def test_forcing_of_a_vae_uses_z_and_all_rows_kept_agree(served):
    client = served.client
    note, fig = client.predict(VAE, 3, 0, 1.0, 0, api_name="/forcing")
    assert "q(z | x)" in note and "true label" not in note
    note, fig = client.predict(GRU, 5, 0, 1.0, 27, api_name="/forcing")
    assert "the first 27 rows kept" in note


def test_forcing_bad_inputs(served):
    from gradio_client.exceptions import AppError

    client = served.client
    for args, match in (((LSTM, 99, 0, 1.0, 0), "value"), ((LSTM, 3, 0, 1.0, 40), "value"),
                        ((LSTM, 3, -2, 1.0, 0), "value"), ((LSTM, "x", 0, 1.0, 0), "number"),
                        (("nope", 3, 0, 1.0, 0), "unknown checkpoint")):
        with pytest.raises(AppError, match=match):
            client.predict(*args, api_name="/forcing")


# ---- exports ------------------------------------------------------------------------------------
def test_exports_of_the_generated_trace(served):
    ex, url = served.ex, served.url
    client = fresh(url)
    client.predict(LSTM, "3", 1.0, 5, api_name="/generate")
    gif = client.predict(api_name="/gen_export_gif")
    assert Path(gif).name == "rnnviz_lstm_digit3_seed5_gen.gif"
    with Image.open(gif) as im:
        assert im.format == "GIF" and im.n_frames == 29  # 28 steps and the finished image
    npz = client.predict(api_name="/gen_export_npz")
    trace = load_trace_npz(npz)
    sess = next(s for s in ex.sessions.values()
                if s.views.get("gen") and s.views["gen"].trace is not None and s.views["gen"].trace.seed == 5)
    np.testing.assert_array_equal(trace.image, sess.views["gen"].trace.image)
    assert trace.label == 3 and trace.cell == "lstm"
    png = client.predict(LSTM, "3", 1.0, 5, api_name="/gen_export_grid")
    with Image.open(png) as im:  # 10 samples of the digit in one row, 4x, 2 px padding
        assert im.size == (4 * (10 * 30 + 2), 4 * 32)
    png = client.predict(LSTM, "any", 1.0, 5, api_name="/gen_export_grid")
    with Image.open(png) as im:  # 10 per class
        assert im.size == (4 * (10 * 30 + 2), 4 * (10 * 30 + 2))


def test_export_of_a_completion(served):
    url = served.url
    client = fresh(url)
    client.predict(LSTM, "test digit", 8, None, 12, 2, "2", 1.0, 0, api_name="/complete")
    gif = client.predict(api_name="/comp_export_gif")
    assert "kept12" in Path(gif).name
    assert load_trace_npz(client.predict(api_name="/comp_export_npz")).keep_rows == 12


def test_exports_before_anything_and_bad_inputs(served):
    from gradio_client.exceptions import AppError

    url = served.url
    client = fresh(url)
    with pytest.raises(AppError, match="Generate"):
        client.predict(api_name="/gen_export_gif")
    with pytest.raises(AppError, match="Complete"):
        client.predict(api_name="/comp_export_npz")
    with pytest.raises(AppError, match="choices"):  # the digit radio refuses it
        client.predict(LSTM, "12", 1.0, 0, api_name="/gen_export_grid")
    with pytest.raises(AppError, match="unknown checkpoint"):
        client.predict("x/../y", "3", 1.0, 0, api_name="/gen_export_grid")
    with pytest.raises(AppError, match="value"):
        client.predict(LSTM, "3", 1.0, -1, api_name="/gen_export_grid")


def test_download_folders_are_bounded(tmp_path):
    d = Downloads(tmp_path, max_sessions=2)
    for s in ("a", "b", "c"):
        d.path(s, "x", ".gif").write_bytes(b"GIF")
    assert len(d) == 2 and len(list(d.root.iterdir())) == 2
    p = d.path("c", "y", ".gif")  # a new export of a kind replaces the last one
    assert not (p.parent / "x.gif").exists()
    d.drop("c")
    assert not p.parent.exists() and len(d) == 1


# ---- live saturation in the Train tab -------------------------------------------------------------
def test_live_saturation_while_training(served):
    ex, url = served.ex, served.url
    client = fresh(url)
    out = client.predict("gru", 16, 1, 0.003, 32, 0.1, str(FIXTURE), "sat", 0.0, False, api_name="/train_start")
    assert "Started" in out[0] or "running" in out[1]
    try:
        deadline, fig = time.time() + 60, None
        while time.time() < deadline:
            fig = client.predict(api_name="/train_saturation_tick")
            if not skipped(fig) and plot_json(fig)["data"]:
                break
            time.sleep(0.5)
        assert not skipped(fig) and [t["name"] for t in plot_json(fig)["data"]] == ["r", "z"], \
            "no live saturation in 60 s"
        assert "200 images" in " ".join(a["text"] for a in plot_json(fig)["layout"]["annotations"])
        snap, _ = ex.training.snapshot()
        assert snap["saturation"]["gates"] == ("r", "z")
    finally:
        client.predict(api_name="/train_stop")
        ex.training.run.trainer.join(60)
    # opening the tab always sends it; the timer only when it changed since
    shown = client.predict(api_name="/train_saturation")
    assert shown and [t["name"] for t in plot_json(shown)["data"]] == ["r", "z"]
    assert skipped(client.predict(api_name="/train_saturation_tick"))
