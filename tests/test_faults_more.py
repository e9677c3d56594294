"""Fault injection, second probe (issue #37): large images, folders, the Keras API, files that
are not a run's, hangs and messages. Each case ends in one line or the right result."""

import os

import imageio.v2 as imageio
import numpy as np
import pytest
from helpers import cli_error

from tfvae import train, viz
from tfvae.config import Config
from tfvae.errors import TfvaeError


def test_grids_of_large_images_are_drawn_at_a_size_pil_reads_back(tmp_path):
    path = str(tmp_path / "grid.png")
    viz.save_grid(path, np.zeros([16, 1100, 1100], np.float32), rows=4)
    assert max(imageio.imread(path).shape) <= 4096  # PIL warns past 89M pixels
    viz.gif_from_pngs(str(tmp_path / "training.gif"), [path, path], captions=["1", "2"])


def test_images_too_large_to_train_are_refused_up_front(tmp_path, capsys):
    with pytest.raises(TfvaeError, match="over tfvae's 1024x1024"):
        Config(dataset=str(tmp_path), image_size=(2000, 2000))
    message = cli_error(train.main, ["--dataset", str(tmp_path), "--image-size", "1000",
                                     "1100", "--out", str(tmp_path / "run")], capsys)
    assert "1000x1100" in message and not os.path.exists(tmp_path / "run")


@pytest.fixture(scope="module")
def conditional_model():
    from tfvae import MlpVAE

    model = MlpVAE(latent_dim=2, hidden_units=(8,), num_classes=10)
    model.compile()
    return model


IMAGES = np.zeros([4, 28, 28], np.uint8)
LABELS = np.arange(4)


@pytest.mark.parametrize("call, message", [
    (lambda m: m.predict((IMAGES[:0], LABELS[:0])), "no images"),
    (lambda m: m.fit(np.full([4, 28, 28], np.nan, np.float32), LABELS), "NaN"),
    (lambda m: m.fit(IMAGES.astype(np.uint16) + 257, LABELS), "0..255"),
    (lambda m: m.fit(IMAGES.astype(np.int8) - 1, LABELS), "0..255"),
    (lambda m: m.fit(IMAGES, np.array([0, 1, 2, 10])), "label 3 is 10"),
    (lambda m: m.fit(IMAGES, np.array([0, -1, 2, 3])), "label 1 is -1"),
    (lambda m: m.evaluate(IMAGES, np.array([0, 1.5, 2, 3])), "label 1 is 1.5"),
])
def test_the_keras_api_refuses_what_it_cannot_score(conditional_model, call, message):
    with pytest.raises(TfvaeError, match=message):
        call(conditional_model)

