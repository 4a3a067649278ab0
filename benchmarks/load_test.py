"""Load test: many visitors generating and scrubbing at once while the app trains a model.

    python benchmarks/load_test.py                          # 20 users for 60 s
    python benchmarks/load_test.py --users 5 --duration 10  # a quick check
    python benchmarks/load_test.py --scrub-http             # scrub steps as the browser sends them
    python benchmarks/load_test.py --json load.json
    python benchmarks/load_test.py --hostile                # floods, hostile uploads, a 60 s abuse loop

Loopback only and bounded in time. It starts ``explorer.py`` in a subprocess on a free port of
127.0.0.1 (with ``checkpoints/mnist_lstm.safetensors`` if present, else an untrained model of the
same size), starts a training run in it through the API (on the small test fixture by default), then
runs ``--users`` simulated visitors, each a separate ``gradio_client.Client`` (its own session) in
its own thread: Generate (random digit and seed), then scrub to ``--scrubs`` random timesteps with
``--think`` seconds between actions (where the app still has a ``gen_step`` endpoint: scrubbing is
in the browser now), over and over until ``--duration`` seconds have passed. Then the visitors close
their sessions and the run is stopped. With ``--scrub-http`` the scrub steps are plain HTTP posts in
the visitor's session, as the browser sends them (that listener skips the queue); gradio_client
waits for each answer on a stream of server messages, which on a small machine costs the simulated
users several times the CPU the server spends.

The server counts pending jobs per client address (``rnnviz.app.guard``), so each simulated visitor
is its own client: gradio_client cannot choose the address it connects from, so each sends its own
``X-Forwarded-For`` (203.0.113.k), which the server (uvicorn) believes from 127.0.0.1 only.

``--hostile``: instead of the visitors, floods of Generate (the victim, one visitor, presses
Generate 40 times idle, then 40 times during each flood; its p95 must stay within 2x idle or 250 ms,
whichever is more: ``flood_target_ms``), the
server's memory through hostile uploads, and the abuse loop. Attacker and victim are two clients
by their sockets' addresses (127.0.0.2 and 127.0.0.3; all of 127.0.0.0/8 is this machine); the
floods: one session joining the queue, a new session id for every job, ``/gradio_api/call/`` with
no session, direct calls (``/gradio_api/run/generate``, the route the page uses: the explorer answers
Generate outside the queue, in fair slots), and both behind one proxy address (127.0.0.4), told
apart by the X-Forwarded-For the server is told to trust (``RNNVIZ_FORWARDED_HOPS=1``). The victim
sends its Generates as the page does, directly.

Reported: requests served, errors (any exception; there must be none), p50 and p95 latency per
endpoint, the training progress during the test, and the server's resident memory (VmRSS from
/proc/<pid>/status) before the visitors came, right after they left and a few seconds later (their
sessions' traces are dropped when they close; see ``demo.unload`` in rnnviz/app/ui.py), and its peak
(VmHWM), and the CPU time the server and the simulated users used. The exit status is 1 if any
request failed.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_explorer import checkpoint_dir, free_port, pct  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "mnist_small.npz"
MODEL = "shipped/mnist_lstm"


# ---- the visitors ---------------------------------------------------------------------------------
class Tally:
    """Latencies and errors of every request, from every visitor thread."""

    def __init__(self):
        self._lock = threading.Lock()
        self.ms: dict[str, list[float]] = defaultdict(list)
        self.errors: list[str] = []

    def call(self, endpoint: str, fn, *args):
        """``fn(*args)``, timed and counted under ``endpoint``; None if it failed."""
        t = time.perf_counter()
        try:
            out = fn(*args)
        except Exception as e:  # any failure counts: the app must serve every request
            with self._lock:
                self.errors.append(f"{endpoint}: {type(e).__name__}: {str(e)[:200]}")
            return None
        ms = (time.perf_counter() - t) * 1000
        with self._lock:
            self.ms[endpoint].append(ms)
        return out

    def summary(self) -> dict:
        with self._lock:
            return {ep: {"n": len(v), "p50_ms": round(statistics.median(v), 1), "p95_ms": round(pct(v, 95), 1)}
                    for ep, v in sorted(self.ms.items())}


def stop_server(proc: subprocess.Popen, timeout: float = 30):
    """Terminate the explorer's process; kill it if it has not gone within ``timeout`` s."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()


