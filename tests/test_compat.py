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


# tfvae 0.2.0 (main 3e55aa5): a conv model on colour images, made before its colour path.
COLOUR = os.path.join(os.path.dirname(__file__), "fixtures", "main_3e55aa5")


def check_colour_numbers(model):
    e = np.load(os.path.join(COLOUR, "colour_expected.npz"))
    assert model.decoder_film is False
    logits, mean, logvar = model(e["x"])
    np.testing.assert_array_equal(logits, e["logits"])
    np.testing.assert_array_equal(mean, e["mean"])
    terms = steps.per_example_terms(model, e["x"], e["labels"], tf.constant(e["eps"]),
                                    objective="elbo", kl="analytic")
    np.testing.assert_allclose(terms["elbo"], e["elbo"], rtol=1e-6)
    np.testing.assert_allclose(model.sample(seed=5)[:4], e["pictures"], atol=1e-6)


def test_a_colour_conv_model_of_0_2_0_loads_without_the_colour_path_to_the_same_numbers():
    check_colour_numbers(keras.models.load_model(os.path.join(COLOUR, "colour.keras")))
    check_colour_numbers(checkpoints.load_run(os.path.join(COLOUR, "colour_run")).model)


def colour_folder(path):
    """The 64 random images the 0.2.0 colour run was trained on, written again."""
    import imageio.v2 as imageio

    os.makedirs(path)
    images = np.random.default_rng(0).integers(0, 256, (64, 16, 16, 3), dtype=np.uint8)
    for index, image in enumerate(images):
        imageio.imwrite(os.path.join(path, f"{index:02d}.png"), image, format="png")
    return path


def test_a_colour_run_of_0_2_0_resumes_as_it_was_and_a_new_command_is_told_why_not(tmp_path):
    run_dir = str(tmp_path / "run")
    shutil.copytree(os.path.join(COLOUR, "colour_run"), run_dir)
    folder = colour_folder(str(tmp_path / "images"))
    config = dataclasses.replace(rundir.load_config(run_dir), dataset=folder, epochs=2)
    rundir.write_json(os.path.join(run_dir, "config.json"), dataclasses.asdict(config))
    train.train_and_evaluate(config, run_dir, progress=False)  # its own config: no path
    assert [r["epoch"] for r in rundir.read_metrics(run_dir)] == [1, 2]
    assert checkpoints.load_run(run_dir).model.decoder_film is False
    process = subprocess.run(
        [sys.executable, "-m", "tfvae.train", "--dataset", folder, "--latent-dim", "2",
         "--conv-filters", "4", "8", "--epochs", "3", "--batch-size", "16",
         "--steps-per-call", "2", "--test-fraction", "0.25", "--out", run_dir],
        capture_output=True, text=True)
    assert process.returncode == 2 and "Traceback" not in process.stderr, process.stderr
    assert "decoder_film (False there, True now)" in process.stderr.strip().splitlines()[-1]
