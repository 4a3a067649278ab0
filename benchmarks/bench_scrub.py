"""What a visitor feels when scrubbing: the Gradio app and the static page, in Chromium, in one run.

    python benchmarks/bench_scrub.py                  # shipped LSTM; both hosts, 3 rounds each
    python benchmarks/bench_scrub.py --rounds 5 --json scrub.json

Both hosts draw with the same view modules (rnnviz/site/static); the app's server sends a trace once
per Generate, the static page samples it itself. For each host, on the same digit (the shipped LSTM's
7, seed 0), measured in the page and driven by Playwright:
- settle: 20 ArrowRight presses on the Generate slider, 40 ms apart (so 0.80 s is the floor), from
  the first press until the view shows step 20; the API requests sent meanwhile; the main thread's
  long tasks (PerformanceObserver 'longtask': tasks over 50 ms), their count and total;
- play: Play from step 0 until the view shows step 27, the requests sent meanwhile, and the frame
  rate of the page while it plays (requestAnimationFrame callbacks per second);
- generate: from the click on Generate until the view has drawn the new digit (the app: the trace
  computed, sent and drawn; the static page: sampled and drawn in the browser), the median of 5 per
  round. The app answers Generate directly (fair slots, rnnviz/app/guard/slots.py); the baseline
  "app (queue)" is a second server sending it through Gradio's queue as before
  (RNNVIZ_GENERATE_QUEUE=1), measured in the same rounds;
- the trace's size: float32 data and the whole JSON payload (rnnviz.wire.trace_bytes).
The ratio app/static of the settle time above the 0.80 s floor is the figure to watch; the machine
is noisy, so rounds alternate between the hosts.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_explorer import free_port, start_server  # noqa: E402
from benchmarks.bench_site import ARGS, CHROMIUM, serve  # noqa: E402

PRESSES, GAP_MS, FLOOR_S = 20, 40, 0.80

# the same hooks on both hosts: the app's window.rnnviz takes a view name, the static page's does not
STATE = {"app": "window.rnnviz.state('gen')", "static": "window.rnnviz.state()"}
SET_STEP = {"app": "window.rnnviz.setStep('gen', 0)", "static": "window.rnnviz.setStep(0)"}
GENERATES = 5  # Generate presses per round and host
LONGTASKS = """() => {
  window.__lt = [];
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__lt.push([e.startTime, e.duration]); })
    .observe({ type: 'longtask', buffered: false });
}"""
FPS = """() => new Promise((done) => {
  let frames = 0; const t0 = performance.now();
  const tick = () => { frames++; if (performance.now() - t0 < 2000) requestAnimationFrame(tick); else done(frames / ((performance.now() - t0) / 1000)); };
  requestAnimationFrame(tick);
})"""


def open_host(browser, host: str, url: str):
    pg = browser.new_page(viewport={"width": 1500, "height": 1100})
    errors, requests = [], []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("request", lambda r: requests.append(r.url) if "/gradio_api/" in r.url and "file=" not in r.url else None)
    pg.goto(url)
    if host.startswith("app"):
        pg.wait_for_selector("#gen_view [data-loaded]", state="attached", timeout=120_000)
    else:
        pg.wait_for_selector("body[data-ready='1']", state="attached", timeout=120_000)
    pg.evaluate(LONGTASKS)
    return pg, errors, requests


def wait_step(pg, host: str, step: int, timeout: float = 30.0) -> float:
    """Seconds until the view shows ``step`` (polled every frame in the page)."""
    return pg.evaluate("""([expr, step, timeout]) => new Promise((done, fail) => {
      const t0 = performance.now();
      const poll = () => { const s = eval(expr); if (s && s.step === step) done((performance.now() - t0) / 1000);
        else if (performance.now() - t0 > timeout * 1000) fail(new Error('timeout')); else requestAnimationFrame(poll); };
      poll();
    })""", [STATE[host], step, timeout])


def settle(pg, host: str, requests: list) -> dict:
    """20 real key presses (Playwright), timed in the page: from the first keydown to the frame that
    shows step 20, and the long tasks that started in that time."""
    pg.evaluate(SET_STEP[host])
    pg.wait_for_timeout(300)
    pg.focus("#gen_step")
    pg.evaluate("""() => { window.__lt = []; window.__first = null;
      document.addEventListener('keydown', () => { if (window.__first === null) window.__first = performance.now(); },
                                { capture: true, once: true }); }""")
    n0 = len(requests)
    for k in range(PRESSES):
        pg.keyboard.press("ArrowRight")
        if k < PRESSES - 1:
            pg.wait_for_timeout(GAP_MS)
    wait_step(pg, host, PRESSES)
    took = pg.evaluate("(performance.now() - window.__first) / 1000")
    lt = pg.evaluate("window.__lt.filter(([start]) => start >= window.__first).map(([, d]) => d)")
    return {"settle_s": round(took, 3), "requests": len(requests) - n0, "long_tasks": len(lt),
            "long_ms": round(sum(lt), 1)}


def play(pg, host: str, requests: list) -> dict:
    pg.evaluate(SET_STEP[host])
    pg.wait_for_timeout(200)
    n0 = len(requests)
    t0 = time.perf_counter()
    pg.click("#gen_play")
    fps = pg.evaluate(FPS)
    wait_step(pg, host, 27, timeout=60)
    return {"play_s": round(time.perf_counter() - t0, 2), "requests": len(requests) - n0, "fps": round(fps, 1)}


def generate(pg, host: str, seed: int) -> float:
    """Seconds from the click on Generate (dispatched in the page) to the frame that shows the new
    digit drawn: the app's round trip (queue, sampling, the trace sent, decoded and drawn), or the
    static page's sampling and drawing."""
    if host.startswith("app"):
        pg.fill("#seed input", str(seed))
        pg.dispatch_event("#seed input", "change")
        pg.wait_for_timeout(200)
        return pg.evaluate("""() => new Promise((done) => {
          const el = document.querySelector('#gen_view [data-loaded]'), before = el.dataset.loaded;
          const t0 = performance.now();
          document.querySelector('#generate').click();
          const poll = () => (el.dataset.loaded !== before ? done((performance.now() - t0) / 1000) : requestAnimationFrame(poll));
          poll();
        })""")
    pg.fill("#seed", str(seed))
    return pg.evaluate("""() => new Promise((done) => {
      const before = window.rnnviz.state().nll, t0 = performance.now();
      document.getElementById('generate').click();
      const poll = () => (window.rnnviz.state().nll !== before ? done((performance.now() - t0) / 1000) : requestAnimationFrame(poll));
      poll();
    })""")


