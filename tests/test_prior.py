"""The VampPrior (a learned mixture prior), the cosine learning-rate schedule and weight decay."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_config

from tfvae import losses, rundir, steps, train
from tfvae.config import Config
from tfvae.errors import TfvaeError
from tfvae.models import MlpVAE

LATENT = 3
COMPONENTS = 7


@pytest.fixture(scope="module")
def vamp_model():
    """A VampPrior model whose pseudo-inputs are distinct images, partly outside [0, 1]."""
    keras.utils.set_random_seed(11)
    model = MlpVAE(latent_dim=LATENT, hidden_units=(16,), prior_components=COMPONENTS)
    model.build((None, 28, 28, 1))
    images = tf.random.stateless_uniform(model.pseudo_inputs.shape, seed=[5, 6],
                                         minval=-1.0, maxval=2.0)
    model.pseudo_inputs.assign(images)
    return model


def numpy_mixture_log_density(z, means, logvars):
    """log (1/K) sum_k N(z; means[k], exp(logvars[k])) by brute force, in float64."""
    z, means, logvars = (np.asarray(a, np.float64) for a in (z, means, logvars))
    diff = z[..., None, :] - means  # [..., K, D]
    per_component = np.sum(-0.5 * (diff**2 / np.exp(logvars) + logvars + np.log(2 * np.pi)), -1)
    top = per_component.max(-1, keepdims=True)
    return (top + np.log(np.mean(np.exp(per_component - top), -1, keepdims=True)))[..., 0]


def test_mixture_log_density_matches_brute_force():
    rng = np.random.default_rng(0)
    means = rng.normal(size=(COMPONENTS, 4)).astype(np.float32)
    logvars = rng.normal(-1.0, 0.5, size=(COMPONENTS, 4)).astype(np.float32)
    z = rng.normal(size=(5, 6, 4)).astype(np.float32)
    value = losses.log_mixture_normal_pdf(z, means, logvars)
    assert value.shape == (5, 6)
    np.testing.assert_allclose(value, numpy_mixture_log_density(z, means, logvars), rtol=1e-5)


@pytest.mark.parametrize("logvar", [-6.0, -11.0, -14.0])
def test_mixture_log_density_stays_exact_for_narrow_components(logvar):
    # Samples next to components at |mean| ~ 3 with tiny variances: the expanded squared
    # distance subtracts nearly equal terms (in float32 it was off by ~1 nat at logvar -11).
    rng = np.random.default_rng(2)
    means = rng.normal(0, 3, size=(50, 20)).astype(np.float32)
    logvars = np.full((50, 20), logvar, np.float32)
    z = means[rng.integers(0, 50, 400)] + np.exp(logvar / 2) * rng.normal(size=(400, 20))
    z = z.astype(np.float32)
    expected = numpy_mixture_log_density(z, means, logvars)
    np.testing.assert_allclose(losses.log_mixture_normal_pdf(z, means, logvars), expected,
                               rtol=0, atol=1e-3)


def test_one_component_mixture_is_the_gaussian():
    rng = np.random.default_rng(1)
    mean, logvar = rng.normal(size=(2, 1, 5)).astype(np.float32)
    z = rng.normal(size=(8, 5)).astype(np.float32)
    np.testing.assert_allclose(losses.log_mixture_normal_pdf(z, mean, logvar),
                               losses.log_normal_pdf(z, mean, logvar), rtol=1e-5)


def test_vamp_prior_is_the_mixture_of_the_clipped_pseudo_inputs_posteriors(vamp_model):
    means, logvars = vamp_model.encode(tf.clip_by_value(vamp_model.pseudo_inputs, 0.0, 1.0))
    z = tf.random.stateless_normal([4, 2, LATENT], seed=[1, 2])
    np.testing.assert_allclose(vamp_model.log_prior(z), numpy_mixture_log_density(
        z, means, logvars), rtol=1e-5)
    unclipped_means, _ = vamp_model.encode(vamp_model.pseudo_inputs)
    assert not np.allclose(unclipped_means, means, atol=1e-3)  # the clip matters here


def test_vamp_prior_samples_are_seeded_and_follow_the_mixture(vamp_model):
    draws = vamp_model.sample_prior(20_000, [3, 4]).numpy()
    np.testing.assert_array_equal(draws, vamp_model.sample_prior(20_000, [3, 4]).numpy())
    assert not np.array_equal(draws, vamp_model.sample_prior(20_000, [3, 5]).numpy())
    means, logvars = (t.numpy() for t in vamp_model.prior_components_params())
    # Components far apart relative to the standard error: a sampler stuck on one component,
    # or ignoring the components' own variances, fails the moment checks below.
    assert np.ptp(means, axis=0).min() > 0.1
    # The mixture's mean and variance per dimension, against the draws' (4 standard errors).
    mixture_mean = means.mean(0)
    mixture_var = (np.exp(logvars) + means**2).mean(0) - mixture_mean**2
    standard_error = np.sqrt(mixture_var / len(draws))
    assert np.all(np.abs(draws.mean(0) - mixture_mean) < 4 * standard_error)
    np.testing.assert_allclose(draws.var(0), mixture_var, rtol=0.05)


def test_standard_prior_samples_are_the_standard_normal_draws():
    model = MlpVAE(latent_dim=LATENT, hidden_units=(8,))
    np.testing.assert_array_equal(model.sample_prior(5, [1, 2]),
                                  tf.random.stateless_normal([5, LATENT], seed=[1, 2]))


def test_l1_under_the_vamp_prior_is_the_single_sample_elbo_and_lk_is_above(vamp_model):
    x = tf.cast(tf.random.stateless_uniform([6, 28, 28, 1], seed=[0, 1]) < 0.3, tf.float32)
    labels = tf.zeros([6], tf.int32)
    eps = tf.random.stateless_normal([6, 1, LATENT], seed=[3, 4])
    elbo = steps.per_example_terms(vamp_model, x, labels, eps, kl="mc")["elbo"]
    iwae = steps.per_example_terms(vamp_model, x, labels, eps, objective="iwae")["objective"]
    np.testing.assert_allclose(iwae, elbo, rtol=1e-5)
    # Both equal log p(x|z) + log p(z) - log q(z|x) written out here under the VampPrior.
    mean, logvar = vamp_model.encode(x)
    z = vamp_model.reparameterize(mean, logvar, eps[:, 0])
    log_px_z = losses.bernoulli_log_likelihood(x, vamp_model.decode(z))
    log_pz = numpy_mixture_log_density(z, *vamp_model.prior_components_params())
    log_qz_x = losses.log_normal_pdf(z, mean, logvar)
    np.testing.assert_allclose(elbo, log_px_z + log_pz - log_qz_x, rtol=1e-5)
    terms = steps.iwae_terms(vamp_model, x, labels, lambda start, size: eps, k=1, chunk=1)
    np.testing.assert_allclose(terms["iwae"], elbo, rtol=1e-5)
    np.testing.assert_allclose(terms["kl"], log_qz_x - log_pz, rtol=1e-4)
    assert not np.allclose(losses.log_normal_pdf(z, 0.0, 0.0), log_pz, atol=0.1)
    config = Config(model="mlp", latent_dim=LATENT, kl="mc", prior_components=COMPONENTS)
    iwae_step = steps.make_iwae_function(vamp_model, config, k=200, chunk=50)
    bound, sampled_elbo = tf.unstack(iwae_step(x, labels, tf.constant([1, 2], tf.int64))[:, :2],
                                     axis=1)
    assert np.all(np.isfinite(bound)) and np.all(bound > sampled_elbo)


@pytest.mark.parametrize("changes, message", [
    ({"prior_components": 10, "kl": "analytic"}, "add --kl mc"),
    ({"prior_components": 10, "kl": "mc", "conditional": True}, "unconditional models"),
    ({"prior_components": -1}, "--prior-components must be 0 or more"),
    ({"lr_schedule": "step"}, "--lr-schedule must be one of constant, cosine"),
    ({"weight_decay": -0.1}, "--weight-decay must be 0 or more"),
    ({"weight_decay": float("inf")}, "--weight-decay must be 0 or more"),
])
def test_bad_prior_and_schedule_values_are_rejected(changes, message):
    with pytest.raises(TfvaeError, match=message):
        dataclasses.replace(Config(), **changes)


def test_vamp_prior_with_cosine_schedule_trains_and_restores(tmp_path, mnist_dir):
    config = tiny_config(hidden_units=(64,), latent_dim=4, prior_components=16, kl="mc",
                         objective="iwae", k=3, lr_schedule="cosine", epochs=3,
                         data_dir=mnist_dir, train_size=6400, test_size=500, steps_per_call=50)
    train.train_and_evaluate(config, str(tmp_path))
    records = rundir.read_metrics(str(tmp_path))
    assert records[-1]["test_elbo"] > records[0]["test_elbo"] + 3
    # Cosine: lr(step) = 1e-3 * (1 + cos(pi * step / total)) / 2, logged after each epoch.
    total = 3 * (6400 // 64)
    for record in records:
        expected = 1e-3 * 0.5 * (1 + np.cos(np.pi * record["step"] / total))
        np.testing.assert_allclose(record["learning_rate"], expected, rtol=1e-4, atol=1e-9)
    assert (tmp_path / "image_at_epoch_0003.png").is_file()
    # The pseudo-inputs learned (they started near 0.05) and come back from the checkpoint.
    run = rundir.load_run(str(tmp_path))
    learned = run.model.pseudo_inputs.numpy()
    assert np.mean(np.abs(learned - 0.05) > 0.03) > 0.1
    fresh = MlpVAE(latent_dim=4, hidden_units=(64,), prior_components=16)
    fresh.build((None, 28, 28, 1))
    assert np.mean(np.abs(fresh.pseudo_inputs.numpy() - 0.05) > 0.03) < 0.01


def test_weight_decay_shrinks_the_networks_weights_and_leaves_the_pseudo_inputs(vamp_model):
    """With zero gradients Adam moves nothing, so one step is the decay alone: w * (1 - lr wd)."""
    config = Config(model="mlp", latent_dim=LATENT, hidden_units=(16,),
                    prior_components=COMPONENTS, kl="mc", learning_rate=0.01, weight_decay=5.0)
    before = [variable.numpy() for variable in vamp_model.trainable_variables]
    optimizer = train.make_optimizer(config, vamp_model)
    optimizer.apply_gradients([(tf.zeros_like(variable), variable)
                               for variable in vamp_model.trainable_variables])
    for old, variable in zip(before, vamp_model.trainable_variables):
        shrink = 1.0 if variable is vamp_model.pseudo_inputs else 1 - 0.01 * 5.0
        np.testing.assert_allclose(variable.numpy(), old * shrink, rtol=1e-6, atol=1e-7)
        variable.assign(old)
    assert np.mean([np.any(old != 0) for old in before]) > 0.5
