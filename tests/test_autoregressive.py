"""The autoregressive Bernoulli likelihood (--likelihood autoregressive): each pixel's logit
sees the pixels before it."""

import itertools
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import cli_error, tiny_config, train_test_elbos

from tfvae import checkpoints, evaluate, figures, losses, train
from tfvae.errors import TfvaeError
from tfvae.models import AutoregressiveBernoulli, AutoregressiveLogits, MlpVAE
from tfvae.models.autoregressive import WINDOW_RADIUS, causal_window, interpolate

SMALL_SHAPE = (3, 3, 1)  # 512 binary images: few enough to sum over them all


def random_kernel(layer, seed, scale=1.5):
    """Gives every weight of the layer (the output kernels too, which start at zero) random
    values far from zero."""
    rng = np.random.default_rng(seed)
    for weight in layer.weights:
        weight.assign(rng.normal(0.0, scale, weight.shape).astype(np.float32))


def small_model(seed=0, local_units=0, local_knots=0):
    """An autoregressive MlpVAE on 3x3 images with random (far from zero) weights; the same seed
    gives the same model whichever tests ran before."""
    keras.utils.set_random_seed(seed)
    model = MlpVAE(latent_dim=2, hidden_units=(8,), image_shape=SMALL_SHAPE,
                   likelihood=AutoregressiveBernoulli(local_units, local_knots))
    model.build((None, *SMALL_SHAPE))
    random_kernel(model.autoregressive, seed)
    return model


def offset_jacobians(layer, size):
    """d offsets / d x and d offsets / d f(z), each [output pixel i, input pixel j], at a random
    x and f(z) for one image."""
    x = tf.random.stateless_uniform([1, size], seed=[0, 1])
    logits = tf.random.stateless_normal([1, size], seed=[0, 2])
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([x, logits])
        offsets = layer(x, logits)
    return (tape.jacobian(offsets, x)[0, :, 0, :].numpy(),
            tape.jacobian(offsets, logits)[0, :, 0, :].numpy())


def all_binary_images(shape):
    size = int(np.prod(shape))
    return np.array(list(itertools.product([0.0, 1.0], repeat=size)),
                    np.float32).reshape(-1, *shape)


def test_each_offset_depends_only_on_the_pixels_before_it():
    layer = AutoregressiveLogits((2, 3, 1))
    random_kernel(layer, seed=1)
    x = tf.random.stateless_uniform([1, 6], seed=[0, 1])
    with tf.GradientTape() as tape:
        tape.watch(x)
        offsets = layer(x)
    jacobian = tape.jacobian(offsets, x)[0, :, 0, :].numpy()  # [output i, input j]
    kernel = layer.kernel.numpy()
    expected = np.array([[kernel[j, i] if j < i else 0.0 for j in range(6)] for i in range(6)])
    np.testing.assert_allclose(jacobian, expected, rtol=1e-6)
    assert np.count_nonzero(jacobian) == 15  # every earlier pixel counts: 6 * 5 / 2


def test_log_likelihood_is_the_product_of_the_conditionals_and_sums_to_one():
    model = small_model()
    images = all_binary_images(SMALL_SHAPE)  # [512, 3, 3, 1]
    logits = model.decode(tf.constant([[0.3, -1.2]]))  # one z, f(z) [1, 3, 3, 1]
    repeated = tf.repeat(logits, len(images), axis=0)
    log_px = model.likelihood.log_prob(images, repeated).numpy()
    # By hand: sum_i log Bernoulli(x_i | sigmoid(f_i + sum_{j<i} W_ji x_j)).
    f, kernel = logits.numpy().reshape(-1), model.autoregressive.kernel.numpy()
    x = images.reshape(len(images), -1)
    by_hand = np.zeros(len(images))
    for i in range(x.shape[1]):
        p = 1.0 / (1.0 + np.exp(-(f[i] + x[:, :i] @ kernel[:i, i])))
        by_hand += np.log(np.where(x[:, i] == 1.0, p, 1.0 - p))
    np.testing.assert_allclose(log_px, by_hand, rtol=1e-5, atol=1e-5)
    assert np.exp(log_px).sum() == pytest.approx(1.0, abs=1e-5)
    # The offsets matter: the factorized likelihood of the same logits differs.
    assert np.abs(log_px - losses.bernoulli_log_likelihood(images, repeated).numpy()).max() > 0.5


