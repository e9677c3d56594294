"""The IWAE bound L_k: against the ELBO, as k grows, against an exact likelihood, chunked."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import ppca

from tfvae import losses, steps
from tfvae.config import Config
from tfvae.models import MlpVAE, build_model

LATENT = 3


@pytest.fixture(scope="module")
def tiny_model():
    keras.utils.set_random_seed(7)
    model = MlpVAE(latent_dim=LATENT, hidden_units=(16,))
    model.build((None, 28, 28, 1))
    return model


def binary_images(num, seed=0):
    uniform = tf.random.stateless_uniform([num, 28, 28, 1], seed=[seed, 1])
    return tf.cast(uniform < 0.3, tf.float32)


def slicing_draw(eps):
    """A `draw` for steps.iwae_terms that hands out slices of one fixed noise tensor."""
    return lambda start, size: tf.slice(eps, [0, start, 0], [-1, size, -1])


def test_l1_on_synthetic_tensors_is_the_single_sample_elbo():
    rng = np.random.default_rng(0)
    log_px_z = rng.normal(-100, 5, size=6).astype(np.float32)
    z, mean, logvar = (rng.normal(size=(6, 4)).astype(np.float32) for _ in range(3))
    log_weights = losses.log_importance_weights(log_px_z[:, None], z[:, None], mean, logvar)
    expected = losses.elbo(log_px_z, z, mean, logvar, kl="mc")["elbo"]
    np.testing.assert_allclose(losses.iwae_bound(log_weights), expected, rtol=1e-6)


def test_l1_of_a_model_is_its_single_sample_elbo(tiny_model):
    x, labels = binary_images(5), tf.zeros([5], tf.int32)
    eps = tf.random.stateless_normal([5, 1, LATENT], seed=[3, 4])
    elbo = steps.per_example_terms(tiny_model, x, labels, eps, kl="mc")["elbo"]
    iwae = steps.per_example_terms(tiny_model, x, labels, eps, objective="iwae")["objective"]
    terms = steps.iwae_terms(tiny_model, x, labels, slicing_draw(eps), k=1, chunk=1)
    np.testing.assert_allclose(iwae, elbo, rtol=1e-5)
    np.testing.assert_allclose(terms["iwae"], elbo, rtol=1e-5)
    assert np.all(terms["iwae"] < -100)  # an untrained model: a real, far from trivial value


def test_lk_does_not_decrease_with_k(tiny_model):
    # 1000 samples per image split into 1000 groups of 1, 100 of 10, 10 of 100: the same draws
    # for every k, so the means differ by the bound's gain, and the test is deterministic.
    x, labels = binary_images(8), tf.zeros([8], tf.int32)
    eps = tf.random.stateless_normal([8, 1000, LATENT], seed=[5, 6])
    mean, logvar = tiny_model.encode(x, labels)
    log_weights, _ = steps.importance_weights(tiny_model, x, labels, mean, logvar, eps)
    bounds = {}
    for k in (1, 10, 100):
        per_group = losses.iwae_bound(tf.reshape(log_weights, [8, 1000 // k, k])).numpy()
        # The images are fixed, so only the spread of each image's groups is noise.
        within = per_group.var(axis=1, ddof=1) / per_group.shape[1]
        bounds[k] = (per_group.mean(), np.sqrt(within.sum()) / 8)
    for small, large in ((1, 10), (10, 100)):
        gain = bounds[large][0] - bounds[small][0]
        noise = np.hypot(bounds[large][1], bounds[small][1])
        assert gain > 3 * noise, (small, large, bounds)


def ppca_log_weights(model, mean, logvar, k, seed):
    """log p(x, z_i) - log q(z_i|x) [batch, k] with q = N(mean, exp(logvar)), in float64."""
    weights, bias, scale, x, _, _, _ = model
    eps = tf.random.stateless_normal([len(x), k, weights.shape[1]], seed=[seed, 0],
                                     dtype=tf.float64)
    z = mean[:, None] + np.exp(0.5 * logvar)[:, None] * eps
    decoded = tf.einsum("bkl,ol->bko", z, weights) + bias
    log_px_z = losses.log_normal_pdf(x[:, None], decoded, 2 * np.log(scale))
    return losses.log_importance_weights(log_px_z, z, mean, logvar)


def test_with_the_exact_posterior_every_weight_is_the_marginal_likelihood():
    model = ppca()
    _, _, _, _, log_px, post_mean, post_logvar = model
    log_weights = ppca_log_weights(model, post_mean, post_logvar, k=50, seed=1)
    np.testing.assert_allclose(log_weights, np.broadcast_to(log_px[:, None], (4, 50)), atol=1e-9)


def test_lk_approaches_the_exact_log_likelihood_from_below():
    model = ppca()
    _, _, _, _, log_px, post_mean, post_logvar = model
    # A deliberately imperfect encoder: shifted, and too narrow in one direction.
    mean, logvar = post_mean + 0.4, post_logvar + np.array([0.8, -0.7])
    gaps, repeats = {}, 200
    for k in (1, 10, 100, 1000):
        log_weights = ppca_log_weights(model, mean, logvar, k * repeats, seed=k)
        bounds = losses.iwae_bound(tf.reshape(log_weights, [4, repeats, k])).numpy()
        gap = log_px[:, None] - bounds  # [4, repeats]
        standard_error = gap.std(axis=1) / np.sqrt(repeats)
        assert np.all(gap.mean(axis=1) > -3 * standard_error), (k, gap.mean(axis=1))
        gaps[k] = gap.mean()
    assert gaps[1] > 0.5  # the imperfect encoder's ELBO gap is real ...
    assert gaps[1] > gaps[10] > gaps[100] > gaps[1000]  # ... and closes as k grows
    assert gaps[1000] < 0.05  # from 2.1 nats at k = 1 (0.36, 0.11, 0.022 at k = 10, 100, 1000)


def test_chunked_logsumexps_combine_exactly():
    log_weights = tf.random.stateless_normal([3, 1000], seed=[8, 9], stddev=20.0, dtype=tf.float64)
    bounds = [0, 7, 300, 301, 999, 1000]  # uneven chunks, one of a single sample
    chunk_lse = tf.stack([tf.reduce_logsumexp(log_weights[:, a:b], axis=1)
                          for a, b in zip(bounds, bounds[1:])], axis=1)
    np.testing.assert_allclose(losses.iwae_bound_from_chunks(chunk_lse, 1000),
                               losses.iwae_bound(log_weights), rtol=1e-12)


def test_a_model_chunked_gives_the_one_piece_value(tiny_model):
    x, labels = binary_images(4, seed=2), tf.zeros([4], tf.int32)
    eps = tf.random.stateless_normal([4, 50, LATENT], seed=[10, 11])
    whole = steps.iwae_terms(tiny_model, x, labels, slicing_draw(eps), k=50, chunk=50)
    chunked = steps.iwae_terms(tiny_model, x, labels, slicing_draw(eps), k=50, chunk=7)
    for name in steps.IWAE_METRIC_NAMES:
        np.testing.assert_allclose(chunked[name], whole[name], rtol=1e-5, err_msg=name)
    mean, logvar = tiny_model.encode(x, labels)
    log_weights, _ = steps.importance_weights(tiny_model, x, labels, mean, logvar, eps)
    np.testing.assert_allclose(whole["iwae"], losses.iwae_bound(log_weights), rtol=1e-5)


def test_compiled_iwae_function_is_finite_and_at_least_the_elbo(tiny_model):
    config = Config(model="mlp", latent_dim=LATENT, hidden_units=(16,))
    iwae_step = steps.make_iwae_function(tiny_model, config, k=30, chunk=8)
    rows = iwae_step(binary_images(6), tf.zeros([6], tf.int32), tf.constant([1, 2], tf.int64))
    assert rows.shape == (6, len(steps.IWAE_METRIC_NAMES)) and np.isfinite(rows).all()
    iwae, elbo, reconstruction, kl = np.asarray(rows).T
    np.testing.assert_allclose(elbo, reconstruction - kl, rtol=1e-5)
    assert np.all(kl >= 0) and iwae.mean() > elbo.mean()
    again = iwae_step(binary_images(6), tf.zeros([6], tf.int32), tf.constant([1, 2], tf.int64))
    np.testing.assert_array_equal(again, rows)  # the noise is a function of the seed alone


@pytest.fixture(scope="module")
def logistic_model():
    """A conv model of 8-bit colour images under the discretized logistic likelihood."""
    keras.utils.set_random_seed(8)
    config = Config(dataset="cifar10", image_size=(12, 16), channels=3, likelihood="logistic",
                    binarize="none", latent_dim=LATENT, conv_filters=(8, 16))
    return config, build_model(config)


def byte_images(num, shape=(12, 16, 3), seed=0):
    values = tf.random.stateless_uniform([num, *shape], seed=[seed, 2], maxval=256, dtype=tf.int32)
    return tf.cast(values, tf.float32) / 255.0


def test_logistic_log_likelihood_takes_a_location_and_scale_per_pixel(logistic_model):
    _, model = logistic_model
    x = byte_images(2)
    logits, _, _ = model(x)
    assert logits.shape == (2, 12, 16, 6)  # a location and a log-scale per pixel and channel
    location = losses.logistic_location(logits[..., :3])
    log_scale = np.maximum(logits[..., 3:], losses.MIN_LOG_SCALE)
    expected = losses.discretized_logistic_log_likelihood(x, location, log_scale)
    np.testing.assert_array_equal(model.likelihood.log_prob(x, logits), expected)
    np.testing.assert_array_equal(losses.logistic_parameters(tf.fill([1, 2], -50.0))[1],
                                  [[losses.MIN_LOG_SCALE]])
    # The location reaches past both ends, so 0 and 255 can take nearly all the mass ...
    margin = losses.LOGISTIC_MARGIN
    np.testing.assert_allclose(losses.logistic_location(tf.constant([-30.0, 0.0, 30.0])),
                               [-margin, 0.5, 1 + margin], atol=1e-6)
    # ... and pictures show it clipped to [0, 1].
    np.testing.assert_array_equal(model.likelihood.mean(logits),
                                  tf.clip_by_value(location, 0.0, 1.0))


def test_logistic_l1_is_the_elbo_and_lk_grows_with_k(logistic_model):
    _, model = logistic_model
    x, labels = byte_images(6, seed=1), tf.zeros([6], tf.int32)
    eps = tf.random.stateless_normal([6, 400, LATENT], seed=[12, 13])
    elbo = steps.per_example_terms(model, x, labels, eps[:, :1], kl="mc")["elbo"]
    l1 = steps.iwae_terms(model, x, labels, slicing_draw(eps), k=1, chunk=1)["iwae"]
    np.testing.assert_allclose(l1, elbo, rtol=1e-5)
    mean, logvar = model.encode(x, labels)
    log_weights, _ = steps.importance_weights(model, x, labels, mean, logvar, eps)
    assert np.isfinite(log_weights).all()
    # The same 400 draws as 400 groups of 1 and 20 groups of 20: L_20 >= L_1 in expectation.
    groups = {k: losses.iwae_bound(tf.reshape(log_weights, [6, 400 // k, k])).numpy()
              for k in (1, 20)}
    noise = np.hypot(*(np.sqrt((g.var(axis=1, ddof=1) / g.shape[1]).sum()) / 6
                       for g in groups.values()))
    assert groups[20].mean() - groups[1].mean() > 3 * noise


def test_compiled_iwae_function_under_the_logistic_likelihood(logistic_model):
    config, model = logistic_model
    iwae_step = steps.make_iwae_function(model, config, k=40, chunk=16)
    rows = np.asarray(iwae_step(byte_images(5, seed=2), tf.zeros([5], tf.int32),
                                tf.constant([3, 4], tf.int64)))
    assert rows.shape == (5, 4) and np.isfinite(rows).all()
    iwae, elbo, reconstruction, kl = rows.T
    np.testing.assert_allclose(elbo, reconstruction - kl, rtol=1e-5)
    assert iwae.mean() > elbo.mean()
    # Random bytes are far from anything learned: a real negative log-likelihood, in bits/dim
    # a few (a uniform distribution over 256 values is 8).
    assert 1 < losses.bits_per_dim(-iwae.mean(), (12, 16, 3)) < 20
