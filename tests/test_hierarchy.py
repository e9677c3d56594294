"""The two-layer model (--top-latent-dim): p(z2) p(z1|z2) p(x|z), q(z2|x) q(z1|x, z2)."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import cli_error, tiny_config, train_test_elbos
from test_flows import randomize

from tfvae import evaluate, losses, rundir, steps, train
from tfvae.config import Config
from tfvae.errors import TfvaeError
from tfvae.models import MlpVAE

LOG_2PI = np.log(2 * np.pi)


def normal_log_density(z, mean, logvar):
    """Diagonal Gaussian log-density in numpy float64, summed over the last axis."""
    z, mean, logvar = (np.asarray(a, np.float64) for a in (z, mean, logvar))
    return np.sum(-0.5 * ((z - mean) ** 2 / np.exp(logvar) + logvar + LOG_2PI), axis=-1)


def two_layer_model(latent_dim=5, top=2, prior_components=0, image_shape=(28, 28, 1), seed=3,
                    scale=None, encoder_scale=None, posterior_flow_steps=0):
    keras.utils.set_random_seed(seed)
    model = MlpVAE(latent_dim=latent_dim, hidden_units=(16,), top_latent_dim=top,
                   prior_components=prior_components, image_shape=image_shape,
                   posterior_flow_steps=posterior_flow_steps)
    model.build((None, *image_shape))
    if scale:  # the top-down network keeps its Glorot weights: scaled, its variances explode
        randomize(model.encoder, seed, encoder_scale or scale)
        randomize(model.decoder, seed + 1, scale)
    if posterior_flow_steps:  # an untrained flow is the identity
        randomize(model.posterior_flow, seed + 2, 0.1)
    return model


def test_precision_weighting_is_the_normalised_product_of_the_two_gaussians():
    rng = np.random.default_rng(0)
    mean_a, logvar_a, mean_b, logvar_b = (rng.normal(size=[3, 4]) * 2 for _ in range(4))
    mean, logvar = losses.precision_weighted(*(tf.constant(a) for a in
                                               (mean_a, logvar_a, mean_b, logvar_b)))
    # N(z; a) N(z; b) / N(z; merged) is the same constant at every z.
    points = rng.normal(size=[7, 3, 4]) * 3
    ratio = (normal_log_density(points[..., None], mean_a[..., None], logvar_a[..., None])
             + normal_log_density(points[..., None], mean_b[..., None], logvar_b[..., None])
             - normal_log_density(points[..., None], mean.numpy()[..., None],
                                  logvar.numpy()[..., None]))
    np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:1], ratio.shape), atol=1e-9)
    precision = np.exp(-logvar_a) + np.exp(-logvar_b)
    np.testing.assert_allclose(logvar, -np.log(precision), atol=1e-12)
    # Broadcasts: one encoder Gaussian against S samples' conditional priors.
    merged, _ = losses.precision_weighted(tf.zeros([2, 1, 3]), tf.zeros([2, 1, 3]),
                                          tf.ones([2, 4, 3]), tf.zeros([2, 4, 3]))
    np.testing.assert_allclose(merged, np.full([2, 4, 3], 0.5))


@pytest.mark.parametrize("prior_components", [0, 4])
def test_single_sample_elbo_terms_by_hand(prior_components):
    model = two_layer_model(prior_components=prior_components, scale=0.3)
    x = tf.cast(tf.random.stateless_uniform([4, 28, 28, 1], seed=[1, 1]) < 0.3, tf.float32)
    eps = tf.random.stateless_normal([4, 1, 5], seed=[2, 2])
    terms = steps.per_example_terms(model, x, None, eps, objective="elbo", kl="mc")
    # By hand, in numpy, from the networks' outputs: z1 is the first 3 units, z2 the last 2.
    encoded = model.encoder(tf.reshape(x, [4, -1])).numpy().astype(np.float64)
    mean, logvar = encoded[:, :5], encoded[:, 5:]
    e = eps[:, 0].numpy()
    z2 = mean[:, 3:] + np.exp(0.5 * logvar[:, 3:]) * e[:, 3:]
    top_down = model.top_down(tf.constant(z2, tf.float32)).numpy().astype(np.float64)
    prior_mean1, prior_logvar1 = top_down[:, :3], top_down[:, 3:]
    precision = np.exp(-logvar[:, :3]) + np.exp(-prior_logvar1)
    q_mean1 = (mean[:, :3] * np.exp(-logvar[:, :3]) + prior_mean1 * np.exp(-prior_logvar1)) \
        / precision
    z1 = q_mean1 + e[:, :3] / np.sqrt(precision)
    log_q = (normal_log_density(z2, mean[:, 3:], logvar[:, 3:])
             + normal_log_density(z1, q_mean1, -np.log(precision)))
    if prior_components:
        pseudo = np.clip(model.pseudo_inputs.numpy(), 0, 1).reshape(prior_components, -1)
        u = model.encoder(tf.constant(pseudo)).numpy().astype(np.float64)
        component_log_densities = normal_log_density(z2[:, None], u[None, :, 3:5],
                                                     u[None, :, 8:])
        log_p2 = np.log(np.mean(np.exp(component_log_densities), axis=1))
    else:
        log_p2 = normal_log_density(z2, 0.0, 0.0)
    log_p1 = normal_log_density(z1, prior_mean1, prior_logvar1)
    logits = model.decoder(tf.constant(np.concatenate([z1, z2], -1), tf.float32)).numpy()
    xs = x.numpy()
    log_px_z = np.sum(xs * logits - np.logaddexp(0, logits), axis=(1, 2, 3))
    np.testing.assert_allclose(terms["reconstruction"], log_px_z, rtol=1e-5)
    np.testing.assert_allclose(terms["kl"], log_q - log_p1 - log_p2, rtol=1e-4, atol=2e-3)
    np.testing.assert_allclose(terms["elbo"], log_px_z + log_p1 + log_p2 - log_q,
                               rtol=1e-5, atol=2e-3)
    assert np.abs(prior_mean1).max() > 0.1  # the top-down network did shape q(z1|x, z2)
    with pytest.raises(ValueError, match="no closed form"):
        steps.per_example_terms(model, x, None, eps, objective="elbo", kl="analytic")


def grid_quadrature(model, half_width=7.0, points=401):
    """z on a [points^2, 2] grid over [-w, w]^2 and each point's area, for a 1 + 1 model."""
    axis = np.linspace(-half_width, half_width, points)
    z = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    return tf.constant(z, tf.float32), (axis[1] - axis[0]) ** 2


