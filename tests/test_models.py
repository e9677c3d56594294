"""Model shapes, conditional sampling, and saving."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae.config import Config
from tfvae.models import ConvVAE, MlpVAE, build_model


@pytest.mark.parametrize("model", [ConvVAE(latent_dim=3), MlpVAE(latent_dim=3,
                                                                 hidden_units=(32, 16))])
def test_shapes(model):
    x = tf.random.uniform([5, 28, 28, 1])
    mean, logvar = model.encode(x)
    assert mean.shape == logvar.shape == (5, 3)
    z = model.reparameterize(mean, logvar, tf.zeros([5, 3]))
    np.testing.assert_array_equal(z, mean)
    logits = model.decode(z)
    assert logits.shape == (5, 28, 28, 1)
    images = model.sample(z)
    assert float(tf.reduce_min(images)) >= 0 and float(tf.reduce_max(images)) <= 1
    assert model.sample().shape == (100, 28, 28, 1)


def test_tutorial_architecture():
    model = build_model(Config(model="conv", latent_dim=2))
    names = [type(layer).__name__ for layer in model.encoder.layers + model.decoder.layers]
    assert names == ["Conv2D", "Conv2D", "Flatten", "Dense",
                     "Dense", "Reshape", "Conv2DTranspose", "Conv2DTranspose", "Conv2DTranspose"]
    # Counted from the tutorial's layer shapes (valid convolutions: 28 -> 13 -> 6).
    encoder = (9 * 32 + 32) + (9 * 32 * 64 + 64) + (6 * 6 * 64 * 4 + 4)
    decoder = (2 * 1568 + 1568) + (9 * 32 * 64 + 64) + (9 * 64 * 32 + 32) + (9 * 32 + 1)
    assert model.count_params() == encoder + decoder == 69_989


def test_mlp_is_784_400_20_by_default():
    model = build_model(Config(model="mlp"))
    assert [layer.units for layer in model.encoder.layers] == [400, 40]
    assert [layer.units for layer in model.decoder.layers[:-1]] == [400, 784]


@pytest.mark.parametrize("model_name", ["conv", "mlp"])
def test_conditional_sample_depends_on_the_label(model_name):
    model = build_model(Config(model=model_name, latent_dim=2, conditional=True), num_classes=10)
    z = tf.zeros([3, 2])
    threes = model.sample(z, labels=[3, 3, 3])
    sevens = model.sample(z, labels=[7, 7, 7])
    assert threes.shape == (3, 28, 28, 1)
    assert not np.allclose(threes, sevens)
    with pytest.raises(ValueError, match="pass labels"):
        model.sample(z)


@pytest.mark.parametrize("config", [
    Config(model="conv", latent_dim=2),
    Config(model="mlp", latent_dim=4, hidden_units=(64, 32), conditional=True),
    Config(model="mlp", latent_dim=3, likelihood="gaussian", binarize="none"),
])
def test_save_and_load_round_trip_gives_identical_outputs(tmp_path, config):
    model = build_model(config, num_classes=10)
    x = tf.random.uniform([4, 28, 28, 1], seed=1)
    labels = tf.constant([0, 1, 2, 9]) if config.conditional else None
    path = str(tmp_path / "vae.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    for a, b in zip(model(x, labels), loaded(x, labels)):
        np.testing.assert_array_equal(a, b)
    if config.likelihood == "gaussian":
        assert loaded.log_scale is not None


def test_config_round_trip_rebuilds_the_same_architecture():
    config = dataclasses.replace(Config(), model="mlp", hidden_units=(10,), latent_dim=4)
    model = build_model(config)
    clone = type(model).from_config(model.get_config())
    clone.build((None, 28, 28, 1))
    assert clone.count_params() == model.count_params()