def run_threads(threads: list[threading.Thread], timeout: float) -> tuple[float, int]:
    """Start the threads, wait for each (at most ``timeout`` s), and return (wall seconds, how many
    are still running)."""
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout)
    return time.perf_counter() - t0, sum(th.is_alive() for th in threads)


def plain_http(client, url: str, api_name: str):
    """A function calling the ``queue=False`` listener ``api_name`` the way the browser does: one
    plain HTTP POST in the visitor's session (gradio_client instead waits on a stream of messages)."""
    import httpx

    deps = client.config["dependencies"]
    fn_index = next(d.get("id", i) for i, d in enumerate(deps) if d.get("api_name") == api_name)
    http = httpx.Client(timeout=120)

    def call(*data):
        r = http.post(url + "gradio_api/run/predict", json={"data": list(data), "fn_index": fn_index,
                                                            "session_hash": client.session_hash,
                                                            "event_data": None, "trigger_id": None})
        r.raise_for_status()
        return r.json()["data"]

    return call


def has_endpoint(client, api_name: str) -> bool:
    return any(d.get("api_name") == api_name for d in client.config["dependencies"])


def visitor(client, tally: Tally, deadline: float, seed: int, scrubs: int, think: float, scrub=None):
    """Generate, then scrub to ``scrubs`` random steps (where the app has ``gen_step``), until ``deadline``."""
    rng = random.Random(seed)
    generate = functools.partial(client.predict, api_name="/generate")
    if not has_endpoint(client, "gen_step"):
        scrubs = 0  # the step view scrubs in the browser: nothing to ask the server
    if scrub is None:
        name, scrub = "/gen_step", functools.partial(client.predict, api_name="/gen_step")
    else:
        name = "/gen_step (plain HTTP)"
    while time.monotonic() < deadline:
        if tally.call("/generate", generate, MODEL, str(rng.randrange(10)), 1.0, rng.randrange(100_000)) is None:
            time.sleep(think)
            continue
        for _ in range(scrubs):
            if time.monotonic() >= deadline:
                break
            time.sleep(think)
            tally.call(name, scrub, rng.randrange(28))
        time.sleep(think)


def run_visitors(url: str, users: int, duration: float, scrubs: int = 10, think: float = 0.1,
                 scrub_http: bool = False, tally: Tally | None = None) -> dict:
    """``users`` visitors (new sessions) for ``duration`` seconds against the app at ``url``, then
    they close; the figures so far of ``tally`` (a new one by default).
    ``scrub_http``: scrub with plain HTTP posts, as the browser does, instead of gradio_client."""
    from gradio_client import Client

    # each visitor its own client address (the server bounds pending jobs per address)
    clients = [Client(url, verbose=False, headers={"X-Forwarded-For": f"203.0.113.{k % 250 + 1}"})
               for k in range(users)]
    tally = tally or Tally()
    deadline = time.monotonic() + duration
    threads = [threading.Thread(target=visitor, daemon=True,
                                args=(c, tally, deadline, k, scrubs, think,
                                      plain_http(c, url, "gen_step") if scrub_http and has_endpoint(c, "gen_step")
                                      else None))
               for k, c in enumerate(clients)]
    wall, stuck = run_threads(threads, duration + 120)
    for c in clients:
        c.close()
    if stuck:
        tally.errors.append(f"{stuck} visitor threads still running after the deadline")
    per = tally.summary()
    return {"users": users, "duration_s": duration, "wall_s": round(wall, 1),
            "requests": sum(v["n"] for v in per.values()), "errors": len(tally.errors),
            "error_samples": tally.errors[:10], "endpoints": per}


