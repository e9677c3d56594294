"""Model shapes for any image shape, the tutorial's network, conditional sampling, saving."""

import dataclasses
import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae.config import Config
from tfvae.errors import TfvaeError
from tfvae.models import Conv2DTranspose, ConvVAE, MlpVAE, build_model, layers

# TensorFlow's CVAE tutorial for latent_dim 2, layer by layer: (type, filters or units,
# kernel size, strides, padding, output shape, weight shapes).
TUTORIAL = [
    ("Conv2D", 32, (3, 3), (2, 2), "valid", (13, 13, 32), [(3, 3, 1, 32), (32,)]),
    ("Conv2D", 64, (3, 3), (2, 2), "valid", (6, 6, 64), [(3, 3, 32, 64), (64,)]),
    ("Flatten", None, None, None, None, (2304,), []),
    ("Dense", 4, None, None, None, (4,), [(2304, 4), (4,)]),
    ("Dense", 1568, None, None, None, (1568,), [(2, 1568), (1568,)]),
    ("Reshape", None, None, None, None, (7, 7, 32), []),
    ("Conv2DTranspose", 64, (3, 3), (2, 2), "same", (14, 14, 64), [(3, 3, 64, 32), (64,)]),
    ("Conv2DTranspose", 32, (3, 3), (2, 2), "same", (28, 28, 32), [(3, 3, 32, 64), (32,)]),
    ("Conv2DTranspose", 1, (3, 3), (1, 1), "same", (28, 28, 1), [(3, 3, 1, 32), (1,)]),
]


def describe(layer):
    """A layer as a TUTORIAL row."""
    return (type(layer).__name__, getattr(layer, "filters", getattr(layer, "units", None)),
            getattr(layer, "kernel_size", None), getattr(layer, "strides", None),
            getattr(layer, "padding", None), tuple(layer.output.shape[1:]),
            [tuple(w.shape) for w in layer.weights])


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


