"""rnnviz explorer: watch an LSTM, GRU or RNN write MNIST digits row by row.

    rnnviz-explorer                         # http://127.0.0.1:7860, the LSTM in ./checkpoints
    python explorer.py                      # the same from a checkout (its checkpoints/ folder)
    rnnviz-explorer --port 8000 --share     # another port, and a public *.gradio.live link

Checkpoints: --checkpoint-dir, else ./checkpoints, else the checkout's checkpoints/ (an editable
install); the wheel ships no weights. With none, the page says how to train or upload one.
GRADIO_SERVER_NAME and GRADIO_SERVER_PORT set the defaults of --host and --port. On a Hugging Face
Space (SYSTEM=spaces) the Space's own settings apply and training is off unless
RNNVIZ_ALLOW_TRAINING=1. The Train tab trains on MNIST (--train-dataset or RNNVIZ_TRAIN_DATASET
to change it, e.g. to a .npz file with x_train, y_train, x_test, y_test).

A public server: an uploaded checkpoint is listed only for the visitor who uploaded it
(--public-uploads lists it for everyone), and only a run's starter may pause or stop it whenever
the app serves anything other than loopback (--open-training-controls lets anyone). Each client
address may have --max-pending jobs waiting or running; behind a proxy on another machine, say how
many proxies set X-Forwarded-For with --trust-forwarded (a Space's: 1, the default there; a proxy
on this machine needs nothing: uvicorn already reads the header from 127.0.0.1 and ::1).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]  # the source tree, when rnnviz is not installed as a wheel


def default_root() -> Path:
    """The folder whose checkpoints/ and runs/ the explorer uses by default: the current folder if
    it has checkpoints/, else the source checkout if this is one, else the current folder."""
    here = Path.cwd()
    if (here / "checkpoints").is_dir() or not (CHECKOUT / "checkpoints").is_dir():
        return here
    return CHECKOUT


def parse_args(argv=None, root: Path | None = None) -> argparse.Namespace:
    root = default_root() if root is None else Path(root)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                    help="address to bind (default: $GRADIO_SERVER_NAME or 127.0.0.1; 0.0.0.0 for all)")
    ap.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                    help="port (default: $GRADIO_SERVER_PORT or 7860)")
    ap.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    ap.add_argument("--checkpoint-dir", default=str(root / "checkpoints"),
                    help=f"folder of shipped checkpoints (*.safetensors; mnist_lstm is the default model; "
                         f"default {root / 'checkpoints'})")
    ap.add_argument("--runs-dir", default=str(root / "runs" / "explorer"),
                    help="where runs started in the Train tab save their checkpoints")
    ap.add_argument("--train-dataset", default=os.environ.get("RNNVIZ_TRAIN_DATASET", "mnist"),
                    help="dataset for the Train tab: mnist, fashionmnist, kmnist or a .npz path "
                         "(default: $RNNVIZ_TRAIN_DATASET or mnist)")
    ap.add_argument("--data-root", default=None, help="folder holding MNIST/ (default: $RNNVIZ_DATA or ./data)")
    ap.add_argument("--max-train-minutes", type=float, default=None,
                    help="longest training run a visitor may ask for (default 120, 15 on Spaces)")
    ap.add_argument("--public-uploads", action="store_true",
                    help="list every uploaded checkpoint for every visitor (default: an upload is listed only "
                         "for the browser session that uploaded it, and removed when that session ends)")
    ap.add_argument("--open-training-controls", action="store_true",
                    help="let any visitor pause or stop the training run (default: only its starter may, "
                         "whenever the app serves anything other than loopback: --host 0.0.0.0, --share, a Space)")
    ap.add_argument("--trust-forwarded", type=int, default=None, metavar="N",
                    help="proxies in front of the server that set X-Forwarded-For: a client is then the address "
                         "the N-th from the right names (default: $RNNVIZ_FORWARDED_HOPS, 1 on a Space, else 0: "
                         "the address that connected)")
    ap.add_argument("--max-pending", type=int, default=None, metavar="N",
                    help="jobs one client address may have waiting or running, whatever its sessions "
                         "(default: $RNNVIZ_MAX_PENDING or 8; raise it for many visitors behind one address)")
    args = ap.parse_args(argv)
    if args.trust_forwarded is not None and args.trust_forwarded < 0 or args.max_pending is not None and \
            args.max_pending < 1:
        ap.error("--trust-forwarded must be >= 0 and --max-pending >= 1")
    return args


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serves_network(host: str | None, share: bool = False, env=os.environ) -> bool:
    """Whether visitors other than this machine's can reach the app."""
    return env.get("SYSTEM") == "spaces" or bool(share) or (host or "") not in LOOPBACK and \
        not str(host or "").startswith("127.")


