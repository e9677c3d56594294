"""The benchmarks' FLOP counter against hand-counted multiply-accumulates."""

import keras
import pytest
from helpers import benchmark_module

from tfvae.config import Config
from tfvae.models import build_model

flops = benchmark_module("flops")


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


def test_counts_tiny_model_by_hand():
    expected = 169 * 9 * 4 + 676 * 6 + 3 * 98 + 49 * 9 * 2 * 5
    assert flops.forward_macs(Tiny()) == expected
    assert flops.train_flops_per_image(Tiny()) == 6 * expected


@pytest.mark.parametrize("model, latent, mflop", [("conv", 2, 32.797248), ("mlp", 20, 3.9072)])
def test_matches_the_issue_figures(model, latent, mflop):
    # Issue #6: ~33 MFLOP per image per training step for the conv VAE, ~4 for 784-400-20.
    counted = flops.train_flops_per_image(build_model(Config(model=model, latent_dim=latent)))
    assert counted / 1e6 == pytest.approx(mflop)
    # mlp by hand: 784*400 + 400*40 + 20*400 + 400*784 MACs, x2 FLOPs, x3 forward+backward
    if model == "mlp":
        assert counted == 6 * (784 * 400 + 400 * 40 + 20 * 400 + 400 * 784)
