"""The static page's JavaScript math (rnnviz/site/static/model.js, random.js) against Python, under Node.

Given the same random numbers the JavaScript must draw the same image as ``RowModel.sample`` and
compute every gate and state within 1e-5 of ``rnnviz.sample_traces``, for the shipped LSTM, GRU and
RNN and a 2-layer model; and its generator must reproduce ``torch.rand`` / ``torch.randint`` of
``torch.Generator().manual_seed(seed)`` exactly, so the same seed gives the same image end to end.
"""

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from rnnviz import ModelConfig, RowModel, load_checkpoint, sample_traces, save_checkpoint
from rnnviz.rules import as_json
from rnnviz.site import STATIC, export_site
from tests import ROOT, node_path

NODE = node_path()  # skips this module without node (an error when RNNVIZ_REQUIRE_NODE or CI is set)

SHIPPED = {c: ROOT / "checkpoints" / f"mnist_{c}.safetensors" for c in ("lstm", "gru", "rnn")}
TOL = 1e-5

# Reads a JSON job from argv[2]: the model (manifest entry + .bin) and cases; prints JSON results.
DRIVER = """
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const [staticDir, jobPath] = process.argv.slice(2);
const { loadModel, sample, sampleSeeded, classPosterior, choosePart, whichOrder } = await import(pathToFileURL(staticDir + '/model.js'));
const { MT19937, rand, randint } = await import(pathToFileURL(staticDir + '/random.js'));
const { useRules } = await import(pathToFileURL(staticDir + '/rules.js'));
const job = JSON.parse(readFileSync(jobPath, 'utf8'));
if (job.rules) useRules(job.rules);  // what the page loads from rules.json (the scan orders' table)
const out = [];
const load = (entry, path) => { const b = readFileSync(path); return loadModel(entry, b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)); };
if (job.mixture) {  // a site's mixture entry: the part each seed draws, and "which order?" of images
  const parts = job.mixture.parts.map((e) => load(e, job.site + '/' + e.file));
  out.push({ parts: job.seeds.map((s) => choosePart(parts.length, s)),
    orders: job.images.map((img) => { const r = whichOrder(parts, Uint8Array.from(img));
      return { nll: r.nll, parts: r.parts.map((q) => ({ name: q.name, order: q.order, nll: q.nll, posterior: q.posterior, line_nll: Array.from(q.lineNll) })) }; }) });
} else if (job.random) {
  for (const r of job.random) {
    const g = new MT19937(r.seed);
    out.push({ labels: r.labels ? Array.from(randint(g, r.high, r.labels)) : null, u: Array.from(rand(g, r.count)) });
  }
} else {
  const buf = readFileSync(job.bin);
  const model = loadModel(job.entry, buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
  for (const c of job.cases) {
    const prefix = c.prefix ? Uint8Array.from(c.prefix) : null;
    const opts = { n: c.n, temperature: c.temperature, prefix, keepRows: c.keep };
    const traces = c.seeded
      ? sampleSeeded(model, { ...opts, digit: c.digit, seed: c.seed })
      : sample(model, { ...opts, labels: c.labels, uniforms: Float32Array.from(c.uniforms) });
    const arrays = (l) => Object.fromEntries(Object.entries(l).map(([k, v]) => [k, Array.from(v)]));
    const res = traces.map((t) => ({ image: Array.from(t.image), label: t.label, probs: Array.from(t.probs),
      row_nll: Array.from(t.rowNll), layers: t.layers.map(arrays) }));
    const post = c.posterior ? classPosterior(model, prefix, c.keep) : null;
    out.push({ traces: res, posterior: post });
  }
}
process.stdout.write(JSON.stringify(out));
"""


