"""The benchmarks, run as programs: the FLOP counter against hand-counted multiply-accumulates,
and the image-folder writer."""

import json

import pytest
from helpers import run_program

from tfvae import sources
from tfvae.config import Config

# Counted in a process of its own: the tests use the benchmarks as their users do, not as
# modules of the test suite.
COUNT_FLOPS = '''
import json

import keras

from benchmarks import flops
from tfvae.config import Config
from tfvae.models import build_model


class Tiny(keras.Model):
    """A VAE-shaped model small enough to count by hand."""

    def __init__(self):
        super().__init__()
        self.latent_dim = 3
        self.encoder = keras.Sequential([
            keras.layers.Conv2D(4, 3, strides=2),  # 28x28x1 -> 13x13x4: 169 * 9 * 1 * 4
            keras.layers.Flatten(),
            keras.layers.Dense(6),  # 676 -> 6
        ])
        self.decoder = keras.Sequential([
            keras.layers.Dense(7 * 7 * 2),  # 3 -> 98
            keras.layers.Reshape((7, 7, 2)),
            # each of 7x7 input pixels scatters 3x3 x 5 outputs from 2 channels
            keras.layers.Conv2DTranspose(5, 3, strides=2, padding="same"),
        ])


models = {"tiny": Tiny(), "conv": build_model(Config(model="conv", latent_dim=2)),
          "mlp": build_model(Config(model="mlp", latent_dim=20))}
print(json.dumps({name: [flops.forward_macs(model), flops.train_flops_per_image(model)]
                  for name, model in models.items()}))
'''


@pytest.fixture(scope="module")
def counted():
    """{model: [forward MACs, training FLOPs] per image} as benchmarks/flops.py counts them."""
    return json.loads(run_program(["-c", COUNT_FLOPS]).splitlines()[-1])


def test_counts_tiny_model_by_hand(counted):
    expected = 169 * 9 * 4 + 676 * 6 + 3 * 98 + 49 * 9 * 2 * 5
    assert counted["tiny"][0] == expected
    assert counted["tiny"][1] == 6 * expected


@pytest.mark.parametrize("model, mflop", [("conv", 32.797248), ("mlp", 3.9072)])
def test_matches_the_issue_figures(counted, model, mflop):
    # Issue #6: ~33 MFLOP per image per training step for the conv VAE, ~4 for 784-400-20.
    assert counted[model][1] / 1e6 == pytest.approx(mflop)
    # mlp by hand: 784*400 + 400*40 + 20*400 + 400*784 MACs, x2 FLOPs, x3 forward+backward
    if model == "mlp":
        assert counted[model][1] == 6 * (784 * 400 + 400 * 40 + 20 * 400 + 400 * 784)


def test_the_image_folder_tool_writes_a_synthetic_unlabelled_colour_folder(tmp_path,
                                                                            mnist_dir):
    folder = str(tmp_path / "synthetic")
    output = run_program(["-m", "benchmarks.image_folders", "--synthetic", "12", "--size", "40",
                          "36", "--count", "60", "--data-dir", mnist_dir, folder])
    assert f"wrote 12 images into {folder}" in output
    config, loaded = sources.load(Config(dataset=folder, test_fraction=0.3))
    assert config.image_shape == (40, 36, 3) and config.num_classes == 0
    assert len(loaded["train"].labels) + len(loaded["test"].labels) == 12