# ---- the server ---------------------------------------------------------------------------------
def rss_mb(pid: int) -> dict:
    """Resident memory of ``pid`` now and at its peak, in MB (Linux /proc)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = round(int(value.split()[0]) / 1024, 1)
    return fields


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) used so far by ``pid`` (from /proc), or by this process."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(ckpts: Path, dataset: str, port: int, log: Path, env_extra: dict | None = None) -> subprocess.Popen:
    """``explorer.py`` on ``port``; ``proc.dirs`` names its runs, uploads and Gradio cache folders."""
    import httpx

    cache, root = tempfile.mkdtemp(prefix="rnnviz-load-gradio-"), Path(tempfile.mkdtemp(prefix="rnnviz-load-runs-"))
    env = dict(os.environ, GRADIO_TEMP_DIR=cache, GRADIO_ANALYTICS_ENABLED="False", **(env_extra or {}))
    env.pop("SYSTEM", None)
    cmd = [sys.executable, str(ROOT / "explorer.py"), "--host", "127.0.0.1", "--port", str(port),
           "--checkpoint-dir", str(ckpts), "--runs-dir", str(root / "explorer"), "--train-dataset", dataset]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    proc.dirs = {"runs": root / "explorer", "uploads": root / "uploads", "cache": Path(cache)}
    url, t0 = f"http://127.0.0.1:{port}/", time.perf_counter()
    while time.perf_counter() - t0 < 120:
        if proc.poll() is not None:
            raise SystemExit(f"explorer.py exited with {proc.returncode}; see {log}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("explorer.py did not serve within 120 s")


def start_training(url: str, dataset: str, minutes: float) -> str:
    from gradio_client import Client

    c = Client(url, verbose=False)
    notice = c.predict("lstm", 128, 1, 0.002, 64, minutes, dataset, "loadtest", api_name="/train_start")[0]
    deadline = time.time() + 60
    while time.time() < deadline:
        status = c.predict(api_name="/train_refresh")[0]
        if "**running**: training" in status:
            c.close()
            return status
        time.sleep(0.5)
    raise SystemExit(f"training did not start: {notice}")


def train_status(url: str, stop: bool = False) -> str:
    from gradio_client import Client

    c = Client(url, verbose=False)
    if stop:
        c.predict(api_name="/train_stop")
    status = c.predict(api_name="/train_refresh")[0]
    c.close()
    return status


def report(res: dict):
    waves = len(res.get("memory_mb", {}).get("waves", [])) or 1
    print(f"\n{res['users']} users for {res['duration_s'] / waves:.0f} s" +
          (f", {waves} times as new sessions ({res['sessions']} sessions)" if waves > 1 else "") +
          f": {res['requests']} requests served, {res['errors']} errors")
    for sample in res["error_samples"]:
        print(f"  error: {sample}")
    for ep, v in res["endpoints"].items():
        print(f"  {ep:24s} n {v['n']:5d}   p50 {v['p50_ms']:7.1f} ms   p95 {v['p95_ms']:7.1f} ms")
    if "memory_mb" in res:
        m = res["memory_mb"]
        after = ", ".join(f"{w['after']} MB ({w['settled']} MB {res['settle_s']:g} s later)" for w in m["waves"])
        print(f"server RSS: {m['before']} MB before the users; after {'each wave' if waves > 1 else 'them'}: "
              f"{after}; peak {m['peak']} MB")
    if "training" in res:
        print(f"training during the test: {res['training']['before']} -> {res['training']['after']}")
    if "cpu_s" in res:
        c, cores = res["cpu_s"], os.cpu_count()
        extra = " (training included)" if "training" in res else ""
        print(f"CPU time during the test: server {c['server']} s{extra}, the simulated users {c['clients']} s "
              f"(of {cores} cores x {res['wall_s']:.0f} s = {cores * res['wall_s']:.0f} s)")
    print(f"machine: {os.cpu_count()} CPUs, load average {res['load_average'][0]:.1f} "
          f"(1 min, other processes included)")


# ---- a hostile visitor (issue 11) ---------------------------------------------------------------------
ATTACKER, VICTIM, PROXY = "127.0.0.2", "127.0.0.3", "127.0.0.4"  # all of 127.0.0.0/8 is this machine
FLOODS = ("one session", "rotating sessions", "/call/", "direct /run/", "behind one proxy")


def _http(address: str):
    """An httpx client whose sockets come from ``address``."""
    import httpx

    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=120)


def _generate(http, url: str, seed: int, headers: dict | None = None, session: str = "victim") -> float | None:
    """One Generate as the page sends it (directly, ``/gradio_api/run/generate``; the explorer answers
    Generate outside Gradio's queue, in fair slots) in ``session`` (one session for all a page's
    jobs), in ms; None if the server refused it."""
    t = time.perf_counter()
    r = http.post(url + "gradio_api/run/generate", json={"data": [MODEL, str(seed % 10), 1.0, seed],
                                                         "session_hash": session}, headers=headers or {})
    if r.status_code != 200 or "data" not in r.json():
        return None
    return (time.perf_counter() - t) * 1000


def flood(url: str, kind: str, samples: int = 40, threads: int = 2) -> dict:
    """The victim's Generate ``samples`` times idle, then while the attacker floods Generate
    (``kind``, one of ``FLOODS``) from ``threads`` connections as fast as the answers come."""
    fn_index = _fn_index_of(url, "generate")
    proxied = kind == "behind one proxy"
    victim_from, victim_headers = (PROXY, {"X-Forwarded-For": "198.51.100.3"}) if proxied else (VICTIM, {})
    rng = random.Random(0)
    with _http(victim_from) as victim:
        for _ in range(2):  # warm
            _generate(victim, url, rng.randrange(100_000), victim_headers)
        idle = [_generate(victim, url, rng.randrange(100_000), victim_headers) for _ in range(samples)]
        counts, stop, lock = defaultdict(int), threading.Event(), threading.Lock()

        def flooder():
            with _http(PROXY if proxied else ATTACKER) as http:
                while not stop.is_set():
                    data = [MODEL, "7", 1.0, 0]
                    if kind in ("one session", "rotating sessions"):
                        session = "flooder" if kind == "one session" else os.urandom(8).hex()
                        r = http.post(url + "gradio_api/queue/join", json={
                            "data": data, "fn_index": fn_index, "session_hash": session, "event_data": None,
                            "trigger_id": None})
                    elif kind == "direct /run/":  # as the page sends Generate, from one session
                        r = http.post(url + "gradio_api/run/generate", json={"data": data, "session_hash": "flooder"})
                    else:
                        r = http.post(url + "gradio_api/call/generate", json={"data": data},
                                      headers={"X-Forwarded-For": "198.51.100.2"} if proxied else {})
                    with lock:
                        counts[r.status_code] += 1

        attackers = [threading.Thread(target=flooder, daemon=True) for _ in range(threads)]
        for th in attackers:
            th.start()
        time.sleep(1.0)
        answers = [_generate(victim, url, rng.randrange(100_000), victim_headers) for _ in range(samples)]
        stop.set()
        for th in attackers:
            th.join(60)
    _drain(url)  # the flood's admitted jobs finish before the next measure
    idle = [ms for ms in idle if ms is not None]
    flooded = [ms for ms in answers if ms is not None] or [math.inf]
    res = {"flood": kind, "idle_p50_ms": round(statistics.median(idle), 1), "idle_p95_ms": round(pct(idle, 95), 1),
           "flood_p50_ms": round(statistics.median(flooded), 1), "flood_p95_ms": round(pct(flooded, 95), 1),
           "victim_refused": answers.count(None), "victim_requests": len(answers),
           "flood_requests": dict(sorted(counts.items()))}
    res["p95_ratio"] = round(res["flood_p95_ms"] / res["idle_p95_ms"], 2)
    return res


def _drain(url: str, timeout: float = 120):
    """Wait until the server's queue is empty."""
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if httpx.get(url + "gradio_api/queue/status", timeout=30).json().get("queue_size", 0) == 0:
            break
        time.sleep(0.5)
    time.sleep(1.0)  # the last job ends