def test_with_the_local_network_the_likelihood_is_the_product_of_conditionals_on_earlier_pixels():
    model = small_model(local_units=4, local_knots=3)
    images = all_binary_images(SMALL_SHAPE)
    logits = tf.repeat(model.decode(tf.constant([[0.3, -1.2]])), len(images), axis=0)
    log_px = model.likelihood.log_prob(images, logits).numpy()
    # By hand: pixel i's conditional computed from an image in which only x_<i is kept.
    f, x = logits.numpy().reshape(len(images), -1), images.reshape(len(images), -1)
    context = f
    by_hand = np.zeros(len(images))
    for i in range(x.shape[1]):
        earlier_only = x * (np.arange(x.shape[1]) < i)
        logit = f[:, i] + model.autoregressive(earlier_only, context)[:, i].numpy()
        # log sigmoid(+-logit) in float64: float32's log(1 - p) loses digits where p is near 1
        by_hand -= np.logaddexp(0.0, np.where(x[:, i] == 1.0, -1.0, 1.0) * logit.astype(np.float64))
    np.testing.assert_allclose(log_px, by_hand, rtol=1e-5, atol=1e-5)
    assert np.exp(log_px).sum() == pytest.approx(1.0, abs=1e-5)
    # The local network matters: without its output the likelihood differs.
    model.autoregressive.knot_kernel.assign(tf.zeros_like(model.autoregressive.knot_kernel))
    assert np.abs(log_px - model.likelihood.log_prob(images, logits).numpy()).max() > 0.5


@pytest.mark.parametrize("local_units,local_knots", [(0, 0), (4, 3)])
def test_pictures_are_the_probabilities_along_an_ancestral_sample_of_p_x_given_z(
        local_units, local_knots):
    model = small_model(seed=2, local_units=local_units, local_knots=local_knots)
    logits = tf.reshape(model.decode(tf.constant([[0.5, 0.1]])), [1, -1])
    draws = 40_000
    uniform = tf.random.stateless_uniform([draws, 9], seed=[3, 4])
    repeated = tf.repeat(logits, draws, axis=0)
    probabilities = model.autoregressive.sample(repeated, uniform)
    samples = tf.cast(uniform < probabilities, tf.float32)
    # Each probability is the model's conditional given the pixels drawn before it.
    np.testing.assert_allclose(
        probabilities, tf.sigmoid(repeated + model.autoregressive(samples, repeated)),
        rtol=1e-5, atol=1e-6)
    # And the samples follow p(x|z): compare frequencies with the exact probabilities.
    images = all_binary_images((9,))
    exact = np.exp(model.likelihood.log_prob(images.reshape(-1, *SMALL_SHAPE),
                                             tf.reshape(tf.repeat(logits, 512, axis=0),
                                                        [-1, *SMALL_SHAPE])).numpy())
    codes = samples.numpy() @ (2 ** np.arange(8, -1, -1))
    frequencies = np.bincount(codes.astype(int), minlength=512) / draws
    assert np.abs(frequencies - exact).max() < 4 * np.sqrt(exact.max() / draws)
    # A model's pictures use fixed uniforms: the same z gives the same picture.
    z = tf.constant([[0.5, 0.1], [0.5, 0.1], [-1.0, 2.0]])
    pictures = model.decode(z, apply_sigmoid=True).numpy()
    assert pictures.shape == (3, *SMALL_SHAPE)
    np.testing.assert_array_equal(pictures[0], pictures[1])
    # In batches of 2 the local network's matmuls round differently, in the last digit.
    np.testing.assert_allclose(figures.decode_images(model, z.numpy(), batch_size=2),
                               pictures, rtol=1e-5)


@pytest.mark.parametrize("local_units,local_knots", [(0, 0), (4, 3)])
def test_each_sample_of_z_is_scored_against_its_own_image(local_units, local_knots):
    """x [B, 1, ...] beside logits [B, S, ...], the IWAE layout, equals S separate calls."""
    model = small_model(seed=4, local_units=local_units, local_knots=local_knots)
    x = tf.constant(all_binary_images(SMALL_SHAPE)[[3, 100, 511]])  # [3, 3, 3, 1]
    z = tf.random.stateless_normal([3, 4, 2], seed=[1, 2])
    logits = tf.reshape(model.decode(tf.reshape(z, [12, 2])), [3, 4, *SMALL_SHAPE])
    together = model.likelihood.log_prob(x[:, None], logits).numpy()  # [3, 4]
    one_by_one = np.stack([model.likelihood.log_prob(x, logits[:, s]).numpy()
                           for s in range(4)], axis=1)
    # The local network's matmuls round differently with the batch size, in the last digits.
    np.testing.assert_allclose(together, one_by_one, rtol=1e-5)
    assert np.ptp(together, axis=1).min() > 0.1  # the samples of z differ, and it shows


