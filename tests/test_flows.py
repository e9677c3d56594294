"""The flow posterior (--posterior-flow-steps): affine coupling layers on z."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import cli_error, ppca, randomize, tiny_config, train_test_elbos

from tfvae import checkpoints, evaluate, losses, steps, train
from tfvae.config import Config
from tfvae.errors import TfvaeError
from tfvae.models import CouplingFlow, FlowPosterior, MlpVAE


def test_untrained_flow_is_the_identity():
    flow = CouplingFlow(latent_dim=4, steps=3)
    z = tf.random.stateless_normal([5, 4], seed=[1, 2])
    out, log_det = flow(z, tf.ones([5, 6]))
    np.testing.assert_array_equal(out, z)
    np.testing.assert_array_equal(log_det, np.zeros(5))


@pytest.mark.parametrize("latent_dim", [1, 5, 8])
def test_flow_computes_the_masked_coupling_layers_with_the_context_once_per_image(latent_dim):
    flow = CouplingFlow(latent_dim=latent_dim, steps=3, hidden_units=16)
    z = tf.random.stateless_normal([4, 6, latent_dim], seed=[7, 8])  # 6 samples per image
    context = tf.random.stateless_normal([4, 1, 5], seed=[9, 10])
    flow(z, context)
    randomize(flow, seed=latent_dim, scale=0.7)
    out, log_det = flow(z, context)
    flat_context = tf.reshape(tf.broadcast_to(context, [4, 6, 5]), [24, 5])
    expected_out, expected_log_det = flow.masked(tf.reshape(z, [24, latent_dim]), flat_context)
    close = dict(rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(tf.reshape(out, [24, latent_dim]), expected_out, **close)
    np.testing.assert_allclose(tf.reshape(log_det, [24]), expected_log_det, **close)
    assert np.abs(expected_out - tf.reshape(z, [24, latent_dim])).max() > 0.1  # z moved
    # One sample per image, the context [B, C]: the same map.
    out_2d, _ = flow(z[:, 0], context[:, 0])
    np.testing.assert_allclose(out_2d, out[:, 0], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("latent_dim", [1, 2, 5])
def test_log_det_matches_the_brute_force_jacobian(latent_dim):
    flow = CouplingFlow(latent_dim=latent_dim, steps=3, hidden_units=16)
    z = tf.random.stateless_normal([6, latent_dim], seed=[3, 4])
    context = tf.random.stateless_normal([6, 4], seed=[5, 6])
    flow(z, context)
    randomize(flow, seed=latent_dim, scale=0.7)
    with tf.GradientTape() as tape:
        tape.watch(z)
        out, log_det = flow(z, context)
    jacobian = tape.batch_jacobian(out, z).numpy().astype(np.float64)  # [6, D, D]
    sign, brute_force = np.linalg.slogdet(jacobian)
    assert np.all(sign > 0)  # coupling layers preserve orientation
    np.testing.assert_allclose(log_det, brute_force, atol=1e-4)
    assert np.abs(log_det).max() > 0.1  # the check is not of a near-identity map
    if latent_dim > 1:  # and the map mixes coordinates: its Jacobian is not diagonal
        off_diagonal = jacobian - np.einsum("bii->bi", jacobian)[:, :, None] * np.eye(latent_dim)
        assert np.abs(off_diagonal).max() > 0.1


def flow_model(seed=7, scale=0.3, latent_dim=2):
    """An unconditional model with a 2-step flow posterior whose flow weights are random."""
    keras.utils.set_random_seed(seed)
    model = MlpVAE(latent_dim=latent_dim, hidden_units=(16,), posterior=FlowPosterior(2))
    model.build((None, 28, 28, 1))
    randomize(model.posterior_flow, seed, scale)
    return model


def test_lk_under_a_flow_posterior_approaches_the_exact_log_likelihood_from_below():
    """On probabilistic PCA, whose log p(x) is exact, with q(z|x) = flow(N(mean, var)).

    L_k can only approach log p(x) if log q(z|x) is the exact density of the flow's samples;
    a log-determinant off by a constant would move the limit by that constant (checked below).
    """
    weights, bias, scale, x, log_px, post_mean, post_logvar = ppca()
    model = flow_model(scale=0.1)  # moves the samples by 0.44 on average
    mean = tf.constant(post_mean + 0.3, tf.float32)
    logvar = tf.constant(post_logvar + np.array([0.5, -0.4]), tf.float32)
    repeats, gaps = 100, {}
    for k in (1, 10, 100, 1000):
        eps = tf.random.stateless_normal([len(x), repeats * k, 2], seed=[k, 1])
        z, log_q = model.posterior.sample(mean, logvar, eps)
        z, log_q = tf.cast(z, tf.float64), tf.cast(log_q, tf.float64)
        decoded = tf.einsum("bkl,ol->bko", z, weights) + bias
        log_joint = (losses.log_normal_pdf(x[:, None], decoded, 2 * np.log(scale))
                     + losses.log_normal_pdf(z, 0.0, 0.0))
        for name, shift in (("exact", 0.0), ("log q off by 0.3", -0.3)):
            log_weights = tf.reshape(log_joint - (log_q + shift), [len(x), repeats, k])
            gap = log_px[:, None] - losses.iwae_bound(log_weights).numpy()
            gaps[name, k] = gap.mean(), gap.std() / np.sqrt(gap.size)
    for k in (1, 10, 100, 1000):
        assert gaps["exact", k][0] > -3 * gaps["exact", k][1], (k, gaps)
    assert gaps["exact", 1][0] > 0.5
    assert gaps["exact", 1][0] > gaps["exact", 10][0] > gaps["exact", 100][0] > \
        gaps["exact", 1000][0]
    assert gaps["exact", 1000][0] < 0.05  # 3.39, 0.34, 0.042, 0.008 nats at k = 1 ... 1000
    assert gaps["log q off by 0.3", 1000][0] < -0.25  # a wrong density would be caught


def test_single_sample_elbo_terms_by_hand():
    model = flow_model(latent_dim=3)
    x = tf.cast(tf.random.stateless_uniform([4, 28, 28, 1], seed=[1, 1]) < 0.3, tf.float32)
    eps = tf.random.stateless_normal([4, 1, 3], seed=[2, 2])
    terms = steps.per_example_terms(model, x, None, eps, objective="elbo", kl="mc")
    # By hand: z0 = mean + sigma eps, z = f(z0); log q(z) = log N(z0; mean, var) - log |det|.
    mean, logvar = model.encode(x)
    z0 = mean + tf.exp(0.5 * logvar) * eps[:, 0]
    z, log_det = model.posterior_flow(z0, tf.concat([mean, logvar], -1))
    logits = model.decode(z)
    log_px_z = -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(x, logits), [1, 2, 3])
    log_q = tf.reduce_sum(-0.5 * ((z0 - mean) ** 2 / tf.exp(logvar) + logvar
                                  + np.log(2 * np.pi)), -1) - log_det
    log_p = tf.reduce_sum(-0.5 * (z**2 + np.log(2 * np.pi)), -1)
    np.testing.assert_allclose(terms["reconstruction"], log_px_z, rtol=1e-5)
    np.testing.assert_allclose(terms["kl"], log_q - log_p, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(terms["elbo"], log_px_z + log_p - log_q, rtol=1e-5, atol=1e-3)
    assert np.abs(log_det).max() > 0.05  # the flow did move the samples
    with pytest.raises(ValueError, match="no closed form"):
        steps.per_example_terms(model, x, None, eps, objective="elbo", kl="analytic")


def test_flow_needs_the_monte_carlo_kl(capsys):
    assert Config(posterior_flow_steps=2).resolved().kl == "mc"  # what --kl auto gives
    with pytest.raises(TfvaeError, match="add --kl mc"):
        Config(posterior_flow_steps=2, kl="analytic")
    with pytest.raises(TfvaeError, match="--posterior-flow-steps must be 0 or more"):
        Config(posterior_flow_steps=-1, kl="mc")
    assert "add --kl mc" in cli_error(train.main, ["--posterior-flow-steps", "2", "--kl",
                                                   "analytic"], capsys)


def test_a_flow_model_trains_evaluates_and_saves(tmp_path, mnist_dir):
    run_dir = str(tmp_path / "run")
    config = tiny_config(posterior_flow_steps=2, kl="mc", objective="iwae", k=2,
                         data_dir=mnist_dir, epochs=2)
    elbos = train_test_elbos(config, run_dir)
    assert np.all(np.isfinite(elbos)) and elbos[-1] > elbos[0]
    assert json.load(open(os.path.join(run_dir, "config.json")))["posterior_flow_steps"] == 2
    # The trained flow comes back from the checkpoint (its output layers start at zero).
    trained = checkpoints.load_run(run_dir).model.posterior_flow
    assert len(trained.weights) == 8
    assert all(np.abs(w.numpy()).max() > 0 for w in trained.weights if "dense_1" in w.path)
    result = evaluate.evaluate_run(run_dir, k=20, subset=20, batch_size=10, chunk=10,
                                   verbose=0)
    assert np.isfinite(result["iwae"]) and result["iwae"] >= result["elbo"]
    assert result["elbo"] == pytest.approx(result["reconstruction"] - result["kl"])
    # The Keras way: saved and reloaded, the flow draws the same samples.
    model = checkpoints.load_run(run_dir).model
    path = str(tmp_path / "flow.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    mean, logvar = model.encode(tf.zeros([2, 28, 28, 1]))
    eps = tf.random.stateless_normal([2, 5, config.latent_dim], seed=[0, 1])
    np.testing.assert_allclose(loaded.posterior.sample(mean, logvar, eps)[1],
                               model.posterior.sample(mean, logvar, eps)[1], rtol=1e-6)