def _fn_index_of(url: str, api_name: str) -> int:
    import httpx

    deps = httpx.get(url + "config", timeout=30).json()["dependencies"]
    return next(d.get("id", i) for i, d in enumerate(deps) if d.get("api_name") == api_name)


def _reset_peak(pid: int):
    try:  # "5" resets VmHWM to the current RSS (Linux)
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def hostile_files(folder: Path) -> list[Path]:
    """The hostile checkpoints of tests/hostile.py, and headers claiming huge models."""
    from tests.hostile import APP_CASES, hostile
    from tests.hostile import claims as _claims

    folder.mkdir(parents=True, exist_ok=True)
    files = [hostile(folder, case)[0] for case in APP_CASES]
    files.append(_claims(folder / "bomb_4096x8.safetensors", hidden=4096, layers=8, head_hidden=8192,
                         num_classes=1000))
    files.append(_claims(folder / "bomb_1024x4.safetensors", hidden=1024, layers=4, head_hidden=1024))
    return files


def hostile_uploads(url: str, pid: int, rounds: int = 3) -> dict:
    """The server's RSS through the hostile-upload set, sent ``rounds`` times."""
    from gradio_client import Client, handle_file

    files = hostile_files(Path(tempfile.mkdtemp(prefix="rnnviz-hostile-")))
    c = Client(url, verbose=False)
    _reset_peak(pid)
    before, refused = rss_mb(pid)["VmRSS"], 0
    for _ in range(rounds):
        for f in files:
            try:
                c.predict(handle_file(str(f)), api_name="/upload_checkpoint")
            except Exception:  # each is refused with a message
                refused += 1
    c.close()
    m = rss_mb(pid)
    return {"files": len(files) * rounds, "refused": refused, "rss_before_mb": before, "rss_after_mb": m["VmRSS"],
            "rss_peak_mb": m["VmHWM"]}