def test_a_causal_window_holds_the_values_before_each_value_within_the_radius():
    shape = (5, 8, 2)  # two channels: (row, column, channel) raster order
    window = causal_window(shape, WINDOW_RADIUS)
    size = int(np.prod(shape))
    position = np.stack(np.unravel_index(np.arange(size), shape), axis=1)  # [D, 3]
    for i in range(size):
        rows, cols = position[:, 0] - position[i, 0], position[:, 1] - position[i, 1]
        expected = np.flatnonzero((np.arange(size) < i) & (rows >= -WINDOW_RADIUS)
                                  & (np.abs(cols) <= WINDOW_RADIUS))
        np.testing.assert_array_equal(np.sort(window[i][window[i] < size]), expected)
    # A slot means the same relative position everywhere: slot k of pixel (3, 5, 1) is slot k
    # of pixel (3, 4, 1) one column to the right, wherever both are inside the image.
    i, right = np.ravel_multi_index((3, 4, 1), shape), np.ravel_multi_index((3, 5, 1), shape)
    inside = (window[i] < size) & (window[right] < size)
    assert inside.sum() == 2 * (3 * 6 + 3) + 1  # column 8 is outside; channel 0 at (3, 5)
    np.testing.assert_array_equal(window[right][inside], window[i][inside] + shape[2])


def test_the_local_network_sees_z_and_only_the_window_before_each_pixel():
    shape = (4, 9, 1)  # wider than the window: far pixels before i must not count
    layer = AutoregressiveLogits(shape, local_units=6, local_knots=4)
    random_kernel(layer, seed=1, scale=0.5)
    layer.window_bias.assign(tf.fill([6], 10.0))  # every unit active: no ReLU hides a path
    layer.local_bias.assign(tf.fill([36, 6], 10.0))
    layer.kernel.assign(tf.zeros([36, 36]))  # the local network's paths alone
    from_x, from_z = offset_jacobians(layer, 36)
    window = causal_window(shape, WINDOW_RADIUS)
    in_window = np.zeros((36, 37), bool)  # column 36: outside the image
    np.put_along_axis(in_window, window, True, axis=1)
    in_window = in_window[:, :36]
    np.testing.assert_array_equal(from_x != 0.0, in_window)
    assert not in_window[0].any() and in_window[35, 8] and not in_window[35, 4]
    # Pixel i's offset reads its own probability under z, and no other pixel's.
    np.testing.assert_array_equal(from_z != 0.0, np.eye(36, dtype=bool))


def test_interpolation_through_knots_is_numpys_piecewise_linear_interpolation():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 2, 5)).astype(np.float32)  # 5 knots at 0, 1/4, ..., 1
    positions = np.concatenate([rng.uniform(size=(3, 2, 6)), np.zeros((3, 2, 1)),
                                np.full((3, 2, 1), 0.25), np.ones((3, 2, 1))], -1)
    expected = np.array([[np.interp(positions[a, b], np.linspace(0, 1, 5), values[a, b])
                          for b in range(2)] for a in range(3)])
    np.testing.assert_allclose(interpolate(values[:, :, None], positions.astype(np.float32)),
                               expected, rtol=1e-5, atol=1e-6)
    # Its slope in the position, the path by which z's gradient reaches the decoder.
    positions = tf.constant([[0.1, 0.4, 0.6, 0.9]])
    with tf.GradientTape() as tape:
        tape.watch(positions)
        interpolated = interpolate(tf.constant([[1.0, -2.0, 0.5, 4.0]]), positions)
    np.testing.assert_allclose(tape.gradient(interpolated, positions), [[-9.0, 7.5, 7.5, 10.5]],
                               rtol=1e-5)


