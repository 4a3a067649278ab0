"""rnnviz: see how recurrent layers generate images, row by row.

    import rnnviz
    model = rnnviz.load_checkpoint("checkpoints/mnist_lstm.safetensors")
    traces = rnnviz.sample_traces(model, n=1, y=7, seed=0)     # image + every gate, every step
    model.log_prob(images)                                      # nats per image (exact marginal)
"""

from .cells import STATE_NAMES
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .model import ModelConfig, RowModel
from .trace import Trace, sample_traces, trace_images

__all__ = ["STATE_NAMES", "CheckpointError", "ModelConfig", "RowModel", "Trace", "load_checkpoint",
           "sample_traces", "save_checkpoint", "trace_images"]
__version__ = "0.1.0"