def _du(folder: Path) -> tuple[int, int]:
    """(files, bytes) under ``folder``."""
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []
    return len(files), sum(p.stat().st_size for p in files)


def abuse(url: str, proc, dataset: str, seconds: float = 60.0) -> dict:
    """``seconds`` of abuse from four threads: new checkpoints and hostile files uploaded, junk sent
    to Gradio's upload route with no handler, training runs started and stopped, 10 MB strings;
    then the disk used by runs, uploads and Gradio's cache against the caps."""
    import httpx
    import torch
    from gradio_client import Client, handle_file

    from rnnviz import ModelConfig, RowModel, save_checkpoint
    from rnnviz.app import guard, training, uploads

    tmp = Path(tempfile.mkdtemp(prefix="rnnviz-abuse-"))
    hostile = hostile_files(tmp / "hostile")
    deadline, counts, lock = time.monotonic() + seconds, defaultdict(int), threading.Lock()

    def count(key):
        with lock:
            counts[key] += 1

    def uploader():
        c, k = Client(url, verbose=False), 0
        while time.monotonic() < deadline:
            torch.manual_seed(k)
            path = save_checkpoint(tmp / f"ok{k}.safetensors", RowModel(ModelConfig(hidden=16, head_hidden=32)))
            for f in (path, hostile[k % len(hostile)]):
                try:
                    c.predict(handle_file(str(f)), api_name="/upload_checkpoint")
                    count("uploads stored")
                except Exception:
                    count("uploads refused")
            path.unlink()
            k += 1
        c.close()

    def junk():
        with httpx.Client(timeout=60) as http:
            while time.monotonic() < deadline:
                r = http.post(url + "gradio_api/upload", files={"files": ("junk.bin", os.urandom(4 * 2**20))})
                count(f"junk uploads {r.status_code}")

    def trainer():
        c = Client(url, verbose=False)
        while time.monotonic() < deadline:
            try:
                c.predict("lstm", 16, 1, 0.002, 32, 1.0, dataset, "abuse", api_name="/train_start")
                time.sleep(1.0)
                c.predict(api_name="/train_stop")
                count("runs started and stopped")
                while "**running**" in c.predict(api_name="/train_refresh")[0] and time.monotonic() < deadline + 30:
                    time.sleep(0.2)
            except Exception:
                count("train errors")
        c.close()

    def strings():
        big = "x" * (10 * 2**20)
        with httpx.Client(timeout=60) as http:
            while time.monotonic() < deadline:
                for data in ([big, "7", 1.0, 0], [MODEL, "y" * 300, 1.0, 0], [MODEL, "7", 1.0, int("9" * 401)]):
                    r = http.post(url + "gradio_api/call/generate", json={"data": data})
                    count(f"hostile strings {r.status_code}")

    peak = defaultdict(int)

    def monitor():  # the most each folder held during the loop
        while time.monotonic() < deadline + 5:
            for name, folder in proc.dirs.items():
                try:
                    peak[name] = max(peak[name], _du(folder)[1])
                except OSError:  # a file went while it was counted
                    pass
            time.sleep(1.0)

    threads = [threading.Thread(target=f, daemon=True) for f in (uploader, junk, trainer, strings, monitor)]
    wall, _ = run_threads(threads, seconds + 90)
    disk = {name: dict(zip(("files", "bytes"), _du(folder)), peak_bytes=peak[name])
            for name, folder in proc.dirs.items()}
    runs = len(list(proc.dirs["runs"].glob("*.safetensors")))
    caps = {"runs": {"files": 2 * (training.MAX_RUNS + 1), "bytes": training.MAX_RUN_BYTES},  # checkpoint + log
            "uploads": {"files": uploads.MAX_UPLOADS, "bytes": uploads.MAX_UPLOADS * uploads.MAX_UPLOAD_BYTES},
            "cache": {"bytes": guard.MAX_UPLOAD_CACHE + 64 * 2**20}}  # uploads + the app's own files (gallery, exports)
    within = runs <= training.MAX_RUNS + 1 and all(max(disk[k]["bytes"], disk[k]["peak_bytes"]) <= caps[k]["bytes"]
                                                   for k in caps)
    return {"seconds": round(wall, 1), "counts": dict(sorted(counts.items())), "disk": disk, "run_checkpoints": runs,
            "caps": caps, "within_caps": within, "rss_mb": rss_mb(proc.pid)}


