"""Every limit is written once and read everywhere: the model's size bounds (rules.MODEL_BOUNDS), the
explorer's (checkpoint.APP_LIMITS: hidden and layer caps, 28x28 images, 50 MB files), the Train tab's
widgets and the checks of the training service behind them (training.TRAIN_LIMITS), and the cell and
dataset lists (model.CELLS, data.DATASETS)."""

import gradio as gr
import pytest

from rnnviz import rules
from rnnviz.checkpoint import APP_FILE_BYTES, APP_LIMITS, CLI_LIMITS
from rnnviz.data import DATASETS
from rnnviz.model import CELLS, ModelConfig


class _Explorer:
    """What the Train tab's layout reads of the Explorer: its training service."""

    def __init__(self, training):
        self.training = training


def _train_tab(tmp_path, limits=None):
    from rnnviz.app.tabs import train
    from rnnviz.app.training import TrainingService

    service = TrainingService(tmp_path / "runs", enabled=False, disabled_reason="off in this test", limits=limits)
    with gr.Blocks():
        handle = train.build(_Explorer(service), gr.Dropdown())
    return service, handle


SLIDERS = {"hidden": "hidden", "layers": "layers", "batch_size": "batch", "minutes": "minutes", "dropout": "dropout"}


def test_the_train_tab_sliders_take_their_ranges_from_the_training_checks(tmp_path):
    from rnnviz.app.training import TRAIN_LIMITS

    service, h = _train_tab(tmp_path)
    for name, field in SLIDERS.items():
        slider = getattr(h, field)
        assert (slider.minimum, slider.maximum) == tuple(service.limits[name]), name
        assert slider.minimum <= slider.value <= slider.maximum, name
    assert (h.hidden.minimum, h.hidden.maximum) == TRAIN_LIMITS["hidden"]
    assert [c[1] for c in h.cell.choices] == list(CELLS)
    assert [c[1] for c in h.dataset.choices] == list(DATASETS)
    # the same object: a service with other limits gets sliders with those ranges
    service, h = _train_tab(tmp_path, limits={"hidden": (8, 96), "layers": (1, 2)})
    assert (h.hidden.minimum, h.hidden.maximum, h.layers.maximum) == (8, 96, 2)


def test_the_training_limits_are_the_explorers_model_limits():
    from rnnviz.app.training import HEAD_HIDDEN, TRAIN_LIMITS

    assert TRAIN_LIMITS["hidden"][1] == APP_LIMITS.hidden and TRAIN_LIMITS["layers"][1] == APP_LIMITS.layers
    assert HEAD_HIDDEN == ModelConfig().head_hidden


def test_model_bounds_are_read_by_the_config_the_command_line_and_the_visitor_limits():
    for field, (lo, hi) in rules.MODEL_BOUNDS.items():
        assert getattr(CLI_LIMITS, field) == hi
        base = {"num_classes": 0} if field == "latent" else {}
        ModelConfig(**{**base, field: lo})  # both ends are allowed, one past them is not
        with pytest.raises(ValueError, match=field):
            ModelConfig(**{**base, field: lo - 1})
        with pytest.raises(ValueError, match=field):
            ModelConfig(**{**base, field: hi + 1})
    assert rules.LIMITS["unit"][2] == rules.MODEL_BOUNDS["hidden"][1] - 1
    assert rules.LIMITS["layer"][2] == rules.MODEL_BOUNDS["layers"][1] - 1


def test_the_explorers_image_size_and_file_size_are_written_once():
    from rnnviz import site
    from rnnviz.app import inputs, uploads

    assert APP_LIMITS.image_size == (APP_LIMITS.height, APP_LIMITS.width) == rules.IMAGE_SIZE
    assert inputs.IMAGE_SIZE is rules.IMAGE_SIZE and site.IMAGE_SIZE is rules.IMAGE_SIZE
    assert uploads.MAX_UPLOAD_BYTES == APP_LIMITS.file_bytes == APP_FILE_BYTES == 50 * 2**20
    assert APP_LIMITS.parameters == APP_FILE_BYTES // 4
