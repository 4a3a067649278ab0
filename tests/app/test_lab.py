"""The explorer's lab tabs (Compare cells, Intervene, Reconstruct) driven through gradio_client
against an app launched in this process on tiny checkpoints, plus the pure parts they use (the
unit-list parser, the step range, the intervened steps). Each tab's step view is one payload (the
traces as exact float32 values, ``rnnviz.wire``): here it is read back and checked against the
traces the server computed; the browser side (one slider for every column) is tests/browser/test_lab.py."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from rnnviz import ModelConfig, RowModel, sample_traces, save_checkpoint
from rnnviz.app import inputs
from rnnviz.app.tabs import intervene as intervene_tab
from rnnviz.interventions import PRESETS, RowEdit, intervene, presets_for
from rnnviz.rules import RUN_COLORS
from rnnviz.wire import decode_trace

F0 = "forget everything (f = 0)"
H_VALUE = "fix hidden units (h = value)"
INK = "ink row(s): every pixel on"
ERASE = "erase row(s): every pixel off"


def tiny(cfg: ModelConfig, seed: int = 0) -> RowModel:
    torch.manual_seed(seed)
    return RowModel(cfg)


VAE = ModelConfig(hidden=32, head_hidden=64, num_classes=0, latent=8)


# what the shared ``served`` fixture (tests/app/conftest.py) serves here (no VAE until a test adds one)
CHECKPOINTS = {"mnist_lstm": ModelConfig(hidden=32, head_hidden=64),
               "mnist_gru": ModelConfig(cell="gru", hidden=32, head_hidden=64),
               "mnist_rnn": ModelConfig(cell="rnn", hidden=32, head_hidden=64),
               "deep_lstm": ModelConfig(hidden=16, layers=2, head_hidden=32),
               "uncond_rnn": ModelConfig(cell="rnn", hidden=16, head_hidden=32, num_classes=0)}
METRICS = {"test_nll": 543.2, "test_nll_protocol": "exact marginal over classes, nats/image", "dataset": "test"}
TRAINING = "off"


def value_of(out):
    """An output's value (a component update arrives as a dict)."""
    return out["value"] if isinstance(out, dict) and "__type__" in out else out


def payload_of(value: str) -> dict:
    """A step view's value: the JSON payload the page draws (``stepview``)."""
    p = json.loads(value)
    assert set(p) >= {"id", "step", "layer", "columns"}, sorted(p)
    return p


def arrays_of(column: dict) -> dict[str, np.ndarray]:
    return decode_trace(column["trace"])


def assert_same_trace(column: dict, trace):
    """The payload column carries ``trace`` bit for bit (float32)."""
    arrays = arrays_of(column)
    f4 = lambda a: np.asarray(a, np.float32).ravel()  # noqa: E731
    assert np.array_equal(arrays["image"], f4(trace.image)) and np.array_equal(arrays["rowNll"], f4(trace.row_nll))
    assert np.array_equal(arrays["probs"], f4(trace.probs))
    for k, layer in enumerate(trace.layers):
        for name in trace.names:
            assert np.array_equal(arrays[f"l{k}.{name}"], f4(layer[name])), (k, name)
    assert column["trace"]["nlayers"] == len(trace.layers) and column["trace"]["cell"] == trace.cell


def session_view(ex, name):
    """The (one) session view called ``name`` holding traces: the tests' client is the only visitor."""
    found = [s.views[name] for s in ex.sessions.values() if name in s.views and s.views[name].traces]
    assert found, f"no session holds a {name!r} view"
    return found[-1]


# ---- pure parts ---------------------------------------------------------------------------------
def test_unit_lists():
    assert inputs.units("3, 17, 200-203", 256) == (3, 17, 200, 201, 202, 203)
    assert inputs.units("5 - 6; 1", 8) == (1, 5, 6)
    for everything in ("all", "", None, " * "):
        assert inputs.units(everything, 8) is None
    for bad, said in (("abc", "not a unit number"), ("5-3", "backwards"), ("300", "units 0-255"),
                      ("1.5", "not a unit number"), ("-2", "not a unit number"), (["1"], "must be text")):
        with pytest.raises(inputs.InputError, match=said):
            inputs.units(bad, 256)
    with pytest.raises(inputs.InputError, match="too long"):
        inputs.units("1," * 2000, 256)