def test_default_conv_model_is_the_tutorials_layer_by_layer():
    model = build_model(Config(model="conv", latent_dim=2))
    assert model.image_shape == (28, 28, 1)
    assert [describe(layer) for layer in model.encoder.layers + model.decoder.layers] == TUTORIAL
    # In this order: tf.train.Checkpoint and .weights.h5 files (tests/fixtures/run_0.1.0)
    # see the variables so.
    assert [tuple(w.shape) for w in model.weights] == [s for row in TUTORIAL for s in row[-1]]


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
    model = build_model(Config(model=model_name, latent_dim=2, conditional=True))
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
    Config(model="conv", latent_dim=3, likelihood="logistic", binarize="none",
           dataset="cifar10", image_size=(16, 20), channels=3, num_classes=4,
           conditional=True, conv_filters=(8, 16, 16)),
])
def test_save_and_load_round_trip_gives_identical_outputs(tmp_path, config):
    model = build_model(config)
    x = tf.random.uniform([4, *config.image_shape], seed=1)
    labels = tf.constant([0, 1, 2, 9]) if config.conditional else None
    path = str(tmp_path / "vae.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded) is type(model) and loaded.get_config() == model.get_config()
    for a, b in zip(model(x, labels), loaded(x, labels)):
        np.testing.assert_array_equal(a, b)
    if model.likelihood.name == "gaussian":
        np.testing.assert_array_equal(loaded.log_scale, model.log_scale)
    assert loaded.image_shape == config.image_shape


def test_config_round_trip_rebuilds_the_same_architecture():
    config = dataclasses.replace(Config(), model="mlp", hidden_units=(10,), latent_dim=4)
    model = build_model(config)
    clone = type(model).from_config(model.get_config())
    clone.build((None, 28, 28, 1))
    assert clone.count_params() == model.count_params()


def test_a_saved_config_without_an_image_shape_is_mnists():
    """Models saved before image_shape existed reload as 28x28x1."""
    for model in (MlpVAE(latent_dim=2, hidden_units=(8,)), ConvVAE(latent_dim=2)):
        config = model.get_config()
        del config["image_shape"]
        assert type(model).from_config(config).image_shape == (28, 28, 1)


SHAPES = [(28, 28, 1), (30, 30, 1), (64, 48, 3), (32, 32, 3), (7, 9, 3)]


@pytest.mark.parametrize("image_shape", SHAPES)
@pytest.mark.parametrize("conv_filters", [(8,), (8, 16), (4, 8, 8)])
def test_conv_output_has_the_input_shape(image_shape, conv_filters):
    if image_shape == (7, 9, 3) and len(conv_filters) == 3:  # 7 -> 3 -> 1 -> nothing
        with pytest.raises(TfvaeError, match="do not fit 7x9 images: give --conv-filters fewer"):
            ConvVAE(latent_dim=3, image_shape=image_shape, conv_filters=conv_filters)
        return
    model = ConvVAE(latent_dim=3, image_shape=image_shape, conv_filters=conv_filters)
    x = tf.random.uniform([2, *image_shape], seed=3)
    logits, mean, logvar = model(x)
    assert logits.shape == (2, *image_shape) and mean.shape == logvar.shape == (2, 3)
    assert model.sample(seed=1).shape == (100, *image_shape)
    # The decoder grows the ceilings of H / 2**n and W / 2**n back, then crops the overhang.
    blocks = len(conv_filters)
    reshape = next(layer for layer in model.decoder.layers
                   if isinstance(layer, keras.layers.Reshape))
    assert reshape.output.shape[1:3] == tuple(
        math.ceil(side / 2**blocks) for side in image_shape[:2])


def test_mlp_flattens_colour_images():
    model = build_model(Config(model="mlp", latent_dim=4, hidden_units=(32,), dataset="cifar10",
                               image_size=(32, 32), channels=3))
    assert model.likelihood.name == "logistic"  # --likelihood auto on 8-bit colour images
    assert model.encoder.layers[0].kernel.shape == (32 * 32 * 3, 32)
    logits, _, _ = model(tf.random.uniform([3, 32, 32, 3], seed=4))
    assert logits.shape == (3, 32, 32, 6)  # a location and a scale per pixel and channel


def test_conditional_conv_model_on_non_square_colour_images():
    config = Config(dataset="/data/pets", image_size=(24, 40), channels=3, num_classes=5,
                    conditional=True, latent_dim=2, conv_filters=(8, 16))
    model = build_model(config)
    z = tf.zeros([2, 2])
    cats, dogs = model.sample(z, labels=[0, 0]), model.sample(z, labels=[4, 4])
    assert cats.shape == (2, 24, 40, 3) and not np.allclose(cats, dogs)
    mean, _ = model.encode(tf.random.uniform([2, 24, 40, 3], seed=5), labels=[1, 3])
    assert mean.shape == (2, 2)
    # The encoder sees the 3 colour channels and 5 label planes.
    assert model.encoder.layers[0].kernel.shape == (3, 3, 3 + 5, 8)


def test_conditional_model_of_unlabelled_images_is_refused_in_one_line():
    config = Config(dataset="/data/photos", image_size=(16, 16), channels=3, num_classes=0,
                    conditional=True)
    with pytest.raises(TfvaeError, match="has no labels"):
        build_model(config)


@pytest.mark.parametrize("model_name", ["conv", "mlp"])
def test_vamp_prior_pseudo_inputs_have_the_image_shape(model_name):
    config = Config(model=model_name, dataset="cifar10", image_size=(16, 12), channels=3,
                    prior_components=5, kl="mc", latent_dim=3, conv_filters=(8, 16),
                    hidden_units=(16,))
    model = build_model(config)
    assert model.pseudo_inputs.shape == (5, 16, 12, 3)
    means, logvars = model.prior.context()
    assert means.shape == logvars.shape == (5, 3)
    assert model.prior.sample(7, [1, 2]).shape == (7, 3)
    assert model.sample(seed=2).shape == (100, 16, 12, 3)


@pytest.mark.parametrize("model_name", ["conv", "mlp"])
def test_logistic_decoder_gives_a_location_and_a_scale_per_pixel(model_name):
    config = Config(model=model_name, dataset="cifar10", image_size=(8, 6), channels=3,
                    likelihood="logistic", binarize="none", conv_filters=(8,),
                    hidden_units=(16,))
    model = build_model(config)
    assert not hasattr(model, "log_scale") and model.decoder_channels == 6
    assert model.decode(tf.zeros([2, config.latent_dim])).shape == (2, 8, 6, 6)
    assert model.decode(tf.zeros([2, config.latent_dim]), apply_sigmoid=True).shape == (2, 8, 6, 3)
    assert build_model(Config(likelihood="gaussian", binarize="none")).log_scale.shape == ()


@pytest.mark.parametrize("kernel_size, filters, activation",
                         [(3, 1, None), (3, 4, "relu"), (5, 2, None), ((3, 5), 3, "sigmoid")])
def test_stride_one_conv2d_transpose_is_keras_layer_in_values_and_gradients(
        kernel_size, filters, activation):
    """tfvae's Conv2DTranspose (one matmul to the kernel taps, then shifted sums) computes
    Keras's layer: the same weights give the same outputs and gradients, to float rounding."""
    x = tf.random.stateless_normal([3, 9, 7, 5], seed=(1, 2))
    ours = Conv2DTranspose(filters, kernel_size, activation=activation)
    theirs = keras.layers.Conv2DTranspose(filters, kernel_size, padding="same",
                                          activation=activation)
    ours.build(x.shape)
    theirs.build(x.shape)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=w.shape).astype("float32") for w in theirs.get_weights()]
    results = []
    for layer in (ours, theirs):
        layer.set_weights(weights)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
            loss = tf.reduce_sum(tf.sin(y))
        results.append([y, *tape.gradient(loss, [x, *layer.trainable_weights])])
    assert results[0][0].shape == (3, 9, 7, filters)
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize("kwargs", [dict(kernel_size=2), dict(kernel_size=3, dilation_rate=2)])
def test_stride_one_conv2d_transpose_refuses_what_it_does_not_compute(kwargs):
    with pytest.raises(ValueError, match="needs an odd kernel, no dilation"):
        Conv2DTranspose(1, **kwargs)