FLOOD_FLOOR_MS = 250.0  # a flooded Generate's p95 may always reach this (idle is ~25 ms since it left the queue)


def flood_target_ms(f: dict) -> float:
    """The stated bound on the victim's p95 under a flood: twice its idle p95, or 250 ms, whichever
    is more (with Generate answered directly, idle is so short that the flood's own requests, which
    share the server's one event loop, weigh more than the one Generate of the flood it may wait for)."""
    return max(2 * f["idle_p95_ms"], FLOOD_FLOOR_MS)


def report_hostile(res: dict):
    for f in res.get("floods", []):
        print(f"flood ({f['flood']}): the victim's Generate p50 / p95 {f['idle_p50_ms']:.0f} / {f['idle_p95_ms']:.0f} "
              f"ms idle, {f['flood_p50_ms']:.0f} / {f['flood_p95_ms']:.0f} ms flooded (p95 ratio {f['p95_ratio']:.2f}; "
              f"target: p95 <= {flood_target_ms(f):.0f} ms), {f['victim_refused']} of its {f['victim_requests']} refused; "
              f"the flood's requests "
              f"by HTTP status: {f['flood_requests']}")
    if "hostile_uploads" in res:
        h = res["hostile_uploads"]
        print(f"hostile uploads: {h['files']} files ({h['refused']} refused); server RSS {h['rss_before_mb']} -> "
              f"{h['rss_after_mb']} MB, peak {h['rss_peak_mb']} MB (target <= 1536 MB)")
    if "abuse" in res:
        a = res["abuse"]
        print(f"abuse loop ({a['seconds']:.0f} s): {a['counts']}")
        for name, d in a["disk"].items():
            cap = a["caps"].get(name, {})
            print(f"  {name:8s} after: {d['files']:5d} files {d['bytes'] / 2**20:7.1f} MB; most during the loop "
                  f"{d['peak_bytes'] / 2**20:7.1f} MB   cap {cap.get('files', '-')} files, "
                  f"{cap.get('bytes', 0) / 2**20:.0f} MB")
        print(f"  run checkpoints {a['run_checkpoints']}; within the caps: {a['within_caps']}; "
              f"server RSS {a['rss_mb']['VmRSS']} MB (peak {a['rss_mb']['VmHWM']} MB)")