def test_a_knotted_local_network_saves_and_reloads_the_keras_way(tmp_path):
    model = small_model(seed=5, local_units=4, local_knots=3)
    path = str(tmp_path / "knots.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.autoregressive.local_knots == 3
    x = tf.constant(all_binary_images(SMALL_SHAPE)[:8])
    logits = tf.random.stateless_normal([8, *SMALL_SHAPE], seed=[6, 7])
    np.testing.assert_array_equal(loaded.likelihood.log_prob(x, logits),
                                  model.likelihood.log_prob(x, logits))


@pytest.mark.parametrize("local_units,local_knots", [(0, 0), (4, 3)])
def test_an_untrained_autoregressive_decoder_is_the_plain_vae(local_units, local_knots):
    model = MlpVAE(latent_dim=2, hidden_units=(8,),
                   likelihood=AutoregressiveBernoulli(local_units, local_knots))
    model.build((None, 28, 28, 1))
    x = tf.cast(tf.random.stateless_uniform([4, 28, 28, 1], seed=[5, 6]) < 0.3, tf.float32)
    logits = model.decode(tf.random.stateless_normal([4, 2], seed=[7, 8]))
    np.testing.assert_allclose(model.likelihood.log_prob(x, logits),
                               losses.bernoulli_log_likelihood(x, logits), rtol=1e-6)
    np.testing.assert_allclose(model.likelihood.mean(logits), tf.sigmoid(logits), rtol=1e-6)


def test_the_local_network_needs_units_and_knots_together(capsys):
    with pytest.raises(TfvaeError, match="needs units and at least 2 knots"):
        AutoregressiveLogits((2, 2, 1), local_units=2, local_knots=1)
    with pytest.raises(TfvaeError, match="needs units and at least 2 knots"):
        AutoregressiveLogits((2, 2, 1), local_units=2)
    with pytest.raises(TfvaeError, match="needs units and at least 2 knots"):
        MlpVAE(latent_dim=2, likelihood=AutoregressiveBernoulli(local_knots=3))
    message = cli_error(train.main, ["--likelihood", "autoregressive",
                                     "--autoregressive-local-units", "4",
                                     "--autoregressive-local-knots", "-2"], capsys)
    assert "--autoregressive-local-knots must be 0 or more" in message
    message = cli_error(train.main, ["--likelihood", "autoregressive",
                                     "--autoregressive-local-units", "-1"], capsys)
    assert "--autoregressive-local-units must be 0 or more" in message


def test_the_removed_modes_are_refused_in_one_line_naming_the_last_version():
    """MADE's hidden layer, the same seeing f(z), and the local network without knots: tfvae
    0.1.0's saved models that use them are refused, not misread."""
    for removed in ({"autoregressive_hidden_units": 8},
                    {"autoregressive_hidden_units": 8, "autoregressive_conditional": True},
                    {"autoregressive_local_units": 4, "autoregressive_local_knots": 0}):
        config = {"latent_dim": 2, "hidden_units": [8], "autoregressive_decoder": True,
                  "likelihood": "bernoulli", **removed}
        with pytest.raises(TfvaeError, match=r"removed: tfvae 0\.1\.0 is the last version that "
                                             r"trains it: pip install tfvae==0\.1\.0"):
            MlpVAE.from_config(config)


def test_an_autoregressive_model_trains_evaluates_draws_and_saves(tmp_path, mnist_dir):
    run_dir = str(tmp_path / "run")
    config = tiny_config(likelihood="autoregressive", autoregressive_local_units=4,
                         autoregressive_local_knots=3, objective="iwae", k=2, data_dir=mnist_dir,
                         epochs=2)
    elbos = train_test_elbos(config, run_dir)
    assert np.all(np.isfinite(elbos)) and elbos[-1] > elbos[0]
    saved = json.load(open(os.path.join(run_dir, "config.json")))
    assert saved["likelihood"] == "autoregressive" and saved["autoregressive_local_units"] == 4
    assert saved["autoregressive_local_knots"] == 3 and saved["binarize"] == "dynamic"
    for name in ("image_at_epoch_0002.png", "reconstruction_at_epoch_0002.png", "training.gif",
                 "manifold.png", "transition.gif"):
        assert os.path.getsize(os.path.join(run_dir, name)) > 0
    model = checkpoints.load_run(run_dir).model
    assert model.autoregressive is model.likelihood.network
    for weight in (model.autoregressive.kernel, model.autoregressive.knot_kernel,
                   model.autoregressive.window_kernel):
        assert np.abs(weight.numpy()).max() > 0  # trained from zero, and restored
    result = evaluate.evaluate_run(run_dir, k=20, subset=20, batch_size=10, chunk=10,
                                   verbose=0)
    assert np.isfinite(result["iwae"]) and result["iwae"] >= result["elbo"]
    pictures = model.sample(seed=3).numpy()
    assert pictures.shape == (100, 28, 28, 1) and 0 <= pictures.min() and pictures.max() <= 1
    # The Keras way: saved and reloaded, the kernel and the pictures come back.
    path = str(tmp_path / "ar.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    for name in ("kernel", "window_kernel", "window_bias", "local_kernel", "local_bias",
                 "knot_kernel"):
        np.testing.assert_array_equal(getattr(loaded.autoregressive, name).numpy(),
                                      getattr(model.autoregressive, name).numpy())
    np.testing.assert_allclose(loaded.sample(seed=3), pictures, atol=1e-6)


def test_an_autoregressive_model_fits_and_predicts_the_keras_way():
    model = MlpVAE(latent_dim=2, hidden_units=(16,), likelihood=AutoregressiveBernoulli())
    model.compile(keras.optimizers.Adam(1e-2))  # XLA, as for every MlpVAE
    x = tf.cast(tf.random.stateless_uniform([64, 28, 28, 1], seed=[9, 9]) < 0.2, tf.float32)
    model.fit(x, batch_size=32, epochs=2, verbose=0)
    assert np.abs(model.autoregressive.kernel.numpy()).max() > 0
    predicted = model.predict(x[:4], verbose=0)
    np.testing.assert_allclose(predicted, model.likelihood.mean(model(x[:4])[0]), atol=1e-6)