def run_node(tmp_path: Path, job: dict, rules: bool = True) -> list:
    driver = tmp_path / "driver.mjs"
    driver.write_text(DRIVER)
    job_path = tmp_path / "job.json"
    job_path.write_text(json.dumps({**job, "rules": as_json()} if rules else job))
    r = subprocess.run([NODE, str(driver), str(STATIC), str(job_path)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def two_layer(tmp_path_factory) -> Path:
    """A random 2-layer GRU and LSTM would both do; a 2-layer LSTM has the most states to check."""
    torch.manual_seed(3)
    folder = tmp_path_factory.mktemp("two_layer")
    model = RowModel(ModelConfig(cell="lstm", hidden=24, layers=2, head_hidden=56)).eval()
    with torch.no_grad():  # trained-looking magnitudes: saturate some gates, move c past the tanh range
        for p in model.parameters():
            p.mul_(3.0)
    return save_checkpoint(folder / "two_layer.safetensors", model, {"test_nll": 500.0})


def exported(tmp_path: Path, ckpt: Path) -> tuple[dict, Path]:
    manifest = export_site([ckpt], tmp_path / "site")
    entry = manifest["models"][0]
    return entry, tmp_path / "site" / entry["file"]


def compare(py, js: dict, cell: str) -> dict:
    """Assert the JS trace equals the Python one; return the largest state differences."""
    H, W = py.image.shape
    assert np.array_equal(np.array(js["image"], np.uint8).reshape(H, W), py.image), "images differ"
    assert js["label"] == py.label
    np.testing.assert_allclose(np.array(js["probs"]).reshape(H, W), py.probs, atol=TOL)
    np.testing.assert_allclose(js["row_nll"], py.row_nll, atol=1e-3, rtol=1e-5)
    worst = {}
    assert len(js["layers"]) == len(py.layers)
    for k, (jl, pl) in enumerate(zip(js["layers"], py.layers)):
        assert sorted(jl) == sorted(pl)
        for name, v in pl.items():
            d = float(np.max(np.abs(np.array(jl[name], np.float32).reshape(v.shape) - v)))
            assert d <= TOL, f"{cell} layer {k} {name}: max |JS - Python| = {d:.2e}"
            worst[f"{k}.{name}"] = d
    return worst


def model_and_export(tmp_path, two_layer, cell: str):
    """(model, manifest entry, weights file) of a shipped cell or the 2-layer test model."""
    ckpt = two_layer if cell == "two_layer" else SHIPPED[cell]
    if not ckpt.exists():
        pytest.skip(f"{ckpt} is not shipped here")
    return (load_checkpoint(ckpt), *exported(tmp_path, ckpt))


CASES = [(7, 1.0, 0), (3, 0.0, 5), (None, 1.0, 11), (0, 0.7, 2**31 - 1), (9, 1.5, 42)]


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "two_layer"])
def test_same_uniforms_same_image_and_states(tmp_path, two_layer, cell):
    model, entry, bin_path = model_and_export(tmp_path, two_layer, cell)
    cases, expected = [], []
    for digit, temperature, seed in CASES:
        traces = sample_traces(model, n=2, y=digit, temperature=temperature, seed=seed)
        gen = torch.Generator().manual_seed(seed)
        labels = torch.randint(10, (2,), generator=gen).tolist() if digit is None else digit
        uniforms = torch.rand(2, 28, 28, generator=gen).numpy().ravel().tolist()  # what RowModel.sample used
        assert [t.label for t in traces] == ([digit, digit] if digit is not None else labels)
        cases.append({"n": 2, "labels": labels, "uniforms": uniforms, "temperature": temperature, "keep": 0})
        expected.append(traces)
    out = run_node(tmp_path, {"entry": entry, "bin": str(bin_path), "cases": cases})
    for py_traces, js in zip(expected, out):
        for py, jt in zip(py_traces, js["traces"]):
            compare(py, jt, cell)


