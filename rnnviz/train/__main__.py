"""The command line: ``python -m rnnviz.train`` or ``rnnviz-train``, also as one worker of torchrun.

    python -m rnnviz.train --cell lstm --hidden 256 --layers 1 --minutes 60 \\
        --out checkpoints/mnist_lstm.safetensors
    torchrun --standalone --nproc-per-node 2 -m rnnviz.train ... --out runs/ddp.safetensors

The flags are ``ModelConfig``'s and ``TrainConfig``'s (``rnnviz.train.config``), with their defaults.
"""

from __future__ import annotations

import argparse
import signal
import sys

from .. import checkpoint as ckpt
from ..distributed import World, is_peer_failure
from .config import HelpFormatter, add_model_flags, add_train_flags, model_config, train_config
from .loop import Trainer


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="rnnviz-train", formatter_class=HelpFormatter,
                                 description="Train a row-by-row recurrent image model "
                                             "(under torchrun: one model on every worker, with DDP).")
    add_model_flags(ap)
    add_train_flags(ap).add_argument("--resume", default=None, metavar="CHECKPOINT",
                                     help="checkpoint to continue from (weights, optimizer, step; any world size)")
    return ap


def _last_checkpoint(out: str) -> str:
    """'<out> (step N)' if a loadable checkpoint is there, else a sentence saying there is none."""
    try:
        step = ckpt.read_metadata(out)["metrics"].get("step")
        return f"the last checkpoint, {out} (step {step}), is kept and loads; continue with --resume {out}"
    except (ckpt.CheckpointError, OSError):
        return f"no checkpoint was written to {out}"


def _leave(text: str):
    """End a torchrun worker with ``text``, printed at once: torchrun's SIGTERM may follow within
    a fraction of a second, and a message left for the interpreter's exit would be lost."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    print("\n" + text, file=sys.stderr, flush=True)  # after the progress bar's line
    raise SystemExit(1)


def _stop_on_sigterm(world: World, out: str):
    """torchrun ends every worker with SIGTERM when one of them fails: say so, and leave cleanly
    (a checkpoint being written is abandoned, the previous file stays)."""
    def handler(signum, frame):
        _leave(f"rank {world.rank}/{world.size}: stopped by torchrun (another worker failed or the job "
               f"was cancelled); {_last_checkpoint(out)}")

    signal.signal(signal.SIGTERM, handler)


def main(argv=None):
    args = parser().parse_args(argv)
    world = World()
    try:
        world = World.from_env()
        mc, tc = model_config(args), train_config(args)
        if args.init_from and args.resume:
            raise ValueError("give --resume (continue a run) or --init-from (start a new one from its weights), not both")
        if world.distributed:
            _stop_on_sigterm(world, args.out)
            world.start(args.device)
        trainer = Trainer(mc, tc, resume=args.resume, world=world)
        try:
            metrics = trainer.run(progress_bar=True)
        finally:
            world.close()
    except (ValueError, OSError, RuntimeError) as e:
        if world.distributed and is_peer_failure(e):
            _leave(f"rank {world.rank}/{world.size}: another worker stopped, so the run ends here "
                   f"({type(e).__name__}: {str(e).splitlines()[0][:200]}); {_last_checkpoint(args.out)}")
        raise SystemExit(f"error: {e}")
    snap = trainer.snapshot()
    if world.main:
        _report(trainer, snap, metrics, world)
    if snap["state"] == "failed":
        raise SystemExit(1)


def _report(trainer: Trainer, snap: dict, metrics: dict, world: World):
    """How the run ended, and its best model's scores with --keep-best."""
    print(f"{snap['state']}: {snap['message']}; step {metrics['step']}, "
          f"{metrics['train_seconds']:.0f} s, test NLL {metrics.get('test_nll')}"
          + (f", {world.size} workers, global batch {metrics['global_batch']}" if world.distributed else ""))
    best = trainer.best_path() if trainer.config.keep_best else None
    if best is not None and best.exists():
        m = ckpt.read_metadata(best)["metrics"]
        print(f"best: {best} (step {m.get('step')}, validation NLL {m.get('val_nll')}, test NLL {m.get('test_nll')})")


if __name__ == "__main__":
    main()
