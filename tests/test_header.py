"""What a checkpoint's header must hold (rnnviz.header): the tensors a config needs, the parameter
budget checked before anything is allocated, a CheckpointError naming every malformed field (from
the Python API and from the three CLIs), and a fuzz of mutated headers that raises nothing else (and
never hangs)."""

import json
import random
import re
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import rnnviz.checkpoint as ck
from rnnviz import CheckpointError, ModelConfig, RowModel, save_checkpoint
from rnnviz.checkpoint import (
    APP_LIMITS,
    CLI_LIMITS,
    Limits,
    expected_tensors,
    load_state,
    parameter_count,
    read_metadata,
)
from tests import ROOT

SMALL = ModelConfig(hidden=16, head_hidden=32)
BOMB = ModelConfig(hidden=4096, layers=8, head_hidden=8192, num_classes=1000)  # about 1.06e9 parameters


# ---- the parameter count, from the config alone ---------------------------------------------------
CONFIGS = [ModelConfig(cell=cell, hidden=h, layers=L, num_classes=C, head_hidden=hh, height=H, width=W, latent=z)
           for cell in ("lstm", "gru", "rnn")
           for h, L, C, hh, H, W, z in [(1, 1, 0, 1, 2, 2, 0), (16, 1, 10, 32, 28, 28, 0), (7, 3, 3, 5, 9, 13, 0),
                                        (33, 2, 0, 64, 28, 28, 8), (5, 1, 0, 3, 4, 4, 1), (12, 2, 0, 9, 17, 31, 3),
                                        (20, 4, 1000, 8, 3, 2, 0)]]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"{c.cell}-h{c.hidden}-L{c.layers}-C{c.num_classes}"
                         f"-z{c.latent}-{c.height}x{c.width}")
def test_expected_tensors_are_the_models_state_dict(config):
    model = RowModel(config)
    assert expected_tensors(config) == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    assert parameter_count(config) == model.num_parameters()


# ---- a small file claiming a huge model -------------------------------------------------------------
def raw_file(path: Path, header: dict | str | bytes, data: bytes = b"") -> Path:
    raw = header if isinstance(header, bytes) else (header if isinstance(header, str) else json.dumps(header)).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def meta_of(config: ModelConfig | dict, **extra) -> dict:
    cfg = config if isinstance(config, dict) else config.to_dict()
    return {"format": "rnnviz", "format_version": "1", "config": json.dumps(cfg), "metrics": "{}", **extra}


def bomb_file(path: Path) -> Path:
    return raw_file(path, {"__metadata__": meta_of(BOMB, metrics=json.dumps({"dataset": "mnist"}))})


def test_a_small_file_claiming_a_billion_parameters_builds_nothing(tmp_path, monkeypatch):
    path = bomb_file(tmp_path / "bomb.safetensors")
    assert path.stat().st_size < 300

    def no_model(*a, **k):
        raise AssertionError("the model was built before the header was checked")

    monkeypatch.setattr(ck, "RowModel", no_model)
    with pytest.raises(CheckpointError, match=r"1,058,563,644 parameters .* over the command line's limit"):
        load_state(path)
    with pytest.raises(CheckpointError, match=r"config 'hidden' is 4096, over the explorer's limit of 1024"):
        load_state(path, limits=APP_LIMITS)
    with pytest.raises(CheckpointError, match="parameters"):
        read_metadata(path)


def test_listed_tensors_of_a_huge_model_in_a_small_file_are_refused(tmp_path, monkeypatch):
    """The header may list the tensors the config implies; their byte sizes must still fit the file."""
    monkeypatch.setattr(ck, "RowModel", lambda *a: pytest.fail("model built"))
    cfg = ModelConfig(hidden=4096, layers=1, head_hidden=64)  # within the CLI's parameter budget
    header = {"__metadata__": meta_of(cfg)}
    for name, shape in expected_tensors(cfg).items():
        header[f"model.{name}"] = {"dtype": "F32", "shape": list(shape), "data_offsets": [0, 4]}
    with pytest.raises(CheckpointError, match=r"tensor 'model.rnn.weight_ih_l0': 'data_offsets' span 4 bytes, "
                                              r"its shape \(16384, 66\) of F32 needs 4325376"):
        load_state(raw_file(tmp_path / "listed.safetensors", header, b"\0" * 4))