@pytest.mark.parametrize("cell", ["lstm", "two_layer"])
def test_same_seed_same_image_end_to_end(tmp_path, two_layer, cell):
    """Only the seed crosses over: the JS generator makes the labels and uniforms itself."""
    model, entry, bin_path = model_and_export(tmp_path, two_layer, cell)
    settings = [(7, 1.0, 0), (None, 1.0, 0), (None, 0.8, 2**31 - 1), (2, 1.0, 123456789)]
    cases = [{"seeded": True, "n": 1, "digit": d, "seed": s, "temperature": t, "keep": 0} for d, t, s in settings]
    # a completion as the page makes it: 3 images keeping 14 rows of a prefix, any digit
    prefix = sample_traces(model, n=1, y=4, seed=8)[0].image
    cases.append({"seeded": True, "n": 3, "digit": None, "seed": 6, "temperature": 1.0, "keep": 14,
                  "prefix": prefix.ravel().tolist(), "posterior": True})
    out = run_node(tmp_path, {"entry": entry, "bin": str(bin_path), "cases": cases})
    for (d, t, s), js in zip(settings, out):
        compare(sample_traces(model, n=1, y=d, temperature=t, seed=s)[0], js["traces"][0], cell)
    done = sample_traces(model, n=3, y=None, seed=6, prefix=torch.from_numpy(prefix.astype(np.float32)), keep_rows=14)
    for py, js in zip(done, out[-1]["traces"]):
        assert np.array_equal(py.image[:14], prefix[:14])
        compare(py, js, cell)
    # the digit the page guesses from the kept rows: the app's class posterior
    from rnnviz import trace_images

    tr = trace_images(model, np.repeat(prefix[None].astype(np.float32), 10, 0), y=np.arange(10))
    ll = -np.array([t.row_nll[:14].sum() for t in tr], np.float64)
    post = np.exp(ll - ll.max())
    np.testing.assert_allclose(out[-1]["posterior"], post / post.sum(), atol=1e-4)


def test_generator_reproduces_torch(tmp_path):
    seeds = [0, 1, 2, 7, 42, 999, 12345, 2**16 + 1, 2**24 + 3, 10**9 + 7, 2**31 - 2, 2**31 - 1]
    jobs = [{"seed": s, "high": 10, "labels": 3 if k % 2 else 0, "count": 28 * 28 * (1 + k % 3)}
            for k, s in enumerate(seeds)]
    out = run_node(tmp_path, {"random": jobs})
    for job, js in zip(jobs, out):
        gen = torch.Generator().manual_seed(job["seed"])
        if job["labels"]:
            assert js["labels"] == torch.randint(job["high"], (job["labels"],), generator=gen).tolist(), job
        n = job["count"] // 784
        u = torch.rand(n, 28, 28, generator=gen).numpy().ravel()  # the shape RowModel.sample draws
        assert np.array_equal(np.array(js["u"], np.float32), u), f"torch.rand differs for seed {job['seed']}"