@pytest.mark.parametrize("prior_components,posterior_flow_steps", [(0, 0), (3, 0), (3, 2)])
def test_lk_approaches_the_quadrature_log_likelihood_from_below(prior_components,
                                                                posterior_flow_steps):
    """z1 and z2 one unit each, 2x2 images: log p(x) = log of a 2-D integral, by quadrature.

    The model's prior must integrate to 1, and L_k, averaged over repeats, rise towards
    log p(x) with k without passing it; a log q off by 0.3 nats would pass it (checked).
    With a flow after the two-layer draw, log q must carry the flow's log-determinant.
    """
    model = two_layer_model(latent_dim=2, top=1, prior_components=prior_components,
                            image_shape=(2, 2, 1), scale=0.8, encoder_scale=0.3,
                            posterior_flow_steps=posterior_flow_steps)
    z, area = grid_quadrature(model)
    log_prior = tf.cast(model.log_prior(z), tf.float64).numpy()
    assert np.exp(log_prior).sum() * area == pytest.approx(1.0, abs=1e-4)
    x = tf.constant([[0, 1, 1, 0], [1, 1, 1, 1], [0, 0, 1, 0]], tf.float32)
    images = tf.reshape(x, [3, 2, 2, 1])
    logits = tf.reshape(model.decode(z), [1, -1, 4]).numpy().astype(np.float64)
    log_px_z = np.sum(x.numpy()[:, None] * logits - np.logaddexp(0, logits), -1)  # [3, grid]
    log_px = np.log(np.sum(np.exp(log_px_z + log_prior), axis=1) * area)
    mean, logvar = model.encode(images)
    repeats, gaps = 200, {}
    for k in (1, 10, 100, 1000):
        eps = tf.random.stateless_normal([3, repeats * k, 2], seed=[k, 2])
        z_q, log_q = model.posterior_sample(mean, logvar, eps)
        logits = tf.reshape(model.decode(tf.reshape(z_q, [-1, 2])), [3, -1, 2, 2, 1])
        log_joint = losses.bernoulli_log_likelihood(images[:, None], logits) \
            + model.log_prior(z_q)
        for name, shift in (("exact", 0.0), ("log q off by 0.3", -0.3)):
            log_weights = tf.reshape(tf.cast(log_joint - (log_q + shift), tf.float64),
                                     [3, repeats, k])
            gap = log_px[:, None] - losses.iwae_bound(log_weights).numpy()
            gaps[name, k] = gap.mean(), gap.std() / np.sqrt(gap.size)
    for k in (1, 10, 100, 1000):
        assert gaps["exact", k][0] > -3 * gaps["exact", k][1] - 1e-4, (k, gaps)
    assert gaps["exact", 1][0] > gaps["exact", 10][0] > gaps["exact", 1000][0], gaps
    assert gaps["exact", 1][0] > 0.1, gaps  # an untrained encoder: q is far from the posterior
    assert gaps["exact", 1000][0] < 0.02, gaps
    assert gaps["log q off by 0.3", 1000][0] < -0.25, gaps


