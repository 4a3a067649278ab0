"""The explorer's lab tabs (Compare cells, Intervene, Reconstruct) driven through gradio_client
against an app launched in this process on tiny checkpoints, plus the pure parts they use (the
unit-list parser, the step range, the view builders)."""

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from rnnviz import ModelConfig, RowModel, save_checkpoint
from rnnviz.app import inputs
from rnnviz.app.tabs import intervene as intervene_tab
from rnnviz.app.state import Explorer
from rnnviz.app.training import TrainingService
from rnnviz.interventions import PRESETS, RowEdit, intervene, presets_for
from tests.apps import served as serving, tiny_checkpoints

MAX_STEP_BYTES = 150_000
F0 = "forget everything (f = 0)"
H_VALUE = "fix hidden units (h = value)"
INK = "ink row(s): every pixel on"
ERASE = "erase row(s): every pixel off"


def tiny(cfg: ModelConfig, seed: int = 0) -> RowModel:
    torch.manual_seed(seed)
    return RowModel(cfg)


VAE = ModelConfig(hidden=32, head_hidden=64, num_classes=0, latent=8)


def make_checkpoints(folder):
    metrics = {"test_nll": 543.2, "test_nll_protocol": "exact marginal over classes, nats/image", "dataset": "test"}
    return tiny_checkpoints(folder, {"mnist_lstm": ModelConfig(hidden=32, head_hidden=64),
                                     "mnist_gru": ModelConfig(cell="gru", hidden=32, head_hidden=64),
                                     "mnist_rnn": ModelConfig(cell="rnn", hidden=32, head_hidden=64),
                                     "deep_lstm": ModelConfig(hidden=16, layers=2, head_hidden=32),
                                     "uncond_rnn": ModelConfig(cell="rnn", hidden=16, head_hidden=32, num_classes=0)},
                            metrics)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(explorer, client, url, checkpoint folder): no VAE until a test adds one."""
    from gradio_client import Client

    tmp = tmp_path_factory.mktemp("lab")
    ckpts = make_checkpoints(tmp / "checkpoints")
    training = TrainingService(tmp / "runs", enabled=False, disabled_reason="off in tests")
    ex = Explorer(ckpts, tmp / "runs", training=training)
    with serving(ex) as url:
        yield ex, Client(url, verbose=False), url, ckpts


def plot_json(value) -> dict:
    return json.loads(value["plot"])


def value_of(out):
    """An output's value (a component update arrives as a dict)."""
    return out["value"] if isinstance(out, dict) and "__type__" in out else out


def steps_in(html_text: str) -> set[str]:
    return set(re.findall(r'data-step="(\d+)"', html_text))


def session_view(ex, name):
    """The (one) session view called ``name`` holding traces: the tests' client is the only visitor."""
    found = [s.views[name] for s in ex.sessions._data.values() if name in s.views and s.views[name].traces]
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


def test_difference_views():
    model = tiny(ModelConfig(hidden=16, head_hidden=32)).eval()
    cmp = intervene(model, [RowEdit(4, (1,) * 28)], y=3, seed=1)
    rgb = intervene_tab.diff_rgb(cmp.original.image, cmp.intervened.image)
    added = (cmp.image_diff > 0)
    assert (rgb[added] == intervene_tab.DIFF_ADDED).all() and (rgb[cmp.image_diff < 0] == intervene_tab.DIFF_REMOVED).all()
    a, b = intervene_tab.diff_html(cmp, 4), intervene_tab.diff_html(cmp, 20)
    assert 'data-step="4"' in a and 'data-step="20"' in b and a != b
    assert "first changed row 4" in a and "\u0394c" in a and "\u0394h" in a
    fig = intervene_tab.intervention_figure(cmp, step=6)
    names = [d["name"] for d in fig["data"]]
    assert names[0].startswith("mean |\u0394h|") and names[1].startswith("mean |\u0394c|")
    assert [s["x0"] for s in fig["layout"]["shapes"] if s.get("name") == "cursor"] == [6, 6]
    assert intervene_tab.intervened_steps(cmp.changes, 28) == [4]


# ---- Compare cells ------------------------------------------------------------------------------
def compare(client, keys=None, digit="7", temperature=1.0, seed=0):
    return client.predict(keys if keys is not None else [], digit, temperature, seed, api_name="/compare")


