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