def test_keras_files_saved_with_keras_logits_layer_still_load(tmp_path):
    """A .keras file addresses a layer's weights by its class name: a conv model saved when
    its logits layer was Keras's Conv2DTranspose loads into tfvae's, with the same outputs."""
    model = build_model(Config(latent_dim=2))
    before = layers.with_keras_logits_layer(model)
    assert type(before.decoder.layers[-1]) is keras.layers.Conv2DTranspose
    before.save(tmp_path / "before.keras")
    loaded = keras.models.load_model(tmp_path / "before.keras")
    assert type(loaded.decoder.layers[-1]) is Conv2DTranspose
    z = tf.random.stateless_normal([4, 2], seed=(3, 4))
    np.testing.assert_allclose(loaded.decode(z), before.decode(z), rtol=1e-5, atol=1e-5)


def test_stride_one_conv2d_transpose_takes_images_of_any_size():
    """Traced once for unknown height and width, then called on two sizes."""
    ours, theirs = Conv2DTranspose(2, 3), keras.layers.Conv2DTranspose(2, 3, padding="same")
    for layer in (ours, theirs):
        layer.build((None, None, None, 4))
    theirs.set_weights(ours.get_weights())
    call = tf.function(ours, input_signature=[tf.TensorSpec([None, None, None, 4])])
    for shape in ([2, 5, 9, 4], [1, 12, 3, 4]):
        x = tf.random.stateless_normal(shape, seed=(5, 6))
        np.testing.assert_allclose(call(x), theirs(x), rtol=1e-5, atol=1e-5)


def test_images_too_small_for_one_convolution_are_told_to_grow_or_use_the_mlp():
    with pytest.raises(TfvaeError, match=r"do not fit 2x2 images: pass a larger --image-size, "
                                         r"or --model mlp"):
        ConvVAE(latent_dim=3, image_shape=(2, 2, 1), conv_filters=(8,))
