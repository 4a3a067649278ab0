"""Visitors' checkpoints (rnnviz/app/uploads.py): every hostile file (tests/hostile.py) refused with
its reason and nothing stored, a good one listed for its session only, sizes and names bounded, text
from its metadata escaped wherever shown; each upload is owned by its session and
counted against its client's share; another visitor's uploads never evict it; the store and the
disk being full are said in a sentence; a killed server's partial copies and (private) uploads are
gone when the next one starts.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import torch

from rnnviz import ModelConfig, RowModel, save_checkpoint
from rnnviz.app import inputs, uploads
from rnnviz.app.inputs import InputError
from rnnviz.app.operations import Explorer
from rnnviz.app.registry import Registry
from rnnviz.app.uploads import Owner, UploadStore
from tests import ROOT
from tests.app import App, call_result, serving, tiny_checkpoints, unhandled
from tests.hostile import APP_CASES, HOSTILE_NAMES, claims, hostile

SMALL = ModelConfig(hidden=8, head_hidden=16)
FILE_META = {"_type": "gradio.FileData"}


def _checkpoints(folder: Path, n: int, prefix: str = "m") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k in range(n):
        torch.manual_seed(k)
        out.append(save_checkpoint(folder / f"{prefix}{k}.safetensors", RowModel(SMALL)))
    return out


def _upload(http: httpx.Client, url: str, path: Path, session: str) -> tuple[str, object]:
    """Upload ``path`` and add it to the model list of ``session``, as a script would (raw HTTP)."""
    r = http.post(f"{url}gradio_api/upload", files={"files": (path.name, path.read_bytes())})
    if r.status_code != 200:
        return "refused", r.text[:300]
    file = {"path": r.json()[0], "orig_name": path.name, "meta": FILE_META}
    r = http.post(f"{url}gradio_api/call/upload_checkpoint", json={"data": [file], "session_hash": session})
    if r.status_code != 200:
        return "refused", r.json()["error"]
    kind, data, text = call_result(url, "upload_checkpoint", r.json()["event_id"])
    if kind == "complete":
        return "ok", data
    assert isinstance(data, dict) and data.get("error"), f"an unhandled error: {text[:300]}"
    return "error", data["error"]


def _local(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=60)


def test_twenty_uploads_from_a_second_client_leave_the_first_clients_checkpoint_usable(tmp_path):
    ck = tiny_checkpoints(tmp_path / "ck", {"mnist_lstm": ModelConfig(hidden=16, head_hidden=32)})
    ex = Explorer(ck, tmp_path / "runs", uploads_dir=tmp_path / "uploads")
    mine, = _checkpoints(tmp_path / "victim", 1, "victim")
    theirs = _checkpoints(tmp_path / "attacker", 20, "spam")
    with serving(ex) as url:
        with _local("127.0.0.7") as victim:
            status, (dropdown, _) = _upload(victim, url, mine, "victim-session")
            assert status == "ok", dropdown
            key = dropdown["value"]
        outcomes = []
        with _local("127.0.0.8") as attacker:
            for k, path in enumerate(theirs):  # a new session each time, never closed
                outcomes.append(_upload(attacker, url, path, f"attacker-{k}"))
        with _local("127.0.0.7") as victim:
            r = victim.post(f"{url}gradio_api/call/generate", json={"data": [key, "3", 1.0, 0],
                                                                    "session_hash": "victim-session"})
            kind, data, text = call_result(url, "generate", r.json()["event_id"])
    assert kind == "complete" and "digit **3**" in data[0], text[:300]
    stored = [o for o in outcomes if o[0] == "ok"]
    refused = [str(o[1]) for o in outcomes if o[0] != "ok"]
    assert 1 <= len(stored) <= uploads.MAX_UPLOADS_PER_CLIENT and len(refused) == 20 - len(stored)
    # refused: its share is full, or (new sessions while another visitor is served) too many new sessions
    assert all("already keeps" in m or m.startswith("busy:") for m in refused), refused[:3]
    assert any("already keeps" in m for m in refused)
    assert ex.registry.get(key).path.exists()


def test_a_session_replaces_its_own_oldest_never_anothers(tmp_path):
    files = _checkpoints(tmp_path / "src", 12)
    store = UploadStore(tmp_path / "up", max_files=10, per_client=4)

    def names() -> list[str]:
        return sorted(p.name.split("_")[0] for p in (tmp_path / "up").iterdir())

    a, b, c = (Owner("10.0.0.1", s) for s in "abc")  # three sessions (tabs) of one address
    store.add(files[0], "m0.safetensors", a)
    for k in (1, 2, 3):
        store.add(files[k], f"m{k}.safetensors", b)
    with pytest.raises(InputError, match="this address already keeps 4"):  # c has none of its own to replace
        store.add(files[4], "m4.safetensors", c)
    store.add(files[5], "m5.safetensors", b)  # b's own oldest (m1) makes room; a's m0 stays
    assert names() == ["m0", "m2", "m3", "m5"]
    for k in range(6):  # three other addresses, two each: the folder's ten are taken
        store.add(files[6 + k // 2] if k % 2 == 0 else files[9 + k // 2], f"o{k}.safetensors",
                  Owner(f"10.0.1.{k // 2}", "s"))
    assert len(names()) == 10
    with pytest.raises(InputError, match="keeps at most 10 uploaded checkpoints and is full"):
        store.add(files[4], "m4.safetensors", Owner("10.0.2.1", "new"))
    assert len(names()) == 10 and "m0" in names()


def test_a_private_servers_leftovers_are_removed_when_it_starts(tmp_path):
    folder = tmp_path / "uploads"
    folder.mkdir()
    (folder / ".upload.abc123.tmp").write_bytes(b"\0" * 1000)  # a copy the last server was killed in
    leftover = save_checkpoint(folder / "old_0123abcd.safetensors", RowModel(SMALL))
    Registry({"upload": folder}, public_uploads=True)
    UploadStore(folder)
    assert leftover.exists() and not (folder / ".upload.abc123.tmp").exists()  # public: uploads stay
    Registry({"upload": folder})
    assert not leftover.exists()  # private: nobody could be shown it again


def test_a_full_disk_while_storing_an_upload_says_so(tmp_path, monkeypatch):
    ck = tiny_checkpoints(tmp_path / "ck", {"mnist_lstm": ModelConfig(hidden=16, head_hidden=32)})
    ex = Explorer(ck, tmp_path / "runs", uploads_dir=tmp_path / "uploads")
    good, = _checkpoints(tmp_path / "src", 1)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(uploads.shutil, "copyfileobj", full)
    with serving(ex) as url, httpx.Client(timeout=60) as http:
        status, message = _upload(http, url, good, "s")
        assert status == "error" and "disk is full" in message and str(tmp_path) not in message, message
        monkeypatch.setattr("gradio.route_utils.NamedTemporaryFile", full)  # Gradio writing the upload itself
        r = http.post(f"{url}gradio_api/upload", files={"files": ("x.safetensors", good.read_bytes())})
        assert r.status_code == 507 and "disk is full" in r.json()["error"], r.text[:300]
    assert not list((tmp_path / "uploads").glob("*.tmp"))


def test_the_message_names_no_server_path(tmp_path):
    e = OSError(errno.EACCES, "Permission denied", str(tmp_path / "x"))
    assert str(tmp_path) not in uploads.disk_message(e, "x.safetensors")
    assert json.dumps(uploads.disk_message(OSError(errno.ENOSPC, "full"), "f")).count("disk is full") == 1


def test_an_upload_is_parsed_once_and_loaded_once(tmp_path, monkeypatch):
    """Adding an upload, listing it and showing its model read the file's header once and its tensors
    once: the model checked on arrival is the one the registry serves."""
    from rnnviz import checkpoint

    ex = Explorer(tiny_checkpoints(tmp_path / "ck", {"mnist_lstm": SMALL}), tmp_path / "runs",
                  uploads_dir=tmp_path / "uploads")
    ex.registry.choices()  # the shipped checkpoint's header is read before counting
    src = save_checkpoint(tmp_path / "src" / "mine.safetensors", RowModel(SMALL))
    counts = {"header": 0, "tensors": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            counts[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(checkpoint, "read_header", counted("header", checkpoint.read_header))
    monkeypatch.setattr(checkpoint, "safe_open", counted("tensors", checkpoint.safe_open))
    entry = ex.add_upload(src, "mine.safetensors", "visitor")  # what the page's upload handler does next:
    assert entry.key in [key for _, key in ex.registry.choices("visitor")]
    shown, model = ex.model(entry.key)
    assert shown == entry and model is ex.model(entry.key)[1]
    assert counts == {"header": 1, "tensors": 1}


# ---- hostile and good uploads through the app (tests/hostile.py) ---------------------------------
@pytest.mark.parametrize("case", APP_CASES)
def test_each_hostile_upload_is_refused_with_its_reason(app, tmp_path, case, capfd):
    from gradio_client import handle_file

    path, match = hostile(tmp_path, case)
    before = app.uploaded()
    status, message = app.call("/upload_checkpoint", handle_file(str(path)))
    assert status == "error" and re.search(match, message), message
    assert f"{case}.safetensors" in message and os.environ["GRADIO_TEMP_DIR"] not in message  # no server path
    assert app.uploaded() == before  # nothing was stored
    assert not (tmp_path / "PWNED").exists()  # the pickle never ran
    app.generate_works()  # and the app keeps serving
    assert not unhandled(capfd.readouterr().err)


def test_a_good_upload_joins_the_model_list_and_generates(app, tmp_path):
    from gradio_client import handle_file

    path = save_checkpoint(tmp_path / "my model (v2).safetensors", RowModel(ModelConfig(cell="gru", hidden=16,
                                                                                         head_hidden=32)))
    status, (dropdown, info) = app.call("/upload_checkpoint", handle_file(str(path)))
    assert status == "ok" and "GRU" in info
    key = dropdown["value"]
    mine = app.ex.registry.choices(app.client.session_hash)  # listed for the uploading session only
    assert key.startswith("upload/my_model_v2_") and key in [k for _, k in mine]
    assert key not in [k for _, k in app.ex.registry.choices()] + [k for _, k in app.ex.registry.choices("other")]
    assert any("(uploaded)" in label for label, k in mine if k == key)
    stored = app.ex.registry.get(key).path
    assert stored.parent == app.ex.uploads.folder and stored.read_bytes() == path.read_bytes()
    status, out = app.call("/generate", key, "3", 1.0, 0)
    assert status == "ok" and "digit **3**" in out[0]
    again = app.call("/upload_checkpoint", handle_file(str(path)))[1][0]["value"]
    assert again == key and len([n for n in app.uploaded() if n.startswith("my_model")]) == 1  # same file, kept once


def test_uploads_other_than_safetensors_are_refused(app, tmp_path):
    from gradio_client import handle_file

    pt = tmp_path / "model.pt"
    torch.save(RowModel(SMALL).state_dict(), pt)
    status, message = app.call("/upload_checkpoint", handle_file(str(pt)))
    assert status == "error" and ".safetensors" in message
    app.generate_works()


def test_upload_size_is_limited_by_the_server_and_the_handler(app, tmp_path):
    big = tmp_path / "big.safetensors"
    with open(big, "wb") as f:
        f.truncate(uploads.MAX_UPLOAD_BYTES + 1024)  # sparse: quick to make
    with open(big, "rb") as f:
        r = httpx.post(f"{app.url}gradio_api/upload", files={"files": (big.name, f)}, timeout=120)
    assert r.status_code == 413
    store = uploads.UploadStore(tmp_path / "up", max_bytes=1000)
    good = save_checkpoint(tmp_path / "good.safetensors", RowModel(SMALL))
    with pytest.raises(inputs.InputError, match="over the 1000 bytes upload limit"):
        store.add(good, "good.safetensors")
    assert not (tmp_path / "up").exists()
    app.generate_works()


def test_an_upload_cannot_point_at_a_server_file(app):
    """A FileData naming a file on the server (not one uploaded) is refused with a message before
    Gradio reads it (Gradio's own InvalidPathError had no message and a traceback in the log)."""
    for target in ("/etc/passwd", str(app.ex.registry.get("shipped/mnist_lstm").path)):
        file_data = json.dumps({"path": target, "meta": {"_type": "gradio.FileData"}})
        status, message = app.raw("/upload_checkpoint", '{"data": [' + file_data + ']}')
        assert status == "error" and "uploaded first" in message, message
    assert not any(n.startswith("mnist_lstm") for n in app.uploaded())


def test_uploads_are_bounded(tmp_path):
    store = uploads.UploadStore(tmp_path / "up", max_files=3)
    for k in range(5):
        torch.manual_seed(k)
        store.add(save_checkpoint(tmp_path / f"m{k}.safetensors", RowModel(SMALL)), f"m{k}.safetensors")
    assert sorted(p.name[:2] for p in (tmp_path / "up").iterdir()) == ["m2", "m3", "m4"]


def test_upload_names_cannot_leave_the_uploads_folder(tmp_path):
    good = save_checkpoint(tmp_path / "src" / "good.safetensors", RowModel(SMALL))
    store = uploads.UploadStore(tmp_path / "deep" / "uploads")
    before = {p for p in tmp_path.rglob("*")}
    with pytest.raises(inputs.InputError, match="only .safetensors"):
        store.add(good, None)
    for name in [n for n in HOSTILE_NAMES if n is not None]:
        stored = store.add(good, f"{name}.safetensors")
        assert stored.parent == store.folder and uploads.STORED.match(stored.name), stored
    created = {p for p in tmp_path.rglob("*")} - before
    assert created and all(p.parent == store.folder or p == store.folder or p == store.folder.parent for p in created)


def test_uploads_are_listed_only_for_the_session_that_made_them(app, tmp_path):
    from gradio_client import Client, handle_file

    path = save_checkpoint(tmp_path / "private.safetensors", RowModel(SMALL))
    other = Client(app.url, verbose=False)
    try:
        status, (dropdown, _) = app.call("/upload_checkpoint", handle_file(str(path)))
        key = dropdown["value"]
        assert status == "ok" and key in [k for _, k in dropdown["choices"]]
        mine, theirs = app.client.session_hash, other.session_hash
        assert key in [k for _, k in app.ex.registry.choices(mine)]
        assert key not in [k for _, k in app.ex.registry.choices(theirs)]
        stored = app.ex.registry.get(key).path
        app.ex.sessions.drop(mine)  # the tab closed (demo.unload)
        assert key not in [k for _, k in app.ex.registry.choices(mine)] and not stored.exists()
    finally:
        other.close()


def test_public_uploads_are_listed_for_everyone(tmp_path):
    from rnnviz.app.__main__ import make_explorer, parse_args

    path = save_checkpoint(tmp_path / "shared.safetensors", RowModel(SMALL))
    args = parse_args(["--public-uploads", "--checkpoint-dir", str(App.make_checkpoints(tmp_path / "ck")),
                       "--runs-dir", str(tmp_path / "runs" / "explorer")], root=tmp_path)
    ex = make_explorer(args)
    entry = ex.add_upload(path, "shared.safetensors", "visitor-a")
    assert entry.key in [k for _, k in ex.registry.choices("visitor-b")] + [k for _, k in ex.registry.choices()]
    ex.sessions.drop("visitor-a")
    assert entry.path.exists() and entry.key in [k for _, k in ex.registry.choices("visitor-b")]
    default = make_explorer(parse_args(["--checkpoint-dir", str(tmp_path / "ck"), "--runs-dir",
                                        str(tmp_path / "runs" / "explorer")], root=tmp_path))
    assert not default.registry.public_uploads
    help_text = subprocess.run([sys.executable, "-m", "rnnviz.app", "--help"], capture_output=True, text=True,
                               cwd=ROOT, check=True).stdout
    assert "--public-uploads" in help_text and "--open-training-controls" in help_text


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_a_model_over_the_explorer_budget_is_refused_from_the_header(app, tmp_path, capfd):
    before = _rss_mb()
    for i, cfg in enumerate([{"hidden": 4096, "layers": 8, "head_hidden": 8192, "num_classes": 1000},
                             {"hidden": 1024, "layers": 4, "head_hidden": 1024},  # each field in range, too many in all
                             {"num_classes": 1000}]):  # a small model of 1000 classes (Complete "auto" scores each)
        path = claims(tmp_path / f"bomb{i}.safetensors", **cfg)
        status, message = app.call("/upload_checkpoint", __import__("gradio_client").handle_file(str(path)))
        assert status == "error" and "limit" in message, message
    assert _rss_mb() - before < 300  # nothing the header claims was allocated (it was gigabytes)
    shipped = tmp_path / "shipped"  # the registry reads files in its folders within the same budget
    shipped.mkdir()
    claims(shipped / "big.safetensors", hidden=4096, layers=8, head_hidden=8192)
    reg = Registry({"shipped": shipped})
    assert reg.entries() == [] and "limit" in reg.problems[0] and str(tmp_path) not in reg.problems[0]
    assert not unhandled(capfd.readouterr().err)


EVIL = "<img src=x onerror=alert(1)> ![x](http://evil/) [click](http://evil/) <script>alert(2)</script>"


def test_text_from_a_checkpoints_metadata_is_escaped_wherever_shown(app, tmp_path):
    from gradio_client import handle_file

    from rnnviz.app.cards import model_summary
    from rnnviz.app.stepview import entry_json
    from rnnviz.site import STATIC

    path = save_checkpoint(tmp_path / "evil.safetensors", RowModel(SMALL),
                           {"dataset": EVIL, "test_nll_protocol": EVIL, "test_nll": 100.0})
    status, (dropdown, info) = app.call("/upload_checkpoint", handle_file(str(path)))
    assert status == "ok"
    entry = app.ex.registry.get(dropdown["value"])
    trace = app.ex.generate(entry.key, "3", 1.0, 0)[1][0]
    for text in (info, model_summary(entry.config, entry.metrics, entry.name)):  # Markdown: every sign escaped
        assert not re.search(r"(?<!\\)(<|!\[|\]\()", text), text
    # the page draws a column's title from this record as text (the view modules never set innerHTML)
    record = entry_json(entry.name, entry.config, entry.metrics)
    assert record["metrics"]["test_nll_protocol"] == EVIL[:200] and trace.steps == 28
    for js in STATIC.glob("*.js"):
        assert "innerHTML" not in js.read_text(encoding="utf-8"), js.name