def test_lab_listeners_have_api_names(served):
    client = served[1]
    names = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    for needed in ("/compare", "/compare_step", "/compare_play", "/compare_pause", "/compare_tick",
                   "/compare_models", "/intervene", "/intervene_step", "/intervene_play", "/intervene_tick",
                   "/intervene_pause", "/intervene_kind", "/intervene_presets", "/reconstruct", "/sample_prior",
                   "/rec_step", "/rec_play", "/rec_tick", "/rec_layer", "/rec_models", "/rec_preview",
                   "/generate", "/gen_step", "/complete"):  # the old ones are still there
        assert needed in names, needed


def test_compare_returns_three_columns(served):
    _, client, _, _ = served
    note, c0, c1, c2, fig, step = compare(client)  # no models chosen: the shipped LSTM, GRU and RNN
    assert "3 models" in note and "digit **7**" in note and step == 0
    for col, name, cell in ((c0, "mnist_lstm", "LSTM"), (c1, "mnist_gru", "GRU"), (c2, "mnist_rnn", "RNN")):
        assert name in col and f"{cell} 1\u00d732" in col and "test NLL <b>543.20</b>" in col
        assert "exact marginal over classes" in col and "this sample" in col
        assert steps_in(col) == {"0"}
    assert c0.count('<figure class="rv-gate"') == 3  # f, c, h
    assert c1.count('<figure class="rv-gate"') == 2 and c2.count('<figure class="rv-gate"') == 1  # z, h / h
    fig = plot_json(fig)
    assert [d["name"].split(" ")[0] for d in fig["data"]] == ["mnist_lstm", "mnist_gru", "mnist_rnn"]
    assert all(len(d["y"]) == 28 for d in fig["data"])
    assert [s["x0"] for s in fig["layout"]["shapes"] if s["name"] == "cursor"] == [0]


def test_compare_same_seed_same_digit_across_models(served):
    ex, client, _, _ = served
    compare(client, ["shipped/mnist_lstm", "shipped/mnist_gru"], digit="any", seed=3)
    v = session_view(ex, "compare")
    assert len(v.traces) == 2 and v.traces[0].label == v.traces[1].label  # the class comes from the seed
    assert [t.cell for t in v.traces] == ["lstm", "gru"]


def test_compare_scrub_drives_every_column(served):
    _, client, _, _ = served
    first = compare(client, seed=2)[1:4]
    frames = {t: client.predict(t, api_name="/compare_step") for t in (5, 27)}
    for t, cols in frames.items():
        assert len(cols) == 3
        assert all(steps_in(c) == {str(t)} for c in cols)
        assert sum(len(c) for c in cols) < MAX_STEP_BYTES
    assert all(a != b for a, b in zip(first, frames[5]))
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="outside the allowed range"):
        client.predict(28, api_name="/compare_step")
    step, *cols, timer = client.predict(27, api_name="/compare_play")  # at the end: restarts
    assert step == 0 and steps_in(cols[0]) == {"0"}
    step, *cols, timer = client.predict(3, api_name="/compare_tick")
    assert step == 4 and all(steps_in(c) == {"4"} for c in cols)
    client.predict(api_name="/compare_pause")


def test_compare_skips_unconditional_models_when_a_digit_is_asked(served):
    from gradio_client.exceptions import AppError

    _, client, _, _ = served
    keys = ["shipped/mnist_lstm", "shipped/uncond_rnn", "shipped/mnist_gru"]
    note, c0, c1, c2, fig, _ = compare(client, keys, digit="4")
    assert "2 models" in note and "uncond_rnn is not class-conditional" in note
    assert "mnist_lstm" in c0 and "mnist_gru" in c1 and c2 == ""
    assert len(plot_json(fig)["data"]) == 2
    note, *cols, fig, _ = compare(client, keys, digit="any")
    assert "3 models" in note and "uncond_rnn" in cols[1]
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


def test_scrub_before_running_says_what_to_do(served):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    fresh = Client(served[2], verbose=False)
    with pytest.raises(AppError, match="press Compare"):
        fresh.predict(3, api_name="/compare_step")
    with pytest.raises(AppError, match="press Run"):
        fresh.predict(3, api_name="/intervene_step")
    with pytest.raises(AppError, match="press Reconstruct"):
        fresh.predict(3, api_name="/rec_step")