def trace_size() -> dict:
    from rnnviz import load_checkpoint, sample_traces
    from rnnviz.wire import trace_bytes

    model = load_checkpoint(ROOT / "checkpoints" / "mnist_lstm.safetensors")
    floats, total = trace_bytes(sample_traces(model, n=1, y=7, seed=0)[0])
    return {"float32_bytes": floats, "payload_bytes": total}


def median(rows: list[dict], key: str):
    return round(statistics.median(r[key] for r in rows), 3)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--checkpoint-dir", default=str(ROOT / "checkpoints"))
    ap.add_argument("--train-dataset", default=str(ROOT / "tests" / "fixtures" / "mnist_small.npz"))
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from rnnviz.site import export_site

    site = Path(tempfile.mkdtemp(prefix="rnnviz-bench-site-"))
    export_site(out=site)
    srv, site_url = serve(site)
    proc, startup = start_server(args, Path(args.checkpoint_dir), free_port())
    queued, _ = start_server(args, Path(args.checkpoint_dir), free_port(), {"RNNVIZ_GENERATE_QUEUE": "1"})
    port = lambda p: p.args[p.args.index("--port") + 1]  # noqa: E731
    urls = {"app": f"http://127.0.0.1:{port(proc)}/", "static": site_url, "app (queue)": f"http://127.0.0.1:{port(queued)}/"}
    res = {"date": time.strftime("%Y-%m-%d"), "trace": trace_size(), "app_startup_s": round(startup, 1)}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            rows = {"app": [], "static": [], "app (queue)": []}
            for r in range(args.rounds):
                for host in ("app", "static", "app (queue)") if r % 2 == 0 else ("app (queue)", "static", "app"):
                    pg, errors, requests = open_host(browser, host, urls[host])
                    row = {} if host == "app (queue)" else {**settle(pg, host, requests), **play(pg, host, requests)}
                    row["generate_s"] = statistics.median(generate(pg, host, 100 + k) for k in range(GENERATES))
                    if errors:
                        raise SystemExit(f"errors on the {host} page: {errors}")
                    rows[host].append(row)
                    pg.close()
            browser.close()
    finally:
        proc.terminate()
        queued.terminate()
        srv.shutdown()
    for host, rs in rows.items():
        res[host] = {k: median(rs, k) for k in rs[0]}
        res[host]["rounds"] = rs
    a, s = res["app"], res["static"]
    res["settle_ratio_above_floor"] = round((a["settle_s"] - FLOOR_S) / max(s["settle_s"] - FLOOR_S, 1e-3), 2)
    res["settle_ratio"] = round(a["settle_s"] / s["settle_s"], 2)
    print(f"trace of the shipped LSTM: {res['trace']['float32_bytes']:,} bytes of float32, "
          f"{res['trace']['payload_bytes']:,} bytes as JSON")
    print(f"{'':8}{'settle 20 steps':>17}{'requests':>10}{'long tasks':>12}{'play 0-27':>11}{'requests':>10}"
          f"{'fps':>7}{'generate':>10}")
    for host in ("app", "static"):
        h = res[host]
        print(f"{host:8}{h['settle_s']:>15.3f} s{h['requests']:>10}{h['long_ms']:>9.0f} ms{h['play_s']:>9.2f} s"
              f"{h['requests']:>10}{h['fps']:>7.1f}{1000 * h['generate_s']:>7.0f} ms")
    q = res["app (queue)"]["generate_s"]
    res["generate_direct_vs_queue"] = round(a["generate_s"] / q, 2)
    print(f"Generate to the drawn view: app {1000 * a['generate_s']:.0f} ms, the same app through Gradio's queue "
          f"{1000 * q:.0f} ms (ratio {res['generate_direct_vs_queue']}), static {1000 * s['generate_s']:.0f} ms")
    print(f"app/static settle: {res['settle_ratio']} (above the {FLOOR_S:.2f} s floor: "
          f"{res['settle_ratio_above_floor']}); medians of {args.rounds} rounds, {res['date']}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
