"""The header's model menu and Generate through gradio_client: an unconditional model picked while
a digit is chosen draws 'any' (the digit follows, on Generate and on Intervene), and with no
checkpoint at all Generate says how to get one instead of failing. (The menu's events in a real
browser: tests/browser/test_menu.py.)"""

import pytest

from rnnviz import ModelConfig
from rnnviz.app.operations import Explorer
from rnnviz.app.training import TrainingService
from tests.app import serving

LSTM, VAE = "shipped/mnist_lstm", "shipped/mnist_vae"


# what the shared ``served`` fixture (tests/app/conftest.py) serves here
CHECKPOINTS = {"mnist_lstm": ModelConfig(hidden=32, head_hidden=64),
               "mnist_vae": ModelConfig(hidden=32, head_hidden=64, num_classes=0, latent=8)}
TRAINING = "off"


@pytest.fixture(scope="module")
def client(served):
    return served.client


def test_picking_an_unconditional_model_switches_the_digit_to_any(client):
    digit, summary, *_ = client.predict(VAE, "7", 1.0, 0, api_name="/generate_with_model")
    assert digit == "any" and summary.startswith("**mnist_vae**") and "unconditional" in summary
    digit, summary, *_ = client.predict(LSTM, "3", 1.0, 0, api_name="/generate_with_model")
    assert digit == "3" and "digit **3**" in summary  # a class-conditional model keeps the digit
    # Intervene's own digit follows the menu too
    assert client.predict(VAE, "7", api_name="/intervene_digit_follows") == "any"
    assert client.predict(LSTM, "7", api_name="/intervene_digit_follows") == "7"


def test_generate_without_any_checkpoint_says_how_to_get_one(tmp_path):
    from gradio_client import Client

    runs = tmp_path / "runs"
    ex = Explorer(tmp_path / "none", runs, training=TrainingService(runs, enabled=False, disabled_reason="off"))
    with serving(ex) as url:
        summary, *_ = Client(url, verbose=False).predict(None, "7", 1.0, 0, api_name="/generate")
    assert "No checkpoint found" in summary and "python -m rnnviz.train" in summary