def training_policy(env=os.environ, host: str = "127.0.0.1", share: bool = False,
                    open_controls: bool = False) -> tuple[bool, str, bool]:
    """(enabled, reason when disabled, only the starter may control the run). Pause and stop belong
    to the run's starter whenever the app serves a network, unless ``open_controls``."""
    on_spaces = env.get("SYSTEM") == "spaces"
    owner_only = serves_network(host, share, env) and not open_controls
    if on_spaces and env.get("RNNVIZ_ALLOW_TRAINING") != "1":
        return False, ("Training is turned off on this public Space (it would share 2 CPUs among all "
                       "visitors). Run the explorer on your own machine to train, or set the Space "
                       "variable RNNVIZ_ALLOW_TRAINING=1."), owner_only
    return True, "", owner_only


def make_explorer(args):
    from .operations import Explorer, TrainingService

    enabled, reason, owner_only = training_policy(os.environ, getattr(args, "host", "127.0.0.1"),
                                                  getattr(args, "share", False),
                                                  getattr(args, "open_training_controls", False))
    on_spaces = os.environ.get("SYSTEM") == "spaces"
    max_minutes = args.max_train_minutes or (15.0 if on_spaces else 120.0)
    training = TrainingService(Path(args.runs_dir), default_dataset=args.train_dataset, data_root=args.data_root,
                               enabled=enabled, disabled_reason=reason, owner_only=owner_only,
                               max_minutes=max_minutes)
    return Explorer(args.checkpoint_dir, args.runs_dir, training=training,
                    public_uploads=getattr(args, "public_uploads", False))


def main(argv=None, root: Path | None = None):
    """Serve the explorer until Ctrl+C (``root``: the folder of checkpoints/ and runs/ by default)."""
    args = parse_args(argv, root)
    from . import guard
    from .ui import build_app, launch_options

    guard.configure(forwarded_hops=args.trust_forwarded, max_pending=args.max_pending)
    ex = make_explorer(args)
    key = ex.registry.default_key()
    for problem in ex.registry.problems:
        print(f"warning: skipped {problem}", file=sys.stderr)
    if key is None:
        print(f"warning: {ex.no_checkpoint_message()}", file=sys.stderr)
    elif key != f"shipped/{ex.registry.default_name}":
        print(f"note: {args.checkpoint_dir}/{ex.registry.default_name}.safetensors not found; using {key}",
              file=sys.stderr)
    else:
        ex.model(key)  # load it now, so the first page is quick
    demo = build_app(ex)
    try:
        if os.environ.get("SYSTEM") == "spaces":  # the Space sets GRADIO_SERVER_NAME/PORT itself
            demo.launch(**launch_options())
        else:
            shown = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
            print(f"rnnviz explorer: http://{shown}:{args.port}  (Ctrl+C to stop)", flush=True)
            demo.launch(server_name=args.host, server_port=args.port, share=args.share, **launch_options())
    except OSError as e:
        raise SystemExit(f"error: cannot serve on {args.host}:{args.port}: {e}. Try --port 7861.")
    finally:
        ex.training.shutdown()


if __name__ == "__main__":
    main()
