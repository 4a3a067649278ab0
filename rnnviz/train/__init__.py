"""Training: a ``Trainer`` that runs in the foreground (the command line, also under torchrun) or
in a background thread (the app).

    python -m rnnviz.train --cell lstm --hidden 256 --layers 1 --minutes 60 \\
        --out checkpoints/mnist_lstm.safetensors

    from rnnviz import ModelConfig
    from rnnviz.train import Trainer, TrainConfig
    metrics = Trainer(ModelConfig(), TrainConfig(minutes=10, out="runs/a.safetensors")).run()

| module | what it holds |
| --- | --- |
| ``config.py`` | ``TrainConfig``: every setting with its default, bounds and help; the flags made from them |
| ``loop.py`` | ``Trainer``: setup, the loop (step, control point, evaluation), finish |
| ``status.py`` | what other threads call (start, pause, stop, snapshot) and the records they read |
| ``averaging.py`` | weight averaging (``--ema``) |
| ``hardware.py`` | device, CPU threads, the bf16 probe, DDP, the loss meter that sums over workers |
| ``files.py`` | the run's checkpoints: resumable, best by validation, grown from another |
| ``__main__.py`` | the command line (``rnnviz-train``) |
"""

from ..metrics_log import metrics_log_path, read_metrics_log
from .averaging import ema_decay, update_average
from .config import TrainConfig
from .files import check_writable, remove_orphan_temps
from .hardware import cpu_runs_bf16_rnn, thread_count
from .loop import Trainer
from .status import Record

__all__ = [
    "Record",
    "TrainConfig",
    "Trainer",
    "check_writable",
    "cpu_runs_bf16_rnn",
    "ema_decay",
    "metrics_log_path",
    "read_metrics_log",
    "remove_orphan_temps",
    "thread_count",
    "update_average",
]