def test_step_ranges():
    assert inputs.step_range(3, 3, 28) == (3, 3)
    for a, b, said in ((0, 28, "outside the image"), (-1, 3, "outside"), (5, 3, "comes before"),
                       (float("nan"), 3, "finite"), (1.5, 3, "whole number"), ("x", 3, "number")):
        with pytest.raises(inputs.InputError, match=said):
            inputs.step_range(a, b, 28)


def test_intervened_steps():
    """The steps Intervene's second column marks (its payload's ``intervened``)."""
    model = tiny(ModelConfig(hidden=16, head_hidden=32)).eval()
    cmp = intervene(model, [RowEdit(4, (1,) * 28), RowEdit(9, (0,) * 28)], y=3, seed=1)
    assert intervene_tab.intervened_steps(cmp.changes, 28) == [4, 9]
    changes = PRESETS[F0].make(10, 28, None, -1, None)
    assert intervene_tab.intervened_steps(changes, 28) == list(range(10, 28))


# ---- Compare cells ------------------------------------------------------------------------------
def compare(client, keys=None, digit="7", temperature=1.0, seed=0):
    return client.predict(keys if keys is not None else [], digit, temperature, seed, api_name="/compare")


REMOVED = ("/compare_step", "/compare_play", "/compare_pause", "/compare_tick", "/intervene_step",
           "/intervene_play", "/intervene_pause", "/intervene_tick", "/rec_step", "/rec_play", "/rec_tick",
           "/rec_layer", "/gen_step")  # a step is the browser's now: no request


def test_lab_listeners_have_api_names(served):
    client = served.client
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    for needed in ("/compare", "/compare_models", "/compare_reach", "/intervene", "/intervene_kind",
                   "/intervene_presets", "/reconstruct", "/sample_prior", "/rec_models", "/rec_preview",
                   "/generate", "/complete"):
        assert needed in names, needed
    assert not names & set(REMOVED), names & set(REMOVED)


def test_compare_sends_three_columns_of_exact_traces(served):
    ex, client = served.ex, served.client
    note, value = compare(client)  # no models chosen: the shipped LSTM, GRU and RNN
    assert "3 models" in note and "digit **7**" in note
    p = payload_of(value)
    assert p["step"] == 27 and p["layer"] == -1 and len(p["columns"]) == 3
    v = session_view(ex, "compare")
    for col, name, cell, tr in zip(p["columns"], ("mnist_lstm", "mnist_gru", "mnist_rnn"), ("lstm", "gru", "rnn"),
                                   v.traces):
        assert col["entry"]["name"] == name and col["entry"]["metrics"] == {
            "test_nll": 543.2, "test_nll_protocol": "exact marginal over classes, nats/image"}
        assert col["entry"]["config"].items() >= {"cell": cell, "layers": 1, "hidden": 32, "latent": 0}.items()
        assert col["what"] == "this sample" and col["trace"]["seed"] == 0 and col["trace"]["label"] == 7
        (expected,) = sample_traces(ex.model(f"shipped/{name}")[1], n=1, y=7, temperature=1.0, seed=0)
        assert_same_trace(col, expected)  # what Python samples for that model, digit and seed
        assert_same_trace(col, tr)  # and what the session keeps
    images = [arrays_of(c)["image"] for c in p["columns"]]
    assert not np.array_equal(images[0], images[1])  # another cell, another digit from the same numbers


def test_compare_same_seed_same_digit_across_models(served):
    ex, client = served.ex, served.client
    _, value = compare(client, ["shipped/mnist_lstm", "shipped/mnist_gru"], digit="any", seed=3)
    v = session_view(ex, "compare")
    assert len(v.traces) == 2 and v.traces[0].label == v.traces[1].label  # the class comes from the seed
    assert [t.cell for t in v.traces] == ["lstm", "gru"]
    cols = payload_of(value)["columns"]
    assert [c["trace"]["label"] for c in cols] == [v.traces[0].label] * 2 and [c["trace"]["seed"] for c in cols] == [3, 3]