def test_prior_samples_follow_the_prior_density():
    model = two_layer_model(latent_dim=2, top=1, prior_components=3, image_shape=(2, 2, 1),
                            scale=0.8)
    z, area = grid_quadrature(model)
    density = np.exp(tf.cast(model.log_prior(z), tf.float64).numpy()) * area
    z = z.numpy().astype(np.float64)
    grid_moments = [density @ f for f in (z[:, 0], z[:, 1], z[:, 0] ** 2, z[:, 0] * z[:, 1])]
    draws = model.sample_prior(40000, [5, 6]).numpy().astype(np.float64)
    for f, expected in zip((draws[:, 0], draws[:, 1], draws[:, 0] ** 2,
                            draws[:, 0] * draws[:, 1]), grid_moments):
        assert f.mean() == pytest.approx(expected, abs=4 * f.std() / np.sqrt(len(f)) + 1e-3)
    prior_means, _ = model.conditional_prior(tf.constant([[-2.0], [2.0]]))
    assert abs(float(prior_means[0, 0] - prior_means[1, 0])) > 0.1  # z1 depends on z2


def test_two_layers_need_a_lower_layer_and_the_monte_carlo_kl(capsys):
    with pytest.raises(TfvaeError, match="add --kl mc"):
        Config(top_latent_dim=2, kl="analytic")
    assert Config(top_latent_dim=2).resolved().kl == "mc"
    with pytest.raises(TfvaeError, match="leaves no units"):
        Config(top_latent_dim=20, kl="mc")
    with pytest.raises(TfvaeError, match="--top-latent-dim must be 0 or more"):
        Config(top_latent_dim=-1, kl="mc")
    with pytest.raises(TfvaeError, match="no KL term"):
        Config(top_latent_dim=2, kl="mc", objective="autoencoder")
    assert "leaves no units" in cli_error(
        train.main, ["--latent-dim", "4", "--top-latent-dim", "4", "--kl", "mc"], capsys)


def test_a_two_layer_model_trains_evaluates_and_saves(tmp_path, mnist_dir):
    run_dir = str(tmp_path / "run")
    config = tiny_config(top_latent_dim=1, kl="mc", objective="iwae", k=2, prior_components=5,
                         data_dir=mnist_dir, epochs=2)
    elbos = train_test_elbos(config, run_dir)
    assert np.all(np.isfinite(elbos)) and elbos[-1] > elbos[0]
    assert json.load(open(os.path.join(run_dir, "config.json")))["top_latent_dim"] == 1
    for name in ("manifold.png", "transition.gif"):
        assert os.path.getsize(os.path.join(run_dir, name)) > 0
    result = evaluate.evaluate_run(run_dir, k=20, subset=20, batch_size=10, chunk=10,
                                   verbose=0)
    assert np.isfinite(result["iwae"]) and result["iwae"] >= result["elbo"]
    # The trained top-down network comes back from the checkpoint and from a .keras file.
    model = rundir.load_run(run_dir).model
    path = str(tmp_path / "two_layers.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    z2 = tf.constant([[-1.0], [0.5]])
    np.testing.assert_allclose(loaded.conditional_prior(z2), model.conditional_prior(z2),
                               rtol=1e-6)
    assert np.abs(model.top_down.weights[0].numpy()).max() > 0
    np.testing.assert_allclose(loaded.sample_prior(3, [1, 2]), model.sample_prior(3, [1, 2]),
                               rtol=1e-6)