# ---- Intervene ----------------------------------------------------------------------------------
def run_intervention(client, kind=F0, first=10, last=27, units="all", value=0.5, layer=-1, digit="7",
                     key="shipped/mnist_lstm", seed=0):
    return client.predict(key, kind, first, last, units, value, layer, digit, 1.0, seed, api_name="/intervene")


def test_forget_gate_shut_changes_c_as_expected(served):
    ex, client, _, _ = served
    summary, without, with_, diff, fig, step = run_intervention(client, F0, 10, 27)
    assert "forget everything (f = 0) at steps 10-27, all units" in summary and step == 0
    assert "NLL without" in summary and "with the intervention" in with_ and "difference" in diff
    cmp = session_view(ex, "intervene").comparison
    o, w = cmp.original.layers[0], cmp.intervened.layers[0]
    np.testing.assert_array_equal(o["c"][:10], w["c"][:10])  # identical before the intervention
    assert (w["f"][10:] == 0).all()
    np.testing.assert_allclose(w["c"][10:], w["i"][10:] * w["g"][10:], atol=1e-6)  # c = i * g
    fig = plot_json(fig)
    dc = next(d for d in fig["data"] if d["name"].startswith("mean |\u0394c|"))["y"]
    assert max(dc[:10]) == 0 and min(dc[10:]) > 0
    cols = client.predict(12, api_name="/intervene_step")
    assert len(cols) == 3 and all(steps_in(c) == {"12"} for c in cols)
    assert sum(len(c) for c in cols) < MAX_STEP_BYTES


def test_row_edit_changes_the_image(served):
    ex, client, _, _ = served
    summary, without, with_, diff, fig, _ = run_intervention(client, INK, 6, 6, seed=1)
    cmp = session_view(ex, "intervene").comparison
    assert cmp.intervened.image[6].all() and (cmp.original.image[:6] == cmp.intervened.image[:6]).all()
    assert cmp.first_changed_row == 6 and "row 6" in summary and "first changed row 6" in diff
    assert (cmp.image_diff[6] >= 0).all() and (cmp.image_diff > 0).sum() > 0
    summary, *_ = run_intervention(client, ERASE, 12, 14, seed=1)
    cmp = session_view(ex, "intervene").comparison
    assert not cmp.intervened.image[12:15].any() and "erase rows at steps 12-14" in summary


def test_clamp_some_units_of_one_layer(served):
    ex, client, _, _ = served
    summary, *_ = run_intervention(client, H_VALUE, 3, 5, units="1, 4-6", value=0.25, layer=-2,
                                   key="shipped/deep_lstm")
    assert "h = 0.25" in summary and "4 units (1, 4-6), layer 1 of 2" in summary
    w = session_view(ex, "intervene").comparison.intervened
    assert (w.layers[0]["h"][3:6, [1, 4, 5, 6]] == 0.25).all()
    assert not (w.layers[0]["h"][3:6, [0, 2, 3]] == 0.25).all()


def test_intervene_bad_inputs_are_explained(served):
    from gradio_client.exceptions import AppError

    _, client, _, _ = served
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
    _, client, _, _ = served
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

    ex, client, _, ckpts = served
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
    summary, source, canvas, gates, fig, step, layer = client.predict(
        key, "test digit", 5, None, 1.0, 0, True, api_name="/reconstruct")
    assert "encoded test digit #5" in summary and "pixels differ from the source" in summary
    assert Image.open(source).size == (28 * 8, 28 * 8)
    assert steps_in(canvas) == {"0"} and gates.count('<figure class="rv-gate"') == 6
    canvas9, _ = client.predict(9, api_name="/rec_step")
    assert steps_in(canvas9) == {"9"}
    rec = next(s.views["rec"].trace for s in ex.sessions._data.values()
               if "rec" in s.views and s.views["rec"].trace is not None)
    assert rec.meta["kind"] == "reconstruction" and rec.latent.shape == (8,)
    prior = client.predict(key, 1.0, 3, api_name="/sample_prior")
    assert "from the prior" in prior[0] and prior[1] is None


def test_reconstruct_a_drawing_and_bad_input(served, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    ex, client, _, ckpts = served
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
