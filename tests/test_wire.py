"""What the browser's step views receive: a trace as exact float32 values (rnnviz.wire), read back
by rnnviz/site/static/trace.js (checked under Node against the Python arrays)."""

import json
import subprocess

import numpy as np
import pytest
import torch

from rnnviz import ModelConfig, RowModel, sample_traces
from rnnviz.site import STATIC
from rnnviz.wire import decode_trace, encode_trace, trace_bytes


def traces():
    torch.manual_seed(0)
    out = []
    for cell, layers in (("lstm", 2), ("gru", 1), ("rnn", 1)):
        model = RowModel(ModelConfig(cell=cell, hidden=24, layers=layers, head_hidden=56)).eval()
        out += sample_traces(model, n=1, y=3, seed=5)
    return out


@pytest.mark.parametrize("trace", traces(), ids=["lstm2", "gru", "rnn"])
def test_every_array_travels_exactly(trace):
    payload = json.loads(json.dumps(encode_trace(trace)))
    arrays = decode_trace(payload)
    assert np.array_equal(arrays["image"].reshape(trace.image.shape), trace.image.astype(np.float32))
    assert np.array_equal(arrays["probs"].reshape(trace.probs.shape), trace.probs)
    assert np.array_equal(arrays["rowNll"], trace.row_nll)
    for k, layer in enumerate(trace.layers):
        for name in trace.names:
            assert np.array_equal(arrays[f"l{k}.{name}"].reshape(layer[name].shape), layer[name]), (k, name)
    assert payload["names"] == list(trace.names) and payload["nlayers"] == len(trace.layers)
    assert payload["label"] == 3 and payload["order"] == "rows"


def test_trace_bytes_counts_the_floats():
    tr = traces()[1]
    floats, total = trace_bytes(tr)
    H, W = tr.image.shape
    assert floats == 4 * (2 * H * W + H + len(tr.names) * H * tr.layers[0]["h"].shape[1])
    assert floats < total < floats * 1.4  # base64 and a small header


def test_trace_js_reads_the_payload_bit_for_bit(tmp_path, node):
    tr = traces()[0]
    (tmp_path / "payload.json").write_text(json.dumps(encode_trace(tr)))
    script = tmp_path / "read.mjs"
    script.write_text(f"""
import {{ readFileSync }} from 'node:fs';
import {{ pathToFileURL }} from 'node:url';
globalThis.atob = (s) => Buffer.from(s, 'base64').toString('binary');
const {{ decodeTrace }} = await import(pathToFileURL({json.dumps(str(STATIC / 'trace.js'))}));
const t = decodeTrace(JSON.parse(readFileSync({json.dumps(str(tmp_path / 'payload.json'))}, 'utf8')));
const bits = (a) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
console.log(JSON.stringify({{ height: t.height, hidden: t.hidden, names: t.names, nlayers: t.layers.length,
  c1: bits(t.layers[1].c), probs: bits(t.probs) }}));
""")
    out = json.loads(subprocess.run([node, str(script)], capture_output=True, text=True, check=True).stdout)
    assert out["nlayers"] == 2 and out["names"] == list(tr.names) and out["hidden"] == 24
    assert out["c1"] == tr.layers[1]["c"].astype("<f4").view("<u4").ravel().tolist()
    assert out["probs"] == tr.probs.astype("<f4").view("<u4").ravel().tolist()


def test_trace_js_refuses_a_malformed_payload(tmp_path, node):
    payload = encode_trace(traces()[2])
    payload["arrays"][0][2] = 10**9  # an array longer than the data
    (tmp_path / "payload.json").write_text(json.dumps(payload))
    script = tmp_path / "read.mjs"
    script.write_text(f"""
import {{ readFileSync }} from 'node:fs';
import {{ pathToFileURL }} from 'node:url';
globalThis.atob = (s) => Buffer.from(s, 'base64').toString('binary');
const {{ decodeTrace }} = await import(pathToFileURL({json.dumps(str(STATIC / 'trace.js'))}));
try {{ decodeTrace(JSON.parse(readFileSync({json.dumps(str(tmp_path / 'payload.json'))}, 'utf8'))); console.log('read'); }}
catch (e) {{ console.log('refused: ' + e.message); }}
""")
    out = subprocess.run([node, str(script)], capture_output=True, text=True, check=True).stdout
    assert out.startswith("refused: array image lies outside the data")
