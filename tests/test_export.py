"""Exports (rnnviz.export): trace GIFs, trace .npz files, sample grids and the command line."""

import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from rnnviz import ModelConfig, RowModel, load_checkpoint, sample_traces, trace_images
from rnnviz.cells import STATE_NAMES
from rnnviz.export import load_trace_npz, main, sample_grid_png, save_trace_npz, trace_frames, trace_gif
from rnnviz.trace import reconstruct_traces
from tests import ROOT

H = W = 28


def tiny(cell="lstm", layers=1, num_classes=10, latent=0):
    torch.manual_seed(0)
    return RowModel(ModelConfig(cell=cell, hidden=32, layers=layers, head_hidden=64, num_classes=num_classes,
                                latent=latent)).eval()


@pytest.fixture(scope="module")
def lstm_trace():
    return sample_traces(tiny("lstm"), 1, y=3, seed=0, keep_rows=4, prefix=np.ones((H, W)))[0]


def frames_of(path):
    with Image.open(path) as im:
        out = []
        for k in range(im.n_frames):
            im.seek(k)
            out.append(np.asarray(im.convert("RGB")))
        return out, im.info.get("loop")


# ---- GIF ---------------------------------------------------------------------------------------
def test_gif_has_a_frame_per_row_and_a_held_finished_frame(tmp_path, lstm_trace):
    path = trace_gif(lstm_trace, tmp_path / "t.gif", fps=5)
    frames, loop = frames_of(path)
    rendered = trace_frames(lstm_trace)
    assert len(frames) == len(rendered) == H + 1 and loop == 0
    assert all(f.shape == (rendered[0].height, rendered[0].width, 3) for f in frames)
    assert rendered[0].width > 4 * 224 and rendered[0].height > 2 * 224  # canvas + 6 states, 4 per row
    assert not np.array_equal(frames[0], frames[14]) and not np.array_equal(frames[H - 1], frames[H])
    with Image.open(path) as im:
        im.seek(0)
        assert im.info["duration"] == 200
        im.seek(H)
        assert im.info["duration"] == 2000  # the finished image is held
    # the palette keeps the colours: the canvas's finished rows are pure white/black as drawn
    canvas = frames[H][24 + 10 + 18:24 + 10 + 18 + 224, 10:10 + 224]  # header, pad, label
    rows = canvas[::8, ::8]
    np.testing.assert_array_equal((rows[4:].mean(-1) > 128), lstm_trace.image[4:].astype(bool))


def test_gif_of_selected_gates_and_bad_arguments(tmp_path):
    tr = sample_traces(tiny("gru", layers=2), 1, y=1, seed=2)[0]
    frames, _ = frames_of(trace_gif(tr, tmp_path / "g.gif", names=["z"], layer=0, hold_s=0))
    assert len(frames) == H and frames[0].shape[1] == 2 * (224 + 10) + 10  # the canvas and z only
    with pytest.raises(ValueError, match="has no"):
        trace_gif(tr, tmp_path / "x.gif", names=["f"])
    with pytest.raises(ValueError, match="layer"):
        trace_gif(tr, tmp_path / "x.gif", layer=2)
    with pytest.raises(ValueError, match="fps"):
        trace_gif(tr, tmp_path / "x.gif", fps=0)


# ---- npz ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def traces():
    lstm2 = tiny("lstm", layers=2)
    vae = tiny("gru", num_classes=0, latent=4)
    image = sample_traces(lstm2, 1, y=5, seed=1)[0].image
    return {"lstm sample": sample_traces(lstm2, 1, y=5, temperature=0.7, seed=1)[0],
            "rnn unconditional": sample_traces(tiny("rnn", num_classes=0), 1, seed=-3)[0],
            "read image": trace_images(lstm2, image, y=5)[0],
            "vae reconstruction": reconstruct_traces(vae, image, seed=4)[0]}


@pytest.mark.parametrize("kind", ["lstm sample", "rnn unconditional", "read image", "vae reconstruction"])
def test_npz_round_trips_exactly(tmp_path, traces, kind):
    tr = traces[kind]
    path = save_trace_npz(tr, tmp_path / "trace.out")  # the name is kept as given
    assert path == tmp_path / "trace.out" and path.exists()
    back = load_trace_npz(path)
    for field in ("cell", "label", "temperature", "seed", "keep_rows"):
        assert getattr(back, field) == getattr(tr, field), field
    for field in ("image", "probs", "model_probs", "row_nll"):
        a, b = getattr(tr, field), getattr(back, field)
        assert a.dtype == b.dtype and np.array_equal(a, b), field
    assert len(back.layers) == len(tr.layers)
    for la, lb in zip(tr.layers, back.layers):
        assert set(la) == set(lb) == set(STATE_NAMES[tr.cell])
        for name in la:
            assert la[name].dtype == lb[name].dtype and np.array_equal(la[name], lb[name])
    if tr.latent is None:
        assert back.latent is None
    else:
        assert np.array_equal(back.latent, tr.latent)
    assert set(back.meta) == set(tr.meta)
    for key, v in tr.meta.items():
        assert np.array_equal(back.meta[key], v)

    with np.load(path, allow_pickle=False) as z:  # plain arrays, documented keys
        keys = set(z.files)
        assert all(z[k].dtype != object for k in keys)
    expected = {"format", "version", "cell", "image", "probs", "model_probs", "row_nll", "label", "temperature",
                "seed", "keep_rows", "layers"}
    expected |= {f"layer{k}/{n}" for k in range(len(tr.layers)) for n in STATE_NAMES[tr.cell]}
    expected |= {"latent"} if tr.latent is not None else set()
    expected |= {f"meta/{k}" for k in tr.meta}
    assert keys == expected


