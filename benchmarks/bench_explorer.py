"""Benchmark the explorer as a user meets it: start-up, Generate, and scrubbing (idle and while a
training run goes in the background), against a real `python explorer.py` process.

    python benchmarks/bench_explorer.py                  # shipped checkpoints if present
    python benchmarks/bench_explorer.py --n 200 --json bench.json

Figures (milliseconds unless noted):
- start-up: process start to the first page served (s);
- generate: one digit sampled, traced and drawn for step 0, via gradio_client (and the same work
  in-process, without HTTP);
- scrub: one step of the step view (canvas + gate grids), via gradio_client, via a plain HTTP POST
  (what the browser does for this listener, which skips the queue) and in-process; payload in KB;
- baseline: a listener that does nothing (/gen_pause), via gradio_client and plain HTTP, measured
  in the same run, so the ratios show what the explorer adds on top of Gradio's own round trip.
Each scrub figure is measured idle and while the app trains a model (the Train tab's defaults).
If checkpoints/mnist_lstm.safetensors is missing, an untrained model of the same size is used.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q / 100 * (len(xs) - 1))))]


def summary(ms: list[float]) -> dict:
    return {"p50": round(statistics.median(ms), 1), "p95": round(pct(ms, 95), 1), "n": len(ms)}


def checkpoint_dir(args) -> Path:
    folder = Path(args.checkpoint_dir)
    if (folder / "mnist_lstm.safetensors").exists():
        return folder
    from rnnviz import ModelConfig, RowModel, save_checkpoint

    tmp = Path(tempfile.mkdtemp(prefix="rnnviz-bench-ckpt-"))
    save_checkpoint(tmp / "mnist_lstm.safetensors", RowModel(ModelConfig()), {"note": "untrained, for timing"})
    print(f"note: {folder}/mnist_lstm.safetensors not found; timing an untrained LSTM 1x256 in {tmp}")
    return tmp


def start_server(args, ckpts: Path, port: int, env_extra: dict | None = None) -> tuple[subprocess.Popen, float]:
    env = dict(os.environ, GRADIO_TEMP_DIR=tempfile.mkdtemp(prefix="rnnviz-bench-gradio-"),
               GRADIO_ANALYTICS_ENABLED="False", **(env_extra or {}))
    cmd = [sys.executable, str(ROOT / "explorer.py"), "--port", str(port), "--checkpoint-dir", str(ckpts),
           "--runs-dir", tempfile.mkdtemp(prefix="rnnviz-bench-runs-"), "--train-dataset", args.train_dataset]
    import httpx

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    while time.perf_counter() - t0 < 120:
        if proc.poll() is not None:
            raise SystemExit(f"explorer.py exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc, time.perf_counter() - t0
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("explorer.py did not serve within 120 s")


class Bench:
    def __init__(self, url: str, n: int):
        import httpx
        from gradio_client import Client

        self.url, self.n = url, n
        self.client = Client(url, verbose=False)
        self.http = httpx.Client(timeout=30)
        deps = self.http.get(url + "config").json()["dependencies"]
        self.fn = {d.get("api_name"): i for i, d in enumerate(deps)}

    def post(self, api_name: str, data: list) -> tuple[float, int]:
        """One plain HTTP call, as the browser makes it for a listener with queue=False."""
        body = {"data": data, "fn_index": self.fn[api_name], "session_hash": self.client.session_hash,
                "event_data": None, "trigger_id": None}
        t = time.perf_counter()
        r = self.http.post(self.url + "gradio_api/run/predict", json=body)
        ms = (time.perf_counter() - t) * 1000
        r.raise_for_status()
        return ms, len(r.content)

    def timed(self, fn, *a, **kw) -> float:
        t = time.perf_counter()
        fn(*a, **kw)
        return (time.perf_counter() - t) * 1000

    def generate(self) -> dict:
        ms = [self.timed(self.client.predict, "shipped/mnist_lstm", str(k % 10), 1.0, k, api_name="/generate")
              for k in range(max(5, self.n // 5))]
        return summary(ms)

    def payload(self) -> dict:
        """Generate over plain HTTP through the queue, as the page sends it: round trip and bytes."""
        ms, sizes = [], []
        for k in range(max(5, self.n // 5)):
            t = time.perf_counter()
            out = self.client.predict("shipped/mnist_lstm", str(k % 10), 1.0, k, api_name="/generate")
            ms.append((time.perf_counter() - t) * 1000)
            sizes.append(len(out[-1]))
        base = [self.timed(self.client.predict, api_name="/new_seed") for _ in range(max(5, self.n // 5))]
        return {"generate": summary(ms), "baseline": summary(base), "payload_kb": round(max(sizes) / 1024, 1)}


def in_process(ckpts: Path, n: int) -> dict:
    """The same work without HTTP: sampling + tracing + the trace's payload (what a Generate sends)."""
    import numpy as np

    from rnnviz.app.operations import Explorer
    from rnnviz.wire import encode_trace

    ex = Explorer(ckpts, tempfile.mkdtemp())
    ex.model("shipped/mnist_lstm")
    gen = []
    for k in range(max(5, n // 5)):
        t = time.perf_counter()
        _, traces, _ = ex.generate("shipped/mnist_lstm", str(k % 10), 1.0, k)
        tr = traces[0]
        json.dumps(encode_trace(tr))
        gen.append((time.perf_counter() - t) * 1000)
    return {"generate": summary(gen), "hidden": int(np.shape(tr.state("h"))[1])}


def start_training(b: Bench, dataset: str) -> str:
    out = b.client.predict("lstm", 128, 1, 0.002, 64, 10.0, dataset, "bench", api_name="/train_start")
    deadline = time.time() + 60
    while time.time() < deadline:
        status = b.client.predict(api_name="/train_refresh")[0]
        if "**running**: training" in status:
            time.sleep(2)  # past data loading and the first sample grid
            return b.client.predict(api_name="/train_refresh")[0]
        time.sleep(0.5)
    raise SystemExit(f"training did not start: {out[0]}")


def report(res: dict):
    print(f"\nstart-up to serving: {res['startup_s']:.1f} s")
    gi = res["in_process"]["generate"]
    print(f"generate in-process (sample + trace + payload), LSTM 1x{res['in_process']['hidden']}: p50 {gi['p50']} ms")
    for phase in ("idle", "training"):
        s = res[phase]
        extra = " ".join(res.get("train_status", "").split("  \n")[1:3]) if phase == "training" else ""
        print(f"\ngenerate through the queue, {phase}:" + (f" (app training {extra})" if extra else ""))
        print(f"  p50 {s['generate']['p50']:6.1f}  p95 {s['generate']['p95']:6.1f} ms   baseline (New seed, no model) "
              f"p50 {s['baseline']['p50']:6.1f}  p95 {s['baseline']['p95']:6.1f}   payload {s['payload_kb']} KB")
    print("(scrubbing sends no request since the step view moved to the browser: benchmarks/bench_scrub.py)")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint-dir", default=str(ROOT / "checkpoints"))
    ap.add_argument("--train-dataset", default=str(ROOT / "tests" / "fixtures" / "mnist_small.npz"),
                    help="dataset of the background training run (default: the small test fixture)")
    ap.add_argument("--n", type=int, default=100, help="Generates per measurement: n / 5")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    ckpts = checkpoint_dir(args)
    port = free_port()
    proc, startup = start_server(args, ckpts, port)
    try:
        b = Bench(f"http://127.0.0.1:{port}/", args.n)
        res = {"startup_s": round(startup, 2), "cpus": os.cpu_count(),
               "load_average_at_start": os.getloadavg()}
        b.payload()  # warm up
        res["idle"] = b.payload()
        res["train_status"] = start_training(b, args.train_dataset)
        res["training"] = b.payload()
        res["load_average_at_end"] = os.getloadavg()
        b.client.predict(api_name="/train_stop")
    finally:
        proc.terminate()
        proc.wait(30)
    res["in_process"] = in_process(ckpts, args.n)
    report(res)
    print(f"\nmachine: {os.cpu_count()} CPUs, load average {res['load_average_at_start'][0]:.1f} at start, "
          f"{res['load_average_at_end'][0]:.1f} at the end (other processes included)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