@pytest.mark.skipif(sys.platform == "win32", reason="resource is POSIX only")
def test_the_bomb_costs_no_memory_and_no_time(tmp_path):
    """Peak RSS of a fresh process barely moves while it refuses the file under both limits, 20 times."""
    path = bomb_file(tmp_path / "bomb.safetensors")
    code = (
        "import json, resource, sys, time\n"
        "from rnnviz.checkpoint import APP_LIMITS, CLI_LIMITS, CheckpointError, load_state\n"
        "peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == 'darwin' else 1024)\n"
        "before, t = peak(), time.perf_counter()\n"
        "refused = 0\n"
        "for _ in range(10):\n"
        "    for limits in (APP_LIMITS, CLI_LIMITS):\n"
        "        try:\n"
        "            load_state(sys.argv[1], limits=limits)\n"
        "        except CheckpointError:\n"
        "            refused += 1\n"
        "print(json.dumps({'refused': refused, 'rss_delta_mb': (peak() - before) / 2**20,\n"
        "                  'seconds': time.perf_counter() - t}))\n")
    r = subprocess.run([sys.executable, "-c", code, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["refused"] == 20
    assert out["rss_delta_mb"] < 50, out  # building the model would take 4 GB
    assert out["seconds"] < 5, out  # generous: it takes milliseconds


# ---- every malformed field gets a message naming it ----------------------------------------------------
def good_header(tmp_path: Path) -> tuple[dict, bytes]:
    """(header, data section) of a valid small checkpoint, saved with optimizer state."""
    torch.manual_seed(0)
    model = RowModel(SMALL)
    opt = torch.optim.Adam(model.parameters())
    model.nll((torch.rand(2, 28, 28) < 0.3).float(), 1).backward()
    opt.step()
    blob = save_checkpoint(tmp_path / "good.safetensors", model, {"dataset": "mnist"}, optimizer=opt).read_bytes()
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def tensor_pair(header: dict) -> tuple[str, str]:
    """Two tensors of the same byte size, the first one earlier in the file."""
    spans = sorted((v["data_offsets"], k) for k, v in header.items() if k != "__metadata__")
    for i, (a, ka) in enumerate(spans):
        for b, kb in spans[i + 1:]:
            if b[1] - b[0] == a[1] - a[0] > 0:
                return ka, kb
    raise AssertionError("no pair")


T = "model.rnn.weight_hh_l0"


def _set(key, value):
    def mutate(h):
        h[T][key] = value
    return mutate


def _meta(**kv):
    def mutate(h):
        h["__metadata__"].update(kv)
    return mutate


def _config(**kv):
    def mutate(h):
        h["__metadata__"]["config"] = json.dumps({**json.loads(h["__metadata__"]["config"]), **kv})
    return mutate


def _overlap(h):
    a, b = tensor_pair(h)
    h[b]["data_offsets"] = list(h[a]["data_offsets"])


def _reverse(h):
    h[T]["data_offsets"] = h[T]["data_offsets"][::-1]


# (name, change to the parsed header, or raw header text from the valid one, message regex)
CASES = [
    ("offsets_strings", _set("data_offsets", ["0", "16"]), r"tensor 'model.rnn.weight_hh_l0': 'data_offsets' should be two integers \[begin, end\] >= 0, got a list \['0', '16'\]"),
    ("offsets_null", _set("data_offsets", None), r"'data_offsets' should be two integers .*got null"),
    ("offsets_negative", _set("data_offsets", [-4, 12]), r"'data_offsets' should be two integers"),
    ("offsets_float", _set("data_offsets", [0.0, 4.5]), r"'data_offsets' should be two integers"),
    ("offsets_bool", _set("data_offsets", [False, True]), r"'data_offsets' should be two integers"),
    ("offsets_three", _set("data_offsets", [0, 4, 8]), r"'data_offsets' should be two integers"),
    ("offsets_reversed", _reverse, r"'data_offsets' \[\d+, \d+\] end before they begin"),
    ("offsets_overlap", _overlap, r"tensors '.*' and '.*' overlap in the file \('data_offsets'\)"),
    ("offsets_beyond_file", _set("data_offsets", [0, 10**12]), r"lies outside the file \(truncated\?\)"),
    ("dtype_unknown", _set("dtype", "F128"), r"'dtype' should be a safetensors dtype \(BOOL, .*F32.*\), got a string 'F128'"),
    ("dtype_number", _set("dtype", 7), r"'dtype' should be a safetensors dtype .*, got an integer 7"),
    ("shape_string", _set("shape", "64,16"), r"'shape' should be a list of at most 16 integers >= 0, got a string"),
    ("shape_negative", _set("shape", [-64, -16]), r"'shape' should be a list"),
    ("shape_float", _set("shape", [64.0, 16]), r"'shape' should be a list"),
    ("shape_deep", _set("shape", [1] * 17), r"'shape' should be a list of at most 16"),
    ("shape_vs_offsets", _set("shape", [2, 2]), r"'data_offsets' span \d+ bytes, its shape \(2, 2\) of F32 needs 16"),
    ("entry_list", lambda h: h.update({T: [1, 2]}), r"tensor 'model.rnn.weight_hh_l0' should be an object with dtype, shape and data_offsets, got a list"),
    ("entry_no_dtype", lambda h: h[T].pop("dtype"), r"tensor 'model.rnn.weight_hh_l0' has no 'dtype'"),
    ("metadata_list", lambda h: h.update({"__metadata__": ["format", "rnnviz"]}), r"header '__metadata__' should be an object of strings, got a list"),
    ("metadata_string", lambda h: h.update({"__metadata__": "rnnviz"}), r"header '__metadata__' should be an object of strings, got a string"),
    ("metadata_number_value", _meta(step=3), r"metadata 'step' should be a string, got an integer 3"),
    ("config_object", lambda h: h["__metadata__"].update(config=SMALL.to_dict()), r"metadata 'config' should be a string \(the JSON encoded as text\), got an object"),
    ("config_json_list", _meta(config="[16, 32]"), r"metadata 'config' is not a JSON object \(got a list"),
    ("config_json_string", _meta(config='"lstm"'), r"metadata 'config' is not a JSON object \(got a string"),
    ("config_bad_json", _meta(config="{"), r"metadata 'config' is not valid JSON"),
    ("config_cell_list", _config(cell=["lstm"]), r"bad model config: 'cell' should be one of \['gru', 'lstm', 'rnn'\], got a list"),
    ("config_unknown_key", _config(dropout=0.5), r"bad model config: unknown model config keys: \['dropout'\]"),
    ("config_float", _config(hidden=16.0), r"bad model config: .*hidden must be an integer"),
    ("config_huge_int", _meta(config='{"hidden": 1' + "0" * 400 + "}"), r"metadata 'config' is not valid JSON: an integer of 401 digits"),
    ("config_deep", _meta(config="[" * 100_000 + "]" * 100_000), r"metadata 'config' is not valid JSON: nested too deeply"),
    ("metrics_object", lambda h: h["__metadata__"].update(metrics={"dataset": "mnist"}), r"metadata 'metrics' should be a string \(the JSON encoded as text\), got an object"),
    ("metrics_list", _meta(metrics="[1, 2]"), r"metadata 'metrics' is not a JSON object"),
    ("optim_not_object", _meta(optim="7"), r"metadata 'optim' is not a JSON object \(got an integer 7\)"),
    ("format_number", _meta(format=1), r"metadata 'format' should be a string, got an integer 1"),
    ("format_version", _meta(format_version="2"), r"format version '2' is not supported"),
    ("header_list", "[]", r"not a safetensors file \(header is not JSON: it does not start with '\{'\)"),
    ("header_empty", "", r"header is not JSON"),
    ("header_not_utf8", b'{"__metadata__": {"format": "rnnviz\xff"}}', r"the header is not JSON: not UTF-8 text"),
    ("header_utf16", '{"a": 1}'.encode("utf-16"), r"header is not JSON"),
    ("header_duplicate_key", "dup_top", r"the header is not valid JSON: the key 'model.rnn.weight_hh_l0' appears twice"),
    ("metadata_duplicate_key", "dup_meta", r"the header is not valid JSON: the key 'format' appears twice"),
    ("config_duplicate_key", _meta(config='{"hidden": 16, "hidden": 4096}'), r"metadata 'config' is not valid JSON: the key 'hidden' appears twice"),
    ("trailing_bytes", "trailing", r"4 bytes after the last tensor"),
    ("header_length_absurd", "length_absurd", r"not a safetensors file \(header claims 9223372036854775808 bytes"),
    ("tensor_dropped_from_header", lambda h: h.pop(T), r"tensor '.*' starts at byte \d+ but the data before it ends at \d+ \('data_offsets' leave a gap\)"),
    ("tensor_extra", lambda h: h.update({"model.extra": dict(h[T])}), r"tensors '.*' and '.*' overlap in the file"),
]


def build_case(tmp_path: Path, case) -> Path:
    name, change, _ = case
    header, data = good_header(tmp_path)
    path = tmp_path / f"{name}.safetensors"
    if isinstance(change, (bytes, str)) and change not in ("dup_top", "dup_meta", "trailing", "length_absurd"):
        return raw_file(path, change, data)
    if change == "dup_top":
        text = json.dumps(header)
        return raw_file(path, text[:-1] + f', "{T}": ' + json.dumps(header[T]) + "}", data)
    if change == "dup_meta":
        text = json.dumps(header).replace('"__metadata__": {', '"__metadata__": {"format": "x", ', 1)
        return raw_file(path, text, data)
    if change == "trailing":
        return raw_file(path, header, data + b"\0" * 4)
    if change == "length_absurd":
        path.write_bytes(struct.pack("<Q", 2**63) + json.dumps(header).encode() + data)
        return path
    change(header)
    return raw_file(path, header, data)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_malformed_header_names_its_field(tmp_path, case):
    path = build_case(tmp_path, case)
    for limits in (CLI_LIMITS, APP_LIMITS):
        with pytest.raises(CheckpointError) as e:
            load_state(path, limits=limits)
        message = str(e.value)
        assert re.search(case[2], message), message
        assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 600


def test_the_valid_header_of_the_cases_loads(tmp_path):
    header, data = good_header(tmp_path)
    model, meta = load_state(raw_file(tmp_path / "again.safetensors", header, data), limits=APP_LIMITS)
    assert model.config == SMALL and meta["metrics"]["dataset"] == "mnist"


@pytest.mark.parametrize("config, limits, match", [
    (ModelConfig(hidden=16, head_hidden=32, num_classes=1000), APP_LIMITS, r"config 'num_classes' is 1000, over the explorer's limit of 10"),
    (ModelConfig(hidden=16, head_hidden=32, height=32, width=32), APP_LIMITS, "32\u00d732 images \\(another dataset size\\); the explorer's limit is 28\u00d728"),
    (ModelConfig(hidden=1024, layers=2, head_hidden=512), APP_LIMITS, r"13,467,708 parameters \(51 MB as float32\), over the explorer's limit of 13,107,200"),
    (ModelConfig(hidden=16, head_hidden=32), Limits(16, 1, 10, 16, 0, 28, 28, 10**6, name="a test's limit"), r"config 'head_hidden' is 32, over a test's limit of 16"),
], ids=["classes", "size", "parameters", "custom"])
def test_configs_outside_the_limits_are_refused_from_the_header(tmp_path, monkeypatch, config, limits, match):
    monkeypatch.setattr(ck, "RowModel", lambda *a: pytest.fail("model built"))
    path = raw_file(tmp_path / "c.safetensors", {"__metadata__": meta_of(config)})
    with pytest.raises(CheckpointError, match=match):
        load_state(path, limits=limits)


def test_an_oversized_header_is_refused_by_the_app_but_read_by_the_cli(tmp_path):
    header, data = good_header(tmp_path)
    header["__metadata__"]["metrics"] = json.dumps({"dataset": "mnist", "notes": "x" * (2 * 2**20)})
    path = raw_file(tmp_path / "big.safetensors", header, data)
    with pytest.raises(CheckpointError, match=r"the header is \d+ bytes, over the explorer's limit of 1048576"):
        load_state(path, limits=APP_LIMITS)
    assert load_state(path)[1]["metrics"]["dataset"] == "mnist"


def test_a_header_too_large_to_load_is_not_written(tmp_path):
    with pytest.raises(CheckpointError, match="header, over the"):
        save_checkpoint(tmp_path / "m.safetensors", RowModel(SMALL), {"notes": "x" * ck.MAX_HEADER_BYTES})
    assert not list(tmp_path.iterdir())


def test_an_optimizer_state_of_the_wrong_shape_is_a_checkpoint_error(tmp_path):
    header, data = good_header(tmp_path)
    header["__metadata__"]["optim"] = json.dumps({"state": {"x": {"step": "1"}}, "param_groups": [1]})
    path = raw_file(tmp_path / "o.safetensors", header, data)
    opt = torch.optim.Adam(RowModel(SMALL).parameters())
    with pytest.raises(CheckpointError, match="optimizer state does not fit this model"):
        ck.load_optimizer_state(path, opt)
    header["__metadata__"]["optim"] = json.dumps({"state": [], "param_groups": []})
    with pytest.raises(CheckpointError, match="metadata 'optim' should hold a 'state' object"):
        ck.load_optimizer_state(raw_file(tmp_path / "o2.safetensors", header, data), opt)


# ---- the command-line tools --------------------------------------------------------------------------
ISSUE_CASES = ["offsets_strings", "offsets_null", "metadata_list", "metadata_string", "config_object"]


def cli_args(tool: str, path: Path, out: Path) -> list[str]:
    return {"sample": ["--checkpoint", str(path), "--out", str(out / "g.png")],
            "evaluate": ["--checkpoint", str(path)],
            "export": ["--checkpoint", str(path), "--grid", str(out / "g.png")]}[tool]


@pytest.mark.parametrize("tool", ["sample", "evaluate", "export"])
def test_each_cli_names_the_field_of_each_malformed_header(tmp_path, tool):
    import importlib

    main = importlib.import_module(f"rnnviz.{tool}").main
    cases = [c for c in CASES if c[0] in ISSUE_CASES or c[0] in ("offsets_overlap", "dtype_unknown", "config_deep")]
    for case in cases + [("bomb", None, r"parameters .* over the command line's limit")]:
        path = bomb_file(tmp_path / "bomb.safetensors") if case[0] == "bomb" else build_case(tmp_path, case)
        with pytest.raises(SystemExit) as e:
            main(cli_args(tool, path, tmp_path))
        text = str(e.value.code)
        assert text.startswith(f"error: {path}: ") and "\n" not in text and re.search(case[2], text), text
    assert not (tmp_path / "g.png").exists()


@pytest.mark.parametrize("tool, case", [("sample", "offsets_strings"), ("evaluate", "metadata_list"),
                                        ("export", "config_object")])
def test_cli_subprocess_prints_one_line_and_no_traceback(tmp_path, tool, case):
    path = build_case(tmp_path, next(c for c in CASES if c[0] == case))
    r = subprocess.run([sys.executable, "-m", f"rnnviz.{tool}", *cli_args(tool, path, tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith(f"error: {path}: ") and r.stderr.count("\n") == 1, r.stderr


# ---- fuzz ------------------------------------------------------------------------------------------
ODD = [None, True, False, 0, -1, 1, 2**31, 2**64, 10**30, 1.5, -0.0, float("nan"), float("inf"), "", "x", "F32",
       "rnnviz", "1", "{}", "[]", "null", "{\"a\": 1}", [], [0], [0, 1], [1, 0], [-1, 2], ["0", "1"], [[1]], {},
       {"a": 1}, {"dtype": "F32"}]


def _paths(v, prefix=()):
    """Every place in a JSON value: (path, value)."""
    yield prefix, v
    if isinstance(v, dict):
        for k, x in v.items():
            yield from _paths(x, prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from _paths(x, prefix + (i,))


def _replace(v, path, new):
    if not path:
        return new
    v = json.loads(json.dumps(v))
    cur = v
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = new
    return v


def mutants(header: dict, data: bytes, rng: random.Random):
    """(description, file bytes) of many mutations of a valid checkpoint."""
    def pack(h, d=data):
        raw = h if isinstance(h, bytes) else json.dumps(h).encode()
        return struct.pack("<Q", len(raw)) + raw + d

    # a type substitution at every place of the header, and of the JSON inside each metadata string
    for path, _ in list(_paths(header)):
        for new in rng.sample(ODD, 4):
            yield f"header{list(path)}={new!r}", pack(_replace(header, path, new))
    for key in ("config", "metrics", "optim"):
        inner = json.loads(header["__metadata__"][key])
        places = list(_paths(inner))
        for path, _ in rng.sample(places, min(len(places), 30)):
            for new in rng.sample(ODD, 3):
                h = _replace(header, ("__metadata__", key), json.dumps(_replace(inner, path, new)))
                yield f"{key}{list(path)}={new!r}", pack(h)
    whole = pack(header)
    (n,) = struct.unpack("<Q", whole[:8])
    for cut in sorted(rng.sample(range(len(whole)), 60)) + list(range(0, 12)) + [8 + n - 1, 8 + n, 8 + n + 1]:
        yield f"truncated at {cut}", whole[:cut]
    for _ in range(300):  # byte flips: mostly in the header, some in the length and the data
        b = bytearray(whole)
        for _ in range(rng.choice([1, 1, 2, 5])):
            where = rng.choice([rng.randrange(8), rng.randrange(8, 8 + n), rng.randrange(8, 8 + n),
                                rng.randrange(8 + n, len(b))])
            b[where] = rng.randrange(256)
        yield "byte flips", bytes(b)
    for fake in (0, 1, 7, n - 1, n + 1, len(whole), 2**32, 2**64 - 1):
        yield f"length field {fake}", struct.pack("<Q", fake) + whole[8:]


class Hang(Exception):
    pass


def test_fuzzed_headers_raise_only_checkpoint_errors(tmp_path):
    header, data = good_header(tmp_path)
    rng = random.Random(11)
    path = tmp_path / "fuzz.safetensors"
    use_alarm = hasattr(signal, "SIGALRM")
    if use_alarm:
        def on_alarm(*_):
            raise Hang()
        old = signal.signal(signal.SIGALRM, on_alarm)
    counts = {"refused": 0, "loaded": 0}
    slowest = (0.0, "")
    try:
        for what, blob in mutants(header, data, rng):
            path.write_bytes(blob)
            limits = rng.choice([APP_LIMITS, CLI_LIMITS])
            t = time.perf_counter()
            if use_alarm:
                signal.alarm(10)
            try:
                load_state(path, limits=limits)
                counts["loaded"] += 1
            except CheckpointError as e:
                assert "\n" not in str(e) and len(str(e)) < 1000, (what, str(e)[:2000])
                counts["refused"] += 1
            except Hang:
                pytest.fail(f"{what}: no answer within 10 s")
            except Exception as e:  # noqa: BLE001 -- exactly what this test is looking for
                pytest.fail(f"{what}: {type(e).__name__}: {e}")
            finally:
                if use_alarm:
                    signal.alarm(0)
            slowest = max(slowest, (time.perf_counter() - t, what))
    finally:
        if use_alarm:
            signal.signal(signal.SIGALRM, old)
    assert counts["refused"] > 500 and counts["loaded"] > 0, counts  # both outcomes were exercised
    assert slowest[0] < 10, slowest
