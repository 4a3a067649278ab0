"""Benchmark the static explorer (python -m rnnviz.site) in Chromium.

    python benchmarks/bench_site.py                 # shipped LSTM, GRU, RNN; the app measured too
    python benchmarks/bench_site.py --n 200 --json site.json

Figures, measured in the page with performance.now() and driven by Playwright, the site served from
a temporary folder on loopback (python's http.server):
- load: navigation start to the first generated digit drawn (cold browser context each time);
- generate: one sample with its full trace (every gate and state, per-row NLL) in JavaScript, and
  the same plus every view drawn (canvas, grids, units x time panels, NLL bars), per model;
- scrub: one step with every view redrawn (canvas, gate/state grids, cursors, captions), with the
  page's layout forced so the time includes the browser's style and layout work;
- (the Gradio app draws with the same view modules: benchmarks/bench_scrub.py compares both hosts in
  one run);
- the site's size on disk.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_explorer import summary  # noqa: E402

CHROMIUM = os.environ.get("RNNVIZ_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

GENERATE_JS = """async (n) => {
  const names = %s, out = {};
  for (const model of names) {
    const sample = [], full = [];
    await window.rnnviz.generate({ model, digit: '7', seed: 0 });  // load the weights, warm up
    for (let k = 0; k < n; k++) {
      const t = await window.rnnviz.generate({ model, digit: String(k %% 10), seed: k });
      sample.push(t.sample); full.push(t.generate);
    }
    out[model] = { sample, full };
  }
  await window.rnnviz.generate({ model: names[0], digit: '7', seed: 0 });
  return out;
}"""

SCRUB_JS = """(n) => {
  const ms = [];
  for (let k = 0; k < 20; k++) window.rnnviz.setStep(k % 28);  // warm up
  for (let k = 0; k < n; k++) {
    const t0 = performance.now();
    window.rnnviz.setStep((k * 11) % 28);  // jumps, so every step draws a new frame
    void document.body.offsetHeight;  // force style and layout into the measured time
    ms.push(performance.now() - t0);
  }
  return ms;
}"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def serve(folder: Path):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, f"http://127.0.0.1:{srv.server_port}/"


def measure_site(url: str, names: list[str], n: int, loads: int) -> dict:
    from playwright.sync_api import sync_playwright

    res = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        load = []
        for _ in range(loads):
            ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
            pg = ctx.new_page()
            pg.goto(url)
            pg.wait_for_selector("body[data-ready='1']", state="attached", timeout=60_000)
            load.append(pg.evaluate("window.rnnviz.timings.firstDigit"))
            ctx.close()
        res["load"] = summary(load)
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(url)
        pg.wait_for_selector("body[data-ready='1']", state="attached", timeout=60_000)
        gen = pg.evaluate(GENERATE_JS % json.dumps(names), max(5, n // 4))
        res["generate"] = {m: {"sample": summary(v["sample"]), "full": summary(v["full"])} for m, v in gen.items()}
        res["scrub"] = summary(pg.evaluate(SCRUB_JS, n))
        browser.close()
        if errors:
            raise SystemExit(f"errors on the page: {errors}")
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", action="append", default=None, help="as python -m rnnviz.site (default: shipped)")
    ap.add_argument("--n", type=int, default=200, help="scrub steps (generate: n/4 samples per model)")
    ap.add_argument("--loads", type=int, default=5, help="page loads to time")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args(argv)

    from rnnviz.site import export_site, site_files

    folder = Path(tempfile.mkdtemp(prefix="rnnviz-bench-site-"))
    manifest = export_site(args.checkpoint, folder)
    files = site_files(folder)
    size = sum((folder / f).stat().st_size for f in files)
    names = [m["name"] for m in manifest["models"]]
    srv, url = serve(folder)
    t0 = time.time()
    try:
        res = {"site_bytes": size, "site_files": len(files), "cpus": os.cpu_count(),
               "load_average_at_start": os.getloadavg(), **measure_site(url, names, args.n, args.loads)}
    finally:
        srv.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    res["load_average_at_end"] = os.getloadavg()
    res["seconds"] = round(time.time() - t0, 1)

    print(f"\nsite: {len(files)} files, {size / 2**20:.2f} MB ({', '.join(names)})")
    print(f"page load to the first generated digit: p50 {res['load']['p50']} ms (p95 {res['load']['p95']}, "
          f"{res['load']['n']} cold loads)")
    for m, g in res["generate"].items():
        print(f"generate {m:12s} sample + full trace: p50 {g['sample']['p50']:6.1f}  p95 {g['sample']['p95']:6.1f} ms"
              f"   + every view drawn: p50 {g['full']['p50']:6.1f}  p95 {g['full']['p95']:6.1f} ms")
    s = res["scrub"]
    print(f"scrub one step, every view redrawn (in the page): p50 {s['p50']} ms  p95 {s['p95']} ms  (n={s['n']})")
    print(f"machine: {os.cpu_count()} CPUs, load average {res['load_average_at_start'][0]:.1f} at start, "
          f"{res['load_average_at_end'][0]:.1f} at the end (other processes included)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
