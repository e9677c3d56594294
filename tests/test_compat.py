"""Files written by tfvae 0.1.0 (main 7c5cf3a, before the models became parts) load, score the
same numbers, resume and draw; a model using a removed mode is refused in one line."""

import dataclasses
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import checkpoints, rundir, steps, train
from tfvae.errors import TfvaeError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "main_7c5cf3a")
KINDS = ["conv", "research"]  # the default model; a tiny one with the best recipe's parts


def expected(kind):
    return np.load(os.path.join(FIXTURES, f"{kind}_expected.npz"))


def check_same_numbers(model, kind, kl, config=None):
    """model(x), the ELBO terms for fixed noise, prior samples and (given the run's config)
    the IWAE terms, against what 0.1.0 computed from the same file."""
    e = expected(kind)
    logits, mean, logvar = model(e["x"])
    np.testing.assert_array_equal(logits, e["logits"])
    np.testing.assert_array_equal(mean, e["mean"])
    np.testing.assert_array_equal(logvar, e["logvar"])
    terms = steps.per_example_terms(model, e["x"], e["labels"], tf.constant(e["eps"]),
                                    objective="elbo", kl=kl)
    np.testing.assert_allclose(terms["elbo"], e["elbo"], rtol=1e-6)
    np.testing.assert_allclose(model.sample(seed=5)[:4], e["pictures"], atol=1e-6)
    if config is not None:
        iwae_step = steps.make_iwae_function(model, config, k=20, chunk=7)
        iwae = iwae_step(e["x"], e["labels"], tf.constant([3, 4], tf.int64))
        np.testing.assert_allclose(iwae, e["iwae"], rtol=1e-6)


@pytest.mark.parametrize("kind", KINDS)
def test_a_keras_file_of_0_1_0_loads_to_the_same_numbers(kind):
    model = keras.models.load_model(os.path.join(FIXTURES, f"{kind}.keras"))
    kl = "mc" if kind == "research" else "analytic"
    check_same_numbers(model, kind, kl)
    assert model.fit_kl == kl  # its compile settings came back too


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_directory_of_0_1_0_loads_to_the_same_numbers(kind):
    run = checkpoints.load_run(os.path.join(FIXTURES, f"{kind}_run"))
    check_same_numbers(run.model, kind, run.config.kl, run.config)


@pytest.mark.parametrize("kind", KINDS)
def test_a_run_directory_of_0_1_0_resumes_and_draws(kind, tmp_path, mnist_dir):
    run_dir = str(tmp_path / "run")
    shutil.copytree(os.path.join(FIXTURES, f"{kind}_run"), run_dir)
    config = dataclasses.replace(rundir.load_config(run_dir), epochs=2, data_dir=mnist_dir)
    train.train_and_evaluate(config, run_dir, progress=False)
    records = rundir.read_metrics(run_dir)
    assert [r["epoch"] for r in records] == [1, 2] and np.isfinite(records[-1]["test_elbo"])
    assert rundir.checkpoint_steps(os.path.join(run_dir, "checkpoints"))[-1] == records[-1]["step"]
    for name in ("image_at_epoch_0002.png", "training.gif", "transition.gif"):
        assert os.path.getsize(os.path.join(run_dir, name)) > 0


def test_a_keras_file_using_a_removed_mode_is_refused_naming_the_last_version():
    with pytest.raises(Exception, match=r"tfvae 0\.1\.0 is the last version"):
        keras.models.load_model(os.path.join(FIXTURES, "made.keras"))


def test_a_run_using_a_removed_mode_is_refused_in_one_line(capsys):
    with pytest.raises(TfvaeError, match=r"tfvae 0\.1\.0 is the last version"):
        checkpoints.load_run(os.path.join(FIXTURES, "made_run"))
    process = subprocess.run(
        [sys.executable, "-m", "tfvae.generate", os.path.join(FIXTURES, "made_run"),
         "--samples", "4", "--out", "unused"], capture_output=True, text=True)
    assert process.returncode == 2
    assert process.stderr.strip().count("\n") == 0 and "0.1.0" in process.stderr
