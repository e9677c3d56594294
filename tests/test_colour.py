"""The convolutional model keeps each digit's colour on tinted 32x32 RGB digits (issue #37).

Uses only `from tfvae import ConvVAE`, `tfvae.models.build_model` and
`tfvae.train.train_and_evaluate`, so it runs unchanged whatever the models' insides.
"""

import gzip
import os

import imageio.v2 as imageio
import numpy as np
import pytest
import tensorflow as tf

import tfvae.models
from tfvae import ConvVAE
from tfvae.config import Config
from tfvae.train import train_and_evaluate

TRAIN_IMAGES = 2048
TEST_IMAGES = 256


def mnist_digits(mnist_dir, count):
    """The first `count` MNIST training digits, uint8 [count, 28, 28]."""
    with gzip.open(os.path.join(mnist_dir, "train-images-idx3-ubyte.gz")) as f:
        raw = f.read()
    return np.frombuffer(raw, np.uint8, offset=16)[:count * 784].reshape(count, 28, 28)


def tinted(digits, seed):
    """Digits resized to 32x32, each multiplied by its own random RGB colour: (uint8 images
    [N, 32, 32, 3], the digit pixels [N, 32, 32] (bool), the colours [N, 3])."""
    grey = tf.image.resize(digits[..., None].astype(np.float32) / 255.0, (32, 32)).numpy()
    colours = np.random.default_rng(seed).uniform(0.0, 1.0, (len(digits), 3))
    images = np.clip(np.rint(grey * colours[:, None, None, :] * 255.0), 0, 255)
    return images.astype(np.uint8), grey[..., 0] > 0.5, colours


def colour_error(model, images, digit_pixels):
    """Mean over images of |mean colour of the reconstruction - mean true colour| over the
    digit's pixels, averaged over R, G and B (0 keeps every colour; the right intensity in
    grey scores about 0.25 on uniform random colours)."""
    x = images.astype(np.float32) / 255.0
    mean, _ = model.encode(x)
    reconstructions = model.decode(mean, apply_sigmoid=True).numpy()
    return float(np.mean([np.abs(r[m].mean(0) - t[m].mean(0)).mean()
                          for r, t, m in zip(reconstructions, x, digit_pixels)]))


# Strict: once the conv model keeps colour this fails, and the mark must go (issue #37). On
# today's model the reconstructions come out grey and dim: colour error 0.36 here, where the
# fully connected model (--model mlp, the same config otherwise) reaches 0.21.
@pytest.mark.xfail(strict=True, reason="the conv decoder does not learn the digits' hue yet "
                   "(issue #37): to be fixed in the conv model, tfvae/models/")
def test_the_conv_model_keeps_each_digits_colour(tmp_path, mnist_dir):
    digits = mnist_digits(mnist_dir, TRAIN_IMAGES + TEST_IMAGES)
    images, _, _ = tinted(digits[:TRAIN_IMAGES], seed=0)
    folder = tmp_path / "tinted"
    folder.mkdir()
    for index, image in enumerate(images):
        imageio.imwrite(folder / f"{index:05d}.png", image, format="png")
    config = Config(dataset=str(folder), model="conv", latent_dim=16, binarize="none",
                    likelihood="logistic", image_size=(32, 32), channels=3, batch_size=64,
                    epochs=3, test_size=64, seed=0)
    run_dir = str(tmp_path / "run")
    train_and_evaluate(config, run_dir, progress=False)
    model = tfvae.models.build_model(config)
    assert isinstance(model, ConvVAE)
    checkpoint = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    tf.train.Checkpoint(model=model).restore(checkpoint).expect_partial()
    test_images, digit_pixels, _ = tinted(digits[TRAIN_IMAGES:], seed=1)
    assert colour_error(model, test_images, digit_pixels) < 0.25
