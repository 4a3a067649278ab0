"""Visitors' checkpoints (rnnviz/app/uploads.py, issue 23): each upload is owned by its session and
counted against its client's share; another visitor's uploads never evict it; the store and the
disk being full are said in a sentence; a killed server's partial copies and (private) uploads are
gone when the next one starts.
"""

from __future__ import annotations

import errno
import json
from pathlib import Path

import httpx
import pytest
import torch

from rnnviz import ModelConfig, RowModel, save_checkpoint
from rnnviz.app import uploads
from rnnviz.app.inputs import InputError
from rnnviz.app.registry import Registry
from rnnviz.app.operations import Explorer
from rnnviz.app.uploads import Owner, UploadStore

from .apps import call_result, served, tiny_checkpoints

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
    with served(ex) as url:
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
    with served(ex) as url, httpx.Client(timeout=60) as http:
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