def test_a_click_in_a_column_inspects_that_columns_model(served):
    """The page names a click in column k of Compare "compare<k>" (gradio.js); the Units tab inspects
    that column's model, whatever the page's model menu says."""
    ex, client = served.ex, served.client
    compare(client, ["shipped/mnist_lstm", "shipped/uncond_rnn", "shipped/deep_lstm"], digit="any")
    views = ex.sessions.get(client.session_hash).views
    assert [views[f"compare{k}"].model_key for k in range(3)] == ["shipped/mnist_lstm", "shipped/uncond_rnn",
                                                                   "shipped/deep_lstm"]
    _, note, *_ = client.predict("shipped/mnist_lstm", "5:0:compare1:1", api_name="/units_pick")
    assert "uncond_rnn" in note and "unit **5** of layer 1" in note
    _, note, *_ = client.predict("shipped/mnist_lstm", "3:1:compare2:2", api_name="/units_pick")
    assert "deep_lstm" in note and "unit **3** of layer 2" in note
    compare(client, ["shipped/mnist_gru", "shipped/mnist_rnn"])
    assert views["compare0"].model_key == "shipped/mnist_gru" and "compare2" not in views
    run_intervention(client, INK, 6, 6, key="shipped/mnist_gru")
    assert views["intervene0"].model_key == views["intervene1"].model_key == "shipped/mnist_gru"


def test_compare_skips_unconditional_models_when_a_digit_is_asked(served):
    from gradio_client.exceptions import AppError

    client = served.client
    keys = ["shipped/mnist_lstm", "shipped/uncond_rnn", "shipped/mnist_gru"]
    note, value = compare(client, keys, digit="4")
    assert "2 models" in note and "uncond_rnn is not class-conditional" in note
    assert [c["entry"]["name"] for c in payload_of(value)["columns"]] == ["mnist_lstm", "mnist_gru"]
    note, value = compare(client, keys, digit="any")
    assert "3 models" in note
    assert [c["entry"]["name"] for c in payload_of(value)["columns"]] == ["mnist_lstm", "uncond_rnn", "mnist_gru"]
    with pytest.raises(AppError, match="None of the chosen models"):
        compare(client, ["shipped/uncond_rnn"], digit="4")
    with pytest.raises(AppError, match="at most 3"):
        compare(client, ["shipped/mnist_lstm", "shipped/mnist_gru", "shipped/mnist_rnn", "shipped/deep_lstm"])
    with pytest.raises(AppError, match="unknown checkpoint"):
        compare(client, ["shipped/../../x"])
    with pytest.raises(AppError, match="not in the list of choices"):
        compare(client, digit="12")
    with pytest.raises(AppError, match="seed must be a finite number"):
        compare(client, seed="nan")


# ---- Intervene ----------------------------------------------------------------------------------
def run_intervention(client, kind=F0, first=10, last=27, units="all", value=0.5, layer=-1, digit="7",
                     key="shipped/mnist_lstm", seed=0):
    return client.predict(key, kind, first, last, units, value, layer, digit, 1.0, seed, api_name="/intervene")


def test_forget_gate_shut_changes_c_as_expected(served):
    ex, client = served.ex, served.client
    summary, value = run_intervention(client, F0, 10, 27)
    assert "forget everything (f = 0) at steps 10-27, all units" in summary and "NLL without" in summary
    cmp = session_view(ex, "intervene").comparison
    o, w = cmp.original.layers[0], cmp.intervened.layers[0]
    np.testing.assert_array_equal(o["c"][:10], w["c"][:10])  # identical before the intervention
    assert (w["f"][10:] == 0).all()
    np.testing.assert_allclose(w["c"][10:], w["i"][10:] * w["g"][10:], atol=1e-6)  # c = i * g
    # the payload: without | with, exactly the two runs, the intervened steps; the page computes the difference
    p = payload_of(value)
    assert p["step"] == 27 and p["layer"] == cmp.changes[0].layer and len(p["columns"]) == 2
    without, with_ = p["columns"]
    assert (without["what"], without["color"]) == ("without", RUN_COLORS["without"]) and "intervened" not in without
    assert with_["what"].startswith("with: forget everything (f = 0) at steps 10-27") and with_["color"] == RUN_COLORS["with"]
    assert with_["intervened"] == list(range(10, 28))
    assert without["entry"]["name"] == with_["entry"]["name"] == "mnist_lstm"
    assert_same_trace(without, cmp.original)
    assert_same_trace(with_, cmp.intervened)
    dc = np.abs(arrays_of(with_)["l0.c"] - arrays_of(without)["l0.c"]).reshape(28, 32).mean(axis=1)
    assert dc[:10].max() == 0 and dc[10:].min() > 0  # the mean |change of c| the difference column charts


