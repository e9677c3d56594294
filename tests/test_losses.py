"""The VAE's math against closed forms."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tfvae import losses


def test_log_normal_pdf_matches_the_gaussian_density():
    rng = np.random.default_rng(0)
    x, mean, logvar = (rng.normal(size=(5, 3)).astype(np.float32) for _ in range(3))
    expected = np.sum(-0.5 * np.log(2 * np.pi * np.exp(logvar))
                      - (x - mean) ** 2 / (2 * np.exp(logvar)), axis=1)
    np.testing.assert_allclose(losses.log_normal_pdf(x, mean, logvar), expected, rtol=1e-5)


def test_standard_normal_log_density_at_zero():
    value = losses.log_normal_pdf(tf.zeros([1, 7]), 0.0, 0.0)
    np.testing.assert_allclose(value, [-0.5 * math.log(2 * math.pi) * 7], rtol=1e-6)


def test_analytic_kl_is_zero_for_the_prior_and_matches_the_formula():
    np.testing.assert_allclose(losses.analytic_kl(tf.zeros([2, 4]), tf.zeros([2, 4])), [0, 0])
    # One dimension, mean 1, variance e: 0.5 * (e + 1 - 1 - 1).
    np.testing.assert_allclose(losses.analytic_kl(tf.ones([1, 1]), tf.ones([1, 1])),
                               [0.5 * (math.e - 1)], rtol=1e-6)


def test_monte_carlo_kl_averages_to_the_analytic_kl():
    mean = tf.constant([[0.5, -1.0, 2.0]])
    logvar = tf.constant([[-0.5, 0.3, 0.0]])
    eps = tf.random.stateless_normal([200_000, 3], seed=[1, 2])
    z = mean + tf.exp(0.5 * logvar) * eps
    mc = losses.log_normal_pdf(z, mean, logvar) - losses.log_normal_pdf(z, 0.0, 0.0)
    standard_error = float(tf.math.reduce_std(mc)) / math.sqrt(200_000)
    assert abs(float(tf.reduce_mean(mc)) - float(losses.analytic_kl(mean, logvar)[0])) \
        < 4 * standard_error


def test_bernoulli_log_likelihood_matches_numpy():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 28, 28, 1)).astype(np.float32)
    x = (rng.uniform(size=logits.shape) < 0.5).astype(np.float32)
    p = 1 / (1 + np.exp(-logits))
    expected = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=(1, 2, 3))
    np.testing.assert_allclose(losses.bernoulli_log_likelihood(x, logits), expected, rtol=1e-4)


def test_gaussian_log_likelihood_matches_numpy():
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(2, 28, 28, 1)).astype(np.float32)
    x = rng.uniform(size=logits.shape).astype(np.float32)
    log_scale = np.float32(-1.5)
    mean = 1 / (1 + np.exp(-logits))
    expected = np.sum(-0.5 * np.log(2 * np.pi) - log_scale
                      - (x - mean) ** 2 / (2 * np.exp(2 * log_scale)), axis=(1, 2, 3))
    np.testing.assert_allclose(losses.gaussian_log_likelihood(x, logits, log_scale), expected,
                               rtol=1e-4)


@pytest.mark.parametrize("kl", ["mc", "analytic"])
def test_elbo_is_reconstruction_minus_kl(kl):
    z = tf.constant([[0.3, -0.2]])
    mean, logvar = tf.constant([[0.1, 0.0]]), tf.constant([[-0.2, 0.4]])
    terms = losses.elbo(tf.constant([-50.0]), z, mean, logvar, kl=kl, kl_weight=0.5)
    np.testing.assert_allclose(terms["elbo"], terms["reconstruction"] - terms["kl"], rtol=1e-6)
    np.testing.assert_allclose(terms["objective"], -50.0 - 0.5 * terms["kl"], rtol=1e-6)
    if kl == "mc":  # the tutorial's log p(x|z) + log p(z) - log q(z|x)
        tutorial = (-50.0 + losses.log_normal_pdf(z, 0.0, 0.0)
                    - losses.log_normal_pdf(z, mean, logvar))
        np.testing.assert_allclose(terms["elbo"], tutorial, rtol=1e-6)


def _tiny_model_and_batch():
    import keras

    from tfvae.models import MlpVAE

    keras.utils.set_random_seed(0)
    model = MlpVAE(latent_dim=3, hidden_units=(16,))
    model.build((None, 28, 28, 1))
    x = tf.cast(tf.random.stateless_uniform([8, 28, 28, 1], seed=[0, 1]) < 0.3, tf.float32)
    eps = tf.random.stateless_normal([8, 1, 3], seed=[0, 2])
    return model, x, eps


def test_autoencoder_objective_decodes_the_mean_and_logs_the_true_elbo():
    from tfvae import steps

    model, x, eps = _tiny_model_and_batch()
    ae = steps.per_example_terms(model, x, None, eps, objective="autoencoder")
    vae = steps.per_example_terms(model, x, None, eps, objective="elbo")
    mean, _ = model.encode(x)
    np.testing.assert_allclose(ae["objective"],
                               losses.bernoulli_log_likelihood(x, model.decode(mean)), rtol=1e-6)
    for name in ("elbo", "reconstruction", "kl"):  # the logged terms are the VAE's own
        np.testing.assert_allclose(ae[name], vae[name], rtol=1e-6)


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_beta_weights_the_kl_of_the_objective_only(objective):
    import keras

    from tfvae import steps
    from tfvae.config import Config

    k = 2 if objective == "iwae" else 1
    rows, weights = [], []
    for beta in (1.0, 4.0):
        model, x, _ = _tiny_model_and_batch()
        eps = tf.random.stateless_normal([8, k, 3], seed=[0, 2])
        config = Config(model="mlp", latent_dim=3, hidden_units=(16,), batch_size=8, beta=beta,
                        objective=objective, k=k, jit_compile=False)
        optimizer = keras.optimizers.SGD(0.1)
        optimizer.build(model.trainable_variables)
        batches = tf.data.Dataset.from_tensors((x, tf.zeros([8], tf.int32), eps)).repeat()
        train = steps.make_train_function(model, optimizer, config, tf.distribute.get_strategy())
        rows.append(train(iter(batches), tf.constant(0, tf.int64), tf.constant(1)).numpy())
        weights.append(model.trainable_weights[2].numpy())  # the encoder's mean/logvar kernel
    # Before the update the logged terms are the same true ELBO, whatever beta is ...
    np.testing.assert_allclose(rows[0], rows[1], rtol=1e-6)
    np.testing.assert_allclose(rows[1][0, 0], rows[1][0, 1] - rows[1][0, 2], rtol=1e-5)
    # ... and beta changes the encoder's update, through the KL's gradient.
    assert not np.allclose(weights[0], weights[1])


def test_kl_warmup_ramps_linearly_to_one_then_stays():
    step = tf.range(7, dtype=tf.float32)
    np.testing.assert_allclose(losses.kl_warmup_weight(step, 4),
                               [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_allclose(losses.kl_warmup_weight(step, 0), np.ones(7))


VALUES = np.arange(256) / 255.0  # the 8-bit values as the data scales them


def logistic_log_probabilities(mean, log_scale, dtype=np.float32):
    """log P of each of the 256 values, [256], from losses.discretized_logistic_log_likelihood."""
    x = VALUES.astype(dtype).reshape(256, 1, 1, 1)
    return losses.discretized_logistic_log_likelihood(
        tf.constant(x), tf.fill([256, 1, 1, 1], tf.cast(mean, dtype)),
        tf.constant([log_scale], dtype)).numpy()


@pytest.mark.parametrize("mean", [0.0, 0.37, 1.0, -2.0, 3.0])
@pytest.mark.parametrize("log_scale", [-30.0, -8.0, -3.0, 0.0, 4.0, 90.0])
def test_discretized_logistic_sums_to_one_over_the_256_values(mean, log_scale):
    log_p = logistic_log_probabilities(mean, log_scale)
    assert np.isfinite(log_p).all() and np.all(log_p <= 1e-6)
    assert float(tf.reduce_logsumexp(log_p)) == pytest.approx(0.0, abs=1e-5)


def logistic_cdf(t):
    return np.exp(-np.logaddexp(0.0, -t))  # 1 / (1 + e^-t), exact far in either tail


@pytest.mark.parametrize("mean, scale", [(0.37, 0.1), (0.5, 0.02), (0.9, 0.004), (0.01, 0.05)])
def test_discretized_logistic_is_the_density_integrated_over_each_bin(mean, scale):
    # Trapezoid sums of the logistic density, 2001 points per bin; the edge values take the
    # tails, integrated from / to 40 scales away (beyond, the mass is below e^-40), with
    # 100 times as many points for their longer intervals.
    half = 0.5 / 255

    def integral(low, high, points):
        t = np.linspace(low, high, points)
        u = np.abs(t - mean) / scale
        density = np.exp(-u) / (scale * (1 + np.exp(-u)) ** 2)
        return np.sum((density[1:] + density[:-1]) / 2 * np.diff(t))

    brute_force = np.array([integral(v - half, v + half, 2001) for v in VALUES[1:-1]])
    brute_force = np.concatenate([
        [integral(min(mean, 0.0) - 40 * scale, half, 200_001)], brute_force,
        [integral(1 - half, max(mean, 1.0) + 40 * scale, 200_001)]])
    probabilities = np.exp(logistic_log_probabilities(mean, np.log(scale), np.float64))
    np.testing.assert_allclose(probabilities, brute_force, rtol=1e-5, atol=1e-12)
    assert brute_force.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("mean, log_scale", [(0.2, -3.0), (0.0, -6.0), (1.0, -6.0),
                                             (0.5, 2.0), (-1.0, -1.0)])
def test_the_edge_values_take_the_whole_tails(mean, log_scale):
    scale = np.exp(log_scale)
    log_p = logistic_log_probabilities(mean, log_scale, np.float64)
    np.testing.assert_allclose(np.exp(log_p[0]), logistic_cdf((0.5 / 255 - mean) / scale),
                               rtol=1e-6)
    np.testing.assert_allclose(np.exp(log_p[255]),  # 1 - F(t) = F(-t), the logistic's symmetry
                               logistic_cdf(-(1 - 0.5 / 255 - mean) / scale), rtol=1e-6)
    upper, lower = ((VALUES[1:-1] + side / 255 - mean) / scale for side in (0.5, -0.5))
    # F(a) - F(b), or above the mean F(-b) - F(-a): the smaller values, which don't cancel.
    middle = np.where(VALUES[1:-1] > mean, logistic_cdf(-lower) - logistic_cdf(-upper),
                      logistic_cdf(upper) - logistic_cdf(lower))
    np.testing.assert_allclose(np.exp(log_p[1:-1]), middle, rtol=1e-6, atol=1e-300)


def test_discretized_logistic_and_its_gradients_stay_finite_for_extreme_scales():
    x = tf.constant(VALUES.reshape(1, 16, 16, 1), tf.float32)
    mean = tf.Variable(tf.fill([1, 16, 16, 1], 0.5))
    for value in (-40.0, -10.0, 10.0, 100.0):
        log_scale = tf.Variable([value])
        with tf.GradientTape() as tape:
            log_p = losses.discretized_logistic_log_likelihood(x, mean, log_scale)
        grads = tape.gradient(log_p, [mean, log_scale])
        assert np.isfinite(log_p.numpy()).all(), value
        assert all(np.isfinite(g.numpy()).all() for g in grads), value
    # A sharp logistic at a pixel's own value gives it probability ~1: log P ~ 0.
    sharp = losses.discretized_logistic_log_likelihood(x, x, tf.constant([-20.0]))
    assert float(sharp[0]) == pytest.approx(0.0, abs=1e-4)


def test_discretized_logistic_sums_over_pixels_and_channels_and_broadcasts_samples():
    rng = np.random.default_rng(3)
    x = (rng.integers(0, 256, size=(2, 1, 5, 4, 3)) / 255).astype(np.float32)  # [B, 1, H, W, C]
    mean = rng.uniform(size=(2, 6, 5, 4, 3)).astype(np.float32)  # 6 samples each
    log_scale = np.float32([-3.0, -2.0, -4.0])  # one per channel
    log_p = losses.discretized_logistic_log_likelihood(x, mean, log_scale)
    assert log_p.shape == (2, 6)
    one = losses.discretized_logistic_log_likelihood(x[1, :, 2:3, 1:2, 2:3], mean[1, 4:5, 2:3,
                                                     1:2, 2:3], log_scale[2:])
    value, scale = x[1, 0, 2, 1, 2], np.exp(-4.0)
    cdf = logistic_cdf((np.float64(value) + np.array([0.5, -0.5]) / 255 - mean[1, 4, 2, 1, 2])
                       / scale)
    np.testing.assert_allclose(np.exp(one), [cdf[0] - cdf[1]], rtol=1e-4)


def test_bits_per_dim_by_hand():
    # 80 nats on a 28x28 grey image: 80 / (784 * 0.693147...) = 80 / 543.427 = 0.147214 bits.
    assert losses.bits_per_dim(80.0, (28, 28, 1)) == pytest.approx(0.147214, abs=1e-6)
    # 3 bits per dimension of a 32x32 colour image is 3 * 3072 * ln 2 = 6388.044 nats.
    assert losses.bits_per_dim(6388.044, (32, 32, 3)) == pytest.approx(3.0, abs=1e-6)