def _step_line(status: str) -> str:
    return next((line for line in status.split("  \n") if line.startswith("step ")), status[:80])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    ap.add_argument("--scrubs", type=int, default=10, help="scrub steps after each Generate")
    ap.add_argument("--think", type=float, default=0.1, help="seconds between a visitor's actions")
    ap.add_argument("--scrub-http", action="store_true",
                    help="scrub with plain HTTP posts as the browser does (gradio_client costs the "
                         "simulated users far more CPU than the server spends)")
    ap.add_argument("--checkpoint-dir", default=str(ROOT / "checkpoints"))
    ap.add_argument("--train-dataset", default=str(FIXTURE), help="dataset of the background training run")
    ap.add_argument("--no-train", action="store_true", help="no training run during the test")
    ap.add_argument("--waves", type=int, default=1,
                    help="run the users this many times, each time as new sessions (memory after each)")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds to wait before each memory reading")
    ap.add_argument("--json", default=None, help="also write the figures here")
    ap.add_argument("--hostile", action="store_true",
                    help="instead of the visitors: a flood of Generate from one session (another visitor's p95 "
                         "against idle), the server's RSS through the hostile uploads, and the abuse loop")
    ap.add_argument("--abuse-seconds", type=float, default=60.0, help="length of the abuse loop (--hostile)")
    ap.add_argument("--floods-only", action="store_true", help="--hostile: the floods only (no uploads, no abuse loop)")
    args = ap.parse_args(argv)
    if not (1 <= args.users <= 200 and 1 <= args.duration <= 3600 and 1 <= args.waves <= 20):
        raise SystemExit("error: --users must be in [1, 200], --duration in [1, 3600] s, --waves in [1, 20]")

    ckpts = checkpoint_dir(args)
    log = Path(tempfile.mkdtemp(prefix="rnnviz-load-")) / "server.log"
    # --hostile: the server believes one proxy's X-Forwarded-For (the "behind one proxy" flood)
    proc = start_server(ckpts, args.train_dataset, free_port(), log,
                        {"RNNVIZ_FORWARDED_HOPS": "1"} if args.hostile else None)
    url = f"http://127.0.0.1:{proc.args[proc.args.index('--port') + 1]}/"
    if args.hostile:
        return hostile_main(args, proc, url, log)
    try:
        training = None
        if not args.no_train:
            minutes = args.waves * (args.duration + args.settle + 10) / 60 + 1
            training = {"before": _step_line(start_training(url, args.train_dataset, minutes))}
        before = rss_mb(proc.pid)["VmRSS"]
        cpu0, t0 = (cpu_seconds(proc.pid), cpu_seconds()), time.perf_counter()
        tally, waves = Tally(), []
        for _ in range(args.waves):
            res = run_visitors(url, args.users, args.duration, args.scrubs, args.think, args.scrub_http, tally)
            after = rss_mb(proc.pid)["VmRSS"]
            time.sleep(args.settle)
            waves.append({"after": after, "settled": rss_mb(proc.pid)["VmRSS"]})
        res["cpu_s"] = {"server": round(cpu_seconds(proc.pid) - cpu0[0], 1),
                        "clients": round(cpu_seconds() - cpu0[1], 1)}
        res.update(duration_s=args.duration * args.waves, wall_s=round(time.perf_counter() - t0, 1),
                   sessions=args.users * args.waves)
        res["memory_mb"] = {"before": before, "waves": waves, "peak": rss_mb(proc.pid)["VmHWM"]}
        res["settle_s"] = args.settle
        if training is not None:
            training["after"] = _step_line(train_status(url, stop=True))
            res["training"] = training
        res["load_average"] = os.getloadavg()
    finally:
        stop_server(proc)
    tracebacks = log.read_text(errors="replace").count("Traceback")
    res["server_tracebacks"] = tracebacks
    report(res)
    print(f"server log: {log} ({tracebacks} tracebacks)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return 1 if res["errors"] else 0


def hostile_main(args, proc, url: str, log: Path) -> int:
    try:
        res = {"floods": [flood(url, kind) for kind in FLOODS],
               "date": time.strftime("%Y-%m-%d %H:%M"), "load_average": os.getloadavg()}
        if not args.floods_only:
            res.update(hostile_uploads=hostile_uploads(url, proc.pid),
                       abuse=abuse(url, proc, args.train_dataset, args.abuse_seconds))
    finally:
        stop_server(proc)
    text = log.read_text(errors="replace")
    res["server_log"] = {"bytes": len(text.encode()), "longest_line": max((len(x) for x in text.splitlines()), default=0),
                         "unhandled": sum(1 for chunk in text.split("Traceback (most recent call last):")[1:]
                                          if "gradio.exceptions.Error" not in chunk.strip().splitlines()[-1])}
    report_hostile(res)
    print(f"server log: {log} ({res['server_log']['bytes']} bytes, longest line {res['server_log']['longest_line']} "
          f"characters, {res['server_log']['unhandled']} unhandled exceptions)")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2, default=str))
    print(f"{res['date']}, {os.cpu_count()} CPUs, load average {res['load_average'][0]:.1f} (1 min, other "
          "processes included)")
    ok = all(f["flood_p95_ms"] <= flood_target_ms(f) and not f["victim_refused"] for f in res["floods"])
    if not args.floods_only:
        ok = ok and res["abuse"]["within_caps"] and res["hostile_uploads"]["rss_peak_mb"] <= 1536
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
