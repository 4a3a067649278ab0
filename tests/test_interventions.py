"""Interventions change exactly what they say, where they say, and nothing before it."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rnnviz import ModelConfig, RowModel, cells, sample_traces, trace_images
from rnnviz.interventions import PRESETS, Intervention, RowEdit, intervene, presets_for, schedule

NAMES = cells.STATE_NAMES


def make_model(cell="lstm", layers=1, **kw) -> RowModel:
    torch.manual_seed(0)
    return RowModel(ModelConfig(cell=cell, hidden=32, layers=layers, head_hidden=64, **kw)).eval()


@pytest.fixture(scope="module")
def lstm():
    return make_model("lstm", layers=2)


def assert_same_run(a, b, upto=None):
    """Two traces agree bit for bit on rows and states before step ``upto`` (None: everywhere)."""
    s = slice(None, upto)
    np.testing.assert_array_equal(a.image[s], b.image[s])
    np.testing.assert_array_equal(a.probs[s], b.probs[s])
    for la, lb in zip(a.layers, b.layers):
        for name in la:
            np.testing.assert_array_equal(la[name][s], lb[name][s], err_msg=name)


def test_no_clamp_is_the_plain_lstm_step():
    """clamp=None computes PyTorch's LSTM equations exactly as before (bit for bit)."""
    torch.manual_seed(3)
    x, h, c = torch.randn(2, 5), torch.randn(2, 4), torch.randn(2, 4)
    w = (torch.randn(16, 5), torch.randn(16, 4), torch.randn(16), torch.randn(16))
    i, f, g, o = (F.linear(x, w[0], w[2]) + F.linear(h, w[1], w[3])).chunk(4, dim=-1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c_new = f * c + i * g
    out = cells.lstm_step(x, h, c, *w)
    for name, ref in {"i": i, "f": f, "g": g, "o": o, "c": c_new, "h": o * torch.tanh(c_new)}.items():
        assert torch.equal(out[name], ref), name
    # a clamp that selects no unit changes nothing either
    none = cells.lstm_step(x, h, c, *w, clamp={"f": (torch.zeros(4, dtype=torch.bool), 0.0)})
    assert all(torch.equal(out[k], none[k]) for k in out)


def test_no_changes_reproduce_the_plain_sample_bit_for_bit(lstm):
    comp = intervene(lstm, [], y=3, seed=1)
    (plain,) = sample_traces(lstm, 1, y=3, seed=1)
    assert_same_run(comp.original, plain)
    assert_same_run(comp.intervened, comp.original)
    np.testing.assert_array_equal(comp.intervened.row_nll, comp.original.row_nll)
    assert comp.first_step is None and comp.first_changed_row is None
    assert not comp.image_diff.any() and not comp.step_change("c").any()


def test_rewriting_a_row_with_itself_changes_nothing(lstm):
    original = intervene(lstm, [], y=4, seed=2).original
    comp = intervene(lstm, RowEdit(9, original.image[9]), y=4, seed=2)
    np.testing.assert_array_equal(comp.intervened.image, original.image)
    for name in NAMES["lstm"]:
        np.testing.assert_array_equal(comp.intervened.state(name, 0), original.state(name, 0))


def test_forget_everything_from_a_step_on(lstm):
    """Identical before the step; from it on f = 0, so c = i * g exactly, and the run diverges."""
    comp = intervene(lstm, PRESETS["forget everything (f = 0)"].make(start=10, layer=0), y=7, seed=5)
    o, v = comp.original, comp.intervened
    assert comp.first_step == 10
    assert_same_run(o, v, upto=10)
    f, i, g, c = (v.state(n, 0) for n in "figc")
    assert (f[10:] == 0).all() and (f[:10] > 0).all()
    np.testing.assert_array_equal(c[10:], i[10:] * g[10:])
    assert (comp.step_change("c", 0)[10:] > 0).all()
    assert comp.step_change("h", 1)[10] > 0  # the layer above reads the changed h
    assert (np.abs(v.probs - o.probs)[10:].max(axis=1) > 0).all()  # every later row is drawn differently
    assert comp.first_changed_row is None or comp.first_changed_row >= 10  # an untrained head barely cares
    np.testing.assert_array_equal(comp.state_diff("c", 0), v.state("c", 0) - o.state("c", 0))
    assert v.meta["kind"] == "intervention" and "f = 0 from step 10 on" in v.meta["interventions"][0]


def test_f_at_one_step_only(lstm):
    comp = intervene(lstm, Intervention("f", 0.0, start=7, stop=8, layer=0), y=1, seed=0)
    f, i, g, c = (comp.intervened.state(n, 0) for n in "figc")
    np.testing.assert_array_equal(c[7], i[7] * g[7])
    assert (f[7] == 0).all() and (f[8] > 0).all()
    assert not np.array_equal(c[8], i[8] * g[8])


def test_freeze_memory_keeps_the_cell_state(lstm):
    comp = intervene(lstm, PRESETS["freeze memory (f = 1, i = 0)"].make(5, 10, layer=0), y=2, seed=3)
    c = comp.intervened.state("c", 0)
    for t in range(5, 10):
        np.testing.assert_array_equal(c[t], c[t - 1])
    assert not np.array_equal(c[10], c[9])
    assert not np.array_equal(comp.intervened.state("c", 1)[6], comp.intervened.state("c", 1)[5])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_zeroing_and_fixing_units(cell):
    model = make_model(cell)
    units = (1, 4, 9)
    comp = intervene(model, PRESETS["zero hidden units (h = 0)"].make(3, units=units), y=0, seed=4)
    h = comp.intervened.state("h")
    assert (h[3:, list(units)] == 0).all()
    assert (h[:3, list(units)] != 0).all() and (h[3:, 0] != 0).all()
    fix = PRESETS["fix hidden units (h = value)"].make(0, 6, units=(2,), value=-0.25)
    fixed = intervene(model, fix, y=0, seed=4)
    h = fixed.intervened.state("h")
    assert (h[:6, 2] == -0.25).all() and (h[6:, 2] != -0.25).all()


def test_gru_update_gate_keeps_the_state():
    model = make_model("gru")
    comp = intervene(model, PRESETS["keep old state (z = 1)"].make(8, 12), y=6, seed=1)
    h = comp.intervened.state("h")
    for t in range(8, 12):
        np.testing.assert_array_equal(h[t], h[t - 1])
    assert_same_run(comp.original, comp.intervened, upto=8)
    overwrite = intervene(model, PRESETS["overwrite state (z = 0)"].make(8), y=6, seed=1).intervened
    np.testing.assert_array_equal(overwrite.state("h")[8:], overwrite.state("n")[8:])


def test_row_edit_shows_up_and_changes_later_states(lstm):
    original = intervene(lstm, [], y=8, seed=6).original
    edited = 1 - original.image[12]
    comp = intervene(lstm, RowEdit(12, edited), y=8, seed=6)
    v = comp.intervened
    np.testing.assert_array_equal(v.image[12], edited)
    assert comp.first_step == 12 and comp.first_changed_row == 12
    np.testing.assert_array_equal(comp.image_diff[12], edited.astype(int) - original.image[12])
    np.testing.assert_array_equal(comp.image_diff != 0, v.image != original.image)
    assert_same_run(comp.original, v, upto=12)
    for name in NAMES["lstm"]:  # step 12 reads row 11: its state is unchanged
        np.testing.assert_array_equal(v.state(name, 1)[12], comp.original.state(name, 1)[12])
    assert comp.step_change("h", 0)[13] > 0  # step 13 reads the edited row
    # the edited row is scored by the model that read it, like a kept prefix row
    np.testing.assert_allclose(v.probs[12], v.model_probs[12], atol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_intervened_trace_is_what_made_its_image(cell):
    """Reading the intervened image back with the same clamps (teacher forcing) gives its states
    and the probabilities its pixels were drawn with; without the clamps it does not."""
    model = make_model(cell, layers=2)
    gate = {"lstm": "f", "gru": "z", "rnn": "h"}[cell]
    changes = [Intervention(gate, 0.0, 8, 15, layer=0), Intervention("h", 0.5, 12, units=(0, 3)),
               RowEdit(10, [1] * 28)]
    comp = intervene(model, changes, y=5, seed=7)
    v = comp.intervened
    clamps, _ = schedule(model, changes)
    (read,) = trace_images(model, v.image, y=v.label, clamps=clamps)
    for k in range(2):
        for name in NAMES[cell]:
            np.testing.assert_allclose(read.layers[k][name], v.layers[k][name], atol=1e-6, err_msg=name)
    np.testing.assert_allclose(read.probs, v.probs, atol=1e-6)
    np.testing.assert_allclose(read.row_nll, v.row_nll, atol=1e-4)
    (unclamped,) = trace_images(model, v.image, y=v.label)
    assert np.abs(unclamped.layers[1]["h"] - v.layers[1]["h"]).max() > 1e-3


def test_vae_interventions_keep_z():
    model = make_model("lstm", num_classes=0, latent=8)
    z = torch.randn(8, generator=torch.Generator().manual_seed(0))
    comp = intervene(model, Intervention("f", 0.0, start=10), z=z, seed=2)
    for t in (comp.original, comp.intervened):
        np.testing.assert_array_equal(t.latent, z.numpy())
        assert t.label is None
    assert_same_run(comp.original, comp.intervened, upto=10)
    v = comp.intervened
    np.testing.assert_array_equal(v.state("c")[10:], v.state("i")[10:] * v.state("g")[10:])
    prior = intervene(model, Intervention("h", 0.0, start=20), seed=2)  # z from the prior: the same in both
    np.testing.assert_array_equal(prior.original.latent, prior.intervened.latent)
    assert_same_run(prior.original, prior.intervened, upto=20)


def test_keep_rows_prefix_and_temperature_pass_through(lstm):
    prefix = (torch.rand(28, 28, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    comp = intervene(lstm, Intervention("i", 0.0, start=2, layer=0), y=3, seed=9, prefix=prefix,
                     keep_rows=6, temperature=0.8)
    for t in (comp.original, comp.intervened):
        np.testing.assert_array_equal(t.image[:6], prefix[:6].numpy())
        assert t.keep_rows == 6 and t.temperature == 0.8
    assert (comp.intervened.state("i", 0)[2:] == 0).all()


@pytest.mark.parametrize("make, message", [
    (lambda: Intervention("x", 0.0), "unknown gate or state 'x'"),
    (lambda: Intervention("f", 1.5), "f lies in [0, 1]"),
    (lambda: Intervention("h", -2), "h lies in [-1, 1]"),
    (lambda: Intervention("f", float("nan")), "finite"),
    (lambda: Intervention("f", True), "finite number"),
    (lambda: Intervention("f", 0.0, start=-1), "start must be an integer >= 0"),
    (lambda: Intervention("f", 0.0, start=5, stop=5), "stop must be None or an integer > start"),
    (lambda: Intervention("h", 0.0, units=()), "units is empty"),
    (lambda: Intervention("h", 0.0, units=(2, -1)), "units must be integers >= 0"),
    (lambda: Intervention("h", 0.0, layer=0.5), "layer must be an integer"),
    (lambda: RowEdit(3, [0, 2, 1]), "0 or 1"),
    (lambda: RowEdit(-1, [0, 1]), "step must be an integer >= 0"),
    (lambda: PRESETS["fix hidden units (h = value)"].make(3), "needs a value"),
    (lambda: PRESETS["never forget (f = 1)"].make(3, value=0.5), "fixed"),
])
def test_invalid_specs_say_what_is_wrong(make, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("(", r"\(")):
        make()


@pytest.mark.parametrize("changes, message", [
    (Intervention("r", 0.0), "a lstm cell has no 'r'"),
    (Intervention("f", 0.0, start=28), r"steps must lie in \[0, 27\]"),
    (Intervention("f", 0.0, start=20, stop=29), r"steps must lie in \[0, 27\]"),
    (Intervention("h", 0.0, units=(3, 32)), r"units must lie in \[0, 31\], got 32"),
    (Intervention("f", 0.0, layer=2), r"layer must lie in \[-2, 1\]"),
    (RowEdit(0, [0] * 27), "row must have 28 pixels, got 27"),
    (RowEdit(28, [0] * 28), r"step must lie in \[0, 27\]"),
    ([Intervention("h", 0.0, units=(1,)), Intervention("h", 0.5, 0, 3, units=(1, 2))],
     "set h of unit 1 of layer 1 at step 0 to different values"),
    ([RowEdit(4, [0] * 28), RowEdit(4, [1] * 28)], "row 4 is edited twice"),
])
def test_changes_that_do_not_fit_the_model(lstm, changes, message):
    with pytest.raises(ValueError, match=message):
        intervene(lstm, changes, y=0)


def test_overlapping_interventions_that_agree_combine(lstm):
    clamps, _ = schedule(lstm, [Intervention("h", 0.3, 0, 2, units=(1,)),
                                Intervention("h", 0.3, 1, 3, units=(1, 2)),
                                Intervention("h", -0.5, 2, 3, units=(5,))])
    assert sorted(clamps) == [0, 1, 2] and list(clamps[2]) == [1]  # layer -1 is layer 1
    mask, values = clamps[2][1]["h"]
    assert mask.nonzero().flatten().tolist() == [1, 2, 5]
    assert values[5] == -0.5 and values[1] == values[2] == torch.tensor(0.3)


def test_low_level_clamp_errors():
    model = make_model("gru", layers=2)
    x = torch.zeros(1, model.config.input_size)
    state = cells.initial_state(model.rnn, 1)
    with pytest.raises(ValueError, match="cannot clamp 'c'.*gru cell computes r, z, n, h"):
        cells.step(model.rnn, x, state, clamp={0: {"c": (torch.tensor([0]), 0.0)}})
    with pytest.raises(ValueError, match="cannot clamp layer 2"):
        cells.step(model.rnn, x, state, clamp={2: {"h": (torch.tensor([0]), 0.0)}})
    with pytest.raises(ValueError, match="clamped twice"):
        cells.step(model.rnn, x, state, clamp={1: {}, -1: {}})
    with pytest.raises(ValueError, match="intervened steps must be in"):
        model.sample(y=0, edit_rows={28: torch.zeros(28)})
    # unit indices work like a mask, and a negative layer counts from the top
    out = cells.step(model.rnn, x, state, clamp={-1: {"h": (torch.tensor([2, 5]), 0.75)}})
    assert (out[1]["h"][0, [2, 5]] == 0.75).all() and not (out[0]["h"] == 0.75).any()


def test_presets_fit_their_cells():
    assert set(presets_for("rnn")) == {"zero hidden units (h = 0)", "fix hidden units (h = value)"}
    for cell in ("lstm", "gru", "rnn"):
        model = make_model(cell)
        for label, preset in presets_for(cell).items():
            value = 0.3 if any(v is None for _, v in preset.clamps) else None
            schedule(model, preset.make(4, units=(0,), value=value))  # raises if it does not fit
        other = [p for p in PRESETS.values() if cell not in p.cells]
        for preset in other:
            with pytest.raises(ValueError, match=f"a {cell} cell has no"):
                schedule(model, preset.make(4))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_every_preset_holds_its_gate_at_its_value_on_the_intervened_steps(cell):
    """Each preset, on each cell it applies to, read from the intervened run's trace: the gate or state
    it names holds the preset's value on every intervened step (of the chosen units and layer) and not
    on the step before, over an open range (start on) and a closed one (start..stop-1)."""
    model = make_model(cell, layers=2)
    value = 0.375  # for a preset whose value is chosen (h = value)
    assert presets_for(cell)
    for label, preset in presets_for(cell).items():
        needs = None if all(v is not None for _, v in preset.clamps) else value
        for start, stop, units, layer in ((6, None, None, -1), (9, 17, (1, 4, 30), 0)):
            comp = intervene(model, preset.make(start, stop, units=units, layer=layer, value=needs), y=4, seed=2)
            steps = range(start, stop or model.config.height)
            chosen = list(units) if units is not None else slice(None)
            for name, v in preset.clamps:
                held = comp.intervened.state(name, layer)[:, chosen]
                want = value if v is None else v
                for t in steps:
                    assert (held[t] == want).all(), f"{label}: {name} at step {t} is not {want}"
                assert not (held[start - 1] == want).all(), f"{label}: {name} already {want} before step {start}"
                if stop is not None:
                    assert not (held[stop] == want).all(), f"{label}: {name} still {want} after step {stop - 1}"