def test_bad_npz_files_are_refused(tmp_path, lstm_trace):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not an rnnviz trace"):
        load_trace_npz(tmp_path / "other.npz")
    np.savez(tmp_path / "pickled.npz", format=np.array(["rnnviz-trace", None], dtype=object))
    with pytest.raises(ValueError, match="without pickle"):
        load_trace_npz(tmp_path / "pickled.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip at all")
    with pytest.raises(ValueError):
        load_trace_npz(tmp_path / "junk.npz")
    path = save_trace_npz(lstm_trace, tmp_path / "t.npz")
    with zipfile.ZipFile(path) as zin, zipfile.ZipFile(tmp_path / "cut.npz", "w") as zout:
        for item in zin.infolist():
            if item.filename != "layer0/h.npy":
                zout.writestr(item, zin.read(item.filename))
    with pytest.raises(ValueError, match="layer0/h"):
        load_trace_npz(tmp_path / "cut.npz")


# ---- PNG grid ----------------------------------------------------------------------------------
@pytest.mark.parametrize("digit,n,rows,cols", [(None, 2, 10, 2), (4, 12, 2, 10)])
def test_sample_grid_png_size(tmp_path, digit, n, rows, cols):
    path = sample_grid_png(tiny(), tmp_path / "g.png", digit=digit, n=n, seed=1, scale=2)
    with Image.open(path) as img:
        assert img.format == "PNG" and img.mode == "L"
        assert img.size == ((cols * (W + 2) + 2) * 2, (rows * (H + 2) + 2) * 2)
    with pytest.raises(ValueError, match="unconditional"):
        sample_grid_png(tiny(num_classes=0), tmp_path / "u.png", digit=3)


# ---- command line ------------------------------------------------------------------------------
def test_cli_end_to_end(tmp_path, tiny_checkpoint):
    out = {"gif": tmp_path / "out.gif", "npz": tmp_path / "out.npz", "grid": tmp_path / "grid.png"}
    r = subprocess.run([sys.executable, "-m", "rnnviz.export", "--checkpoint", str(tiny_checkpoint), "--digit", "3",
                        "--seed", "0", "--gif", str(out["gif"]), "--npz", str(out["npz"]), "--grid", str(out["grid"]),
                        "--grid-n", "2", "--names", "i,f,o"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert all(p.exists() for p in out.values()) and "wrote" in r.stdout
    tr = load_trace_npz(out["npz"])
    expect = sample_traces(load_checkpoint(tiny_checkpoint), 1, y=3, seed=0)[0]
    assert tr.label == 3 and tr.seed == 0 and np.array_equal(tr.image, expect.image)
    frames, _ = frames_of(out["gif"])
    assert len(frames) == H + 1 and frames[0].shape[1] == 4 * (224 + 10) + 10  # canvas + i, f, o
    with Image.open(out["grid"]) as img:
        assert img.size == ((2 * (W + 2) + 2) * 4, (1 * (H + 2) + 2) * 4)  # one row of two 3s


def test_cli_errors_are_clear(tmp_path, tiny_checkpoint, capsys):
    ck = str(tiny_checkpoint)
    cases = [([], "nothing to write"),
             (["--gif", str(tmp_path / "missing" / "a.gif")], "does not exist"),
             (["--npz", str(tmp_path)], "is a folder"),
             (["--grid", str(tmp_path / "g.png"), "--digit", "11"], "--digit must be in [0, 9]"),
             (["--gif", str(tmp_path / "a.gif"), "--names", "i,q"], "has no"),
             (["--gif", str(tmp_path / "a.gif"), "--fps", "0"], "fps")]
    for args, message in cases:
        with pytest.raises(SystemExit) as e:
            main(["--checkpoint", ck, *args])
        assert message in str(e.value), (args, e.value)
    (tmp_path / "bad.safetensors").write_bytes(b"")
    with pytest.raises(SystemExit) as e:
        main(["--checkpoint", str(tmp_path / "bad.safetensors"), "--grid", str(tmp_path / "g.png")])
    assert "empty" in str(e.value)
    assert not (tmp_path / "a.gif").exists() and not (tmp_path / "g.png").exists()
