"""``rnnviz-explorer`` and explorer.py (rnnviz/app/__main__.py): options and environment, where it
binds (loopback unless told), where it finds checkpoints, and its training policy (off on a Space
by default; pause and stop belong to the starter off loopback)."""

from pathlib import Path

import pytest

from rnnviz import ModelConfig
from rnnviz.app.training import TrainingRefused
from tests import FIXTURE, ROOT
from tests.app import make_checkpoints


def test_binds_to_loopback_unless_told(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import explorer

    for var in ("GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "SYSTEM"):
        monkeypatch.delenv(var, raising=False)
    args = explorer.parse_args([])
    assert args.host == "127.0.0.1" and args.port == 7860 and args.share is False


# the checkpoints of tests/app/test_tabs.py: three models and a broken file
CHECKPOINTS = {"mnist_lstm": ModelConfig(hidden=32, head_hidden=64),
               "mnist_gru": ModelConfig(cell="gru", hidden=32, head_hidden=64),
               "deep_rnn": ModelConfig(cell="rnn", hidden=16, layers=2, head_hidden=32),
               "broken": b"not a checkpoint"}


def test_training_is_off_on_a_space_by_default(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(ROOT))
    import explorer

    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.delenv("RNNVIZ_ALLOW_TRAINING", raising=False)
    args = explorer.parse_args(["--checkpoint-dir", str(tmp_path), "--runs-dir", str(tmp_path / "runs"),
                                "--train-dataset", str(FIXTURE)])
    ex = explorer.make_explorer(args)
    assert not ex.training.enabled and ex.training.max_minutes == 15.0
    with pytest.raises(TrainingRefused, match="turned off"):
        ex.training.start("visitor", "lstm", 16, 1, 0.002, 32, 0.1, None)
    monkeypatch.setenv("RNNVIZ_ALLOW_TRAINING", "1")
    ex = explorer.make_explorer(args)
    assert ex.training.enabled and ex.training.owner_only and ex.training.max_minutes == 15.0


def test_pause_and_stop_belong_to_the_starter_off_loopback(monkeypatch):
    from rnnviz.app.__main__ import training_policy

    env = {}
    assert training_policy(env, "127.0.0.1")[2] is False
    assert training_policy(env, "localhost")[2] is False
    assert training_policy(env, "0.0.0.0")[2] is True
    assert training_policy(env, "192.168.1.5")[2] is True
    assert training_policy(env, "127.0.0.1", share=True)[2] is True
    assert training_policy(env, "0.0.0.0", open_controls=True)[2] is False
    assert training_policy({"SYSTEM": "spaces", "RNNVIZ_ALLOW_TRAINING": "1"}, "0.0.0.0")[2] is True


def test_explorer_options_and_environment(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import explorer

    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "9999")
    monkeypatch.setenv("RNNVIZ_TRAIN_DATASET", "x.npz")
    args = explorer.parse_args([])
    assert (args.host, args.port, args.train_dataset, args.share) == ("0.0.0.0", 9999, "x.npz", False)
    args = explorer.parse_args(["--host", "127.0.0.1", "--port", "7000", "--share"])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7000, True)
    assert explorer.training_policy({})[0] is True
    enabled, reason, owner_only = explorer.training_policy({"SYSTEM": "spaces"})
    assert not enabled and "RNNVIZ_ALLOW_TRAINING" in reason and owner_only
    assert explorer.training_policy({"SYSTEM": "spaces", "RNNVIZ_ALLOW_TRAINING": "1"})[0] is True


def test_explorer_main_launches_where_asked(monkeypatch, tmp_path, capsys):
    import gradio as gr

    monkeypatch.syspath_prepend(str(ROOT))
    import explorer

    calls = []
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: calls.append(kw))
    ckpts = make_checkpoints(tmp_path / "ck", CHECKPOINTS, {"test_nll": 543.2, "dataset": "test"})
    (ckpts / "mnist_lstm.safetensors").unlink()  # the default is missing: another one is used
    monkeypatch.delenv("SYSTEM", raising=False)
    explorer.main(["--checkpoint-dir", str(ckpts), "--runs-dir", str(tmp_path / "runs"), "--port", "7999"])
    out = capsys.readouterr()
    assert "http://127.0.0.1:7999" in out.out and "not found; using shipped/" in out.err
    assert calls[-1]["server_name"] == "127.0.0.1" and calls[-1]["server_port"] == 7999
    assert calls[-1]["run_history"] is False and "head" in calls[-1] and "css" in calls[-1]
    monkeypatch.setenv("SYSTEM", "spaces")
    explorer.main(["--checkpoint-dir", str(ckpts), "--runs-dir", str(tmp_path / "runs")])
    assert "server_name" not in calls[-1] and "server_port" not in calls[-1]  # the Space's settings apply


def test_rnnviz_explorer_finds_checkpoints_where_a_user_expects(monkeypatch, tmp_path):
    """``rnnviz-explorer`` reads ./checkpoints where it is started; in a folder without one, a
    source checkout's checkpoints/ (an editable install); ``python explorer.py`` always its own."""
    from rnnviz.app import __main__ as cli

    monkeypatch.syspath_prepend(str(ROOT))
    import explorer

    (tmp_path / "here" / "checkpoints").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "here")
    assert Path(cli.parse_args([]).checkpoint_dir) == tmp_path / "here" / "checkpoints"
    assert Path(cli.parse_args([]).runs_dir) == tmp_path / "here" / "runs" / "explorer"
    assert Path(explorer.parse_args([]).checkpoint_dir) == ROOT / "checkpoints"
    monkeypatch.chdir(tmp_path)
    assert Path(cli.parse_args([]).checkpoint_dir) == ROOT / "checkpoints"  # this checkout's
    monkeypatch.setattr(cli, "CHECKOUT", tmp_path / "site-packages")  # an installed wheel: no checkout
    assert Path(cli.parse_args([]).checkpoint_dir) == tmp_path / "checkpoints"