def test_model_js_refuses_a_manifest_that_does_not_fit(tmp_path, two_layer):
    entry, bin_path = exported(tmp_path, two_layer)
    entry["tensors"]["head.pix_to_out"]["shape"] = [27, 28]
    driver = tmp_path / "bad.mjs"
    driver.write_text(DRIVER)
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"entry": entry, "bin": str(bin_path), "cases": []}))
    r = subprocess.run([NODE, str(driver), str(STATIC), str(job)], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "head.pix_to_out must be 28x28" in r.stderr


INPUTS_DRIVER = """
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
const [staticDir, jobPath] = process.argv.slice(2);
const { mnistLike, binarize } = await import(pathToFileURL(staticDir + '/inputs.js'));
const out = JSON.parse(readFileSync(jobPath, 'utf8')).map((j) => {
  try {
    const g = mnistLike(Float32Array.from(j.ink), j.h, j.w);
    return { gray: Array.from(g), bin: Array.from(binarize(g, 0)) };
  } catch (e) { return { error: e.message }; }
});
process.stdout.write(JSON.stringify(out));
"""


def test_drawing_becomes_the_same_mnist_digit_as_in_the_app(tmp_path):
    """inputs.js mirrors rnnviz/app/inputs.py mnist_like (crop, PIL BOX scaling, centre of mass) and
    the app's binarization (torch.rand of seed 0): the same drawing gives the same kept rows."""
    from PIL import Image, ImageDraw

    from rnnviz.app.inputs import InputError, mnist_like
    from rnnviz.data import binarize_fixed

    rng = np.random.default_rng(0)
    inks = []
    for k in range(10):
        im = Image.new("L", (280, 280), 0)
        pts = [tuple(rng.integers(30, 250, 2).tolist()) for _ in range(2 + k % 4)]
        ImageDraw.Draw(im).line(pts, fill=255, width=int(rng.integers(6, 26)), joint="curve")
        inks.append(np.asarray(im.resize((280 - 37 * (k % 3), 280)), np.float32) / 255)  # antialiased, not square
    inks.append(np.zeros((280, 280), np.float32))  # empty
    inks.append(np.ones((280, 280), np.float32))  # filled
    thin = np.zeros((200, 280), np.float32)
    thin[100, 20:260] = 1.0  # a single line: 1 pixel tall after scaling
    inks.append(thin)
    job = tmp_path / "inputs.json"
    job.write_text(json.dumps([{"ink": a.ravel().tolist(), "h": a.shape[0], "w": a.shape[1]} for a in inks]))
    driver = tmp_path / "inputs.mjs"
    driver.write_text(INPUTS_DRIVER)
    r = subprocess.run([NODE, str(driver), str(STATIC), str(job)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    for ink, js in zip(inks, json.loads(r.stdout)):
        try:
            gray = mnist_like(ink)
        except InputError as e:
            assert js.get("error") == str(e)
            continue
        assert np.array_equal(np.array(js["gray"]).reshape(28, 28), gray)
        binary = binarize_fixed(torch.from_numpy(gray[None]), 0)[0].numpy().astype(np.uint8)
        assert np.array_equal(np.array(js["bin"]).reshape(28, 28), binary)


# ---- scan orders ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ordered(tmp_path_factory) -> dict[str, Path]:
    """Random 28x28 models of other scan orders (a column order, a reversed row order, and both)."""
    folder = tmp_path_factory.mktemp("ordered")
    out = {}
    for k, (order, cell, layers) in enumerate([("cols", "lstm", 2), ("rows_bu_rl", "gru", 1),
                                               ("cols_rl_bu", "rnn", 1)]):
        torch.manual_seed(10 + k)
        model = RowModel(ModelConfig(cell=cell, hidden=16, layers=layers, head_hidden=40, order=order)).eval()
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(3.0)
        out[order] = save_checkpoint(folder / f"{order}.safetensors", model, {"test_nll": 500.0})
    return out


@pytest.mark.parametrize("order", ["cols", "rows_bu_rl", "cols_rl_bu"])
def test_other_scan_orders_same_image_and_states(tmp_path, ordered, order):
    """A model of another order writes its lines in that order: the JS trace's image and probs are
    the image as seen, its row NLL and states per step, all equal to Python's; a completion keeps
    the first lines of the order, and the class posterior reads them."""
    model = load_checkpoint(ordered[order])
    assert model.config.order == order
    entry, bin_path = exported(tmp_path, ordered[order])
    assert entry["config"]["order"] == order
    prefix = sample_traces(model, n=1, y=4, seed=8)[0].image
    settings = [(7, 1.0, 0), (None, 0.8, 5), (2, 0.0, 2**31 - 1)]
    cases = [{"seeded": True, "n": 2, "digit": d, "seed": s, "temperature": t, "keep": 0} for d, t, s in settings]
    cases.append({"seeded": True, "n": 2, "digit": None, "seed": 6, "temperature": 1.0, "keep": 9,
                  "prefix": prefix.ravel().tolist(), "posterior": True})
    out = run_node(tmp_path, {"entry": entry, "bin": str(bin_path), "cases": cases})
    for (d, t, s), js in zip(settings, out):
        for py, jt in zip(sample_traces(model, n=2, y=d, temperature=t, seed=s), js["traces"]):
            compare(py, jt, order)
    done = sample_traces(model, n=2, y=None, seed=6, prefix=torch.from_numpy(prefix.astype(np.float32)), keep_rows=9)
    for py, jt in zip(done, out[-1]["traces"]):
        np.testing.assert_array_equal(py.lines(py.image)[:9], py.lines(prefix)[:9])
        compare(py, jt, order)
    ll = model.class_log_likelihoods(torch.from_numpy(prefix.astype(np.float32))[None], rows=9)[0].double()
    np.testing.assert_allclose(out[-1]["posterior"], torch.softmax(ll, 0).numpy(), atol=1e-4)


def test_model_js_reads_its_names_and_orders_from_the_rules(tmp_path, ordered, two_layer):
    """model.js writes no state name or order table of its own: without rules.json it cannot load a model."""
    for folder, model in ((tmp_path / "cols", ordered["cols"]), (tmp_path / "rows", two_layer)):
        entry, bin_path = exported(folder, model)
        driver = folder / "norules.mjs"
        driver.write_text(DRIVER)
        (folder / "job.json").write_text(json.dumps({"entry": entry, "bin": str(bin_path), "cases": []}))
        r = subprocess.run([NODE, str(driver), str(STATIC), str(folder / "job.json")], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode != 0 and "rules are not loaded" in r.stderr


# ---- exact mixtures -------------------------------------------------------------------------------
def test_mixture_part_choice_and_which_order_equal_python(tmp_path, ordered, two_layer):
    """A mixture exported for the page: model.js draws the same part from each seed as
    Mixture.choose_part (its own generator stream, read from the rules), and its "which order?"
    (each part's NLL per line of its own order, class summed out, and the posterior over parts)
    equals Mixture.which_order."""
    from rnnviz.mixture import Mixture, save_mixture

    parts = [load_checkpoint(ordered[o]) for o in ("cols", "rows_bu_rl", "cols_rl_bu")] + [load_checkpoint(two_layer)]
    mixture = Mixture(parts, names=["c", "r", "crb", "two"])
    path = save_mixture(tmp_path / "mix.safetensors", mixture)
    manifest = export_site([path], tmp_path / "site")
    entry = manifest["models"][0]
    assert entry["mixture"] is True and [p["name"] for p in entry["parts"]] == ["c", "r", "crb", "two"]
    assert [p["config"]["order"] for p in entry["parts"]] == ["cols", "rows_bu_rl", "cols_rl_bu", "rows"]
    images = [sample_traces(parts[k], n=1, y=k, seed=k)[0].image for k in range(3)]
    seeds = [0, 1, 2, 7, 99, 12345, 2**31 - 1]
    out = run_node(tmp_path, {"mixture": entry, "site": str(tmp_path / "site"), "seeds": seeds,
                              "images": [im.ravel().tolist() for im in images]})[0]
    assert out["parts"] == [mixture.choose_part(s) for s in seeds]
    assert len(set(out["parts"])) > 1  # the seeds do reach different parts
    for image, js in zip(images, out["orders"]):
        py = mixture.which_order(image)
        assert js["nll"] == pytest.approx(py["nll"], abs=1e-3)
        for jp, pp in zip(js["parts"], py["parts"]):
            assert (jp["name"], jp["order"]) == (pp["name"], pp["order"])
            assert jp["nll"] == pytest.approx(pp["nll"], abs=1e-3)
            assert jp["posterior"] == pytest.approx(pp["posterior"], abs=1e-4)
            np.testing.assert_allclose(jp["line_nll"], pp["line_nll"], atol=1e-3)