def test_row_edit_changes_the_image(served):
    ex, client = served.ex, served.client
    summary, value = run_intervention(client, INK, 6, 6, seed=1)
    cmp = session_view(ex, "intervene").comparison
    assert cmp.intervened.image[6].all() and (cmp.original.image[:6] == cmp.intervened.image[:6]).all()
    assert cmp.first_changed_row == 6 and "row 6" in summary
    assert (cmp.image_diff[6] >= 0).all() and (cmp.image_diff > 0).sum() > 0
    p = payload_of(value)
    assert p["layer"] == -1 and p["columns"][1]["intervened"] == [6] and p["columns"][1]["what"] == "with: ink row at step 6"
    a, b = (arrays_of(c)["image"].reshape(28, 28) for c in p["columns"])
    changed = np.flatnonzero((a != b).any(axis=1))
    assert changed[0] == 6 and b[6].all()  # the page's "first changed line" and red row
    summary, *_ = run_intervention(client, ERASE, 12, 14, seed=1)
    cmp = session_view(ex, "intervene").comparison
    assert not cmp.intervened.image[12:15].any() and "erase rows at steps 12-14" in summary


def test_clamp_some_units_of_one_layer(served):
    ex, client = served.ex, served.client
    summary, value = run_intervention(client, H_VALUE, 3, 5, units="1, 4-6", value=0.25, layer=-2,
                                      key="shipped/deep_lstm")
    assert "h = 0.25" in summary and "4 units (1, 4-6), layer 1 of 2" in summary
    p = payload_of(value)
    assert p["layer"] == -2 and p["columns"][1]["layer"] == -2  # the difference column shows the changed layer
    w = session_view(ex, "intervene").comparison.intervened
    assert_same_trace(p["columns"][1], w)
    h = arrays_of(p["columns"][1])["l0.h"].reshape(28, 16)
    assert (h[3:6, [1, 4, 5, 6]] == np.float32(0.25)).all()
    assert (w.layers[0]["h"][3:6, [1, 4, 5, 6]] == 0.25).all()
    assert not (w.layers[0]["h"][3:6, [0, 2, 3]] == 0.25).all()


def test_intervene_bad_inputs_are_explained(served):
    from gradio_client.exceptions import AppError

    client = served.client
    cases = [({"units": "abc"}, "units: 'abc' is not a unit number"),
             ({"units": "3, 999"}, "unit 999 does not exist"),
             ({"first": 30}, "outside the allowed range"),
             ({"first": 20, "last": 5}, "comes before"),
             ({"kind": H_VALUE, "value": "nan"}, "value must be a finite number"),
             ({"kind": H_VALUE, "value": "inf"}, "value must be a finite number"),
             ({"seed": "NaN"}, "seed must be a finite number"),
             ({"kind": H_VALUE, "value": None}, "value is missing"),
             ({"kind": "keep old state (z = 1)"}, "unknown intervention"),  # a GRU preset on an LSTM
             ({"kind": "rm -rf /"}, "unknown intervention"),
             ({"digit": "x"}, "not in the list of choices"),
             ({"key": "shipped/nope"}, "unknown checkpoint")]
    for kwargs, said in cases:
        with pytest.raises(AppError, match=re.escape(said)):
            run_intervention(client, **kwargs)


def test_intervention_menu_follows_the_model(served):
    client = served.client
    kind, help_text, layer, units, value = client.predict("shipped/mnist_gru", F0, api_name="/intervene_presets")
    assert value_of(kind) in presets_for("gru") and value_of(kind) != F0
    assert [c[1] for c in kind["choices"]] == list(presets_for("gru")) + [ERASE, INK]
    kind, help_text, layer, *_ = client.predict("shipped/deep_lstm", F0, api_name="/intervene_presets")
    assert value_of(kind) == F0 and layer["visible"] is True  # kept; two layers to choose from
    assert [c[1] for c in layer["choices"]] == [-2, -1]
    help_text, units, value = client.predict(H_VALUE, api_name="/intervene_kind")
    assert help_text == PRESETS[H_VALUE].help


# ---- Reconstruct --------------------------------------------------------------------------------
def test_reconstruct_without_then_with_a_vae(served):
    from gradio_client.exceptions import AppError

    ex, client, ckpts = served.ex, served.client, served.checkpoints
    with pytest.raises(AppError, match="No VAE checkpoint") as err:
        client.predict(None, "test digit", 5, None, 1.0, 0, True, api_name="/reconstruct")
    assert "--latent 32 --free-bits 1.0 --out checkpoints/mnist_vae.safetensors" in str(err.value)
    with pytest.raises(AppError, match="not a VAE"):
        client.predict("shipped/mnist_lstm", "test digit", 5, None, 1.0, 0, True, api_name="/reconstruct")
    _, note = client.predict(None, api_name="/rec_models")
    assert "python -m rnnviz.train --latent" in note

    save_checkpoint(ckpts / "mnist_vae.safetensors", tiny(VAE), {"test_nll": 99.0})
    menu, note = client.predict(None, api_name="/rec_models")  # opening the tab again finds it
    key = value_of(menu)
    assert key == "shipped/mnist_vae" and note == ""
    summary, source, value = client.predict(key, "test digit", 5, None, 1.0, 0, True, api_name="/reconstruct")
    assert "encoded test digit #5" in summary and "pixels differ from the source" in summary
    assert Image.open(source).size == (28 * 8, 28 * 8)
    rec = ex.sessions.get(client.session_hash).view("rec").trace
    assert rec.meta["kind"] == "reconstruction" and rec.latent.shape == (8,)
    p = payload_of(value)
    assert p["step"] == 27 and p["layer"] == 0
    col = p["columns"][0]
    assert col["entry"]["name"] == "mnist_vae" and col["entry"]["config"]["latent"] == 8
    assert_same_trace(col, rec)
    assert col["trace"]["names"] == ["i", "f", "g", "o", "c", "h"]
    summary, source, value = client.predict(key, 1.0, 3, api_name="/sample_prior")
    assert "from the prior" in summary and source is None
    prior = ex.sessions.get(client.session_hash).view("rec").trace
    assert prior is not rec and prior.seed == 3
    assert_same_trace(payload_of(value)["columns"][0], prior)


def test_reconstruct_a_drawing_and_bad_input(served, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    client, ckpts = served.client, served.checkpoints
    if not (ckpts / "mnist_vae.safetensors").exists():
        save_checkpoint(ckpts / "mnist_vae.safetensors", tiny(VAE), {})
    layer = np.zeros((280, 280, 4), np.uint8)
    layer[40:240, 120:150, 3] = 255  # a 1
    paths = {}
    for name, arr in (("bg", np.full((280, 280, 4), 255, np.uint8)), ("layer", layer)):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(arr).save(paths[name])
    comp = np.full((280, 280, 4), 255, np.uint8)
    comp[layer[..., 3] > 0, :3] = 0
    Image.fromarray(comp).save(tmp_path / "comp.png")
    sketch = {"background": handle_file(str(paths["bg"])), "layers": [handle_file(str(paths["layer"]))],
              "composite": handle_file(str(tmp_path / "comp.png"))}
    summary, *_ = client.predict("shipped/mnist_vae", "drawing", 0, sketch, 1.0, 0, False, api_name="/reconstruct")
    assert "your drawing" in summary
    with pytest.raises(AppError, match="outside the allowed range"):
        client.predict("shipped/mnist_vae", "test digit", 10_000, None, 1.0, 0, True, api_name="/reconstruct")
    with pytest.raises(AppError, match="empty"):
        client.predict("shipped/mnist_vae", "drawing", 0, None, 1.0, 0, True, api_name="/reconstruct")
    assert Image.open(client.predict("test digit", 3, None, api_name="/rec_preview")).size == (224, 224)
