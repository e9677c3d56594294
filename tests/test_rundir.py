"""tfvae.rundir: loading runs, old and new; resuming; what the run directory refuses."""

import dataclasses
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import cli_error

from tfvae import checkpoints, generate, rundir, train
from tfvae.config import Config
from tfvae.errors import TfvaeError

OLD_RUN = os.path.join(os.path.dirname(__file__), "fixtures", "run_0.1.0")


def test_load_run_restores_the_saved_weights(run):
    run_dir, saved = run
    keras.utils.set_random_seed(123)  # a fresh model would start from other weights
    loaded = checkpoints.load_run(run_dir).model
    z = tf.random.stateless_normal([4, 2], seed=[1, 2])
    np.testing.assert_allclose(loaded.decode(z), saved.decode(z), atol=1e-6)


def test_load_run_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    rundir.prepare(str(tmp_path), Config(latent_dim=2))
    err = cli_error(generate.main, [str(tmp_path), "--samples", "4"], capsys)
    assert err.startswith(f"error: {tmp_path} has no checkpoint yet")


def test_a_run_written_by_tfvae_0_1_0_loads_resumes_and_draws(tmp_path, mnist_dir, capsys):
    run_dir = str(tmp_path / "old")
    shutil.copytree(OLD_RUN, run_dir)
    old = checkpoints.load_run(run_dir)
    assert old.step == 8 and old.config.hidden_units == (8,)
    before = [w.numpy() for w in old.model.weights]
    record = train.main(["--out", run_dir, "--data-dir", mnist_dir, "--model", "mlp",
                         "--hidden-units", "8", "--latent-dim", "2", "--train-size", "256",
                         "--test-size", "100", "--batch-size", "64", "--steps-per-call", "4",
                         "--epochs", "3"])
    assert "resuming" in capsys.readouterr().out
    assert record["epoch"] == 3 and record["step"] == 12
    assert [r["epoch"] for r in rundir.read_metrics(run_dir)] == [1, 2, 3]
    resumed = checkpoints.load_run(run_dir)
    assert resumed.step == 12
    assert any(not np.array_equal(a, b.numpy()) for a, b in zip(before, resumed.model.weights))
    paths = generate.main([run_dir, "--samples", "4", "--manifold", "--transition", "--scatter",
                           "--data-dir", mnist_dir])
    assert len(paths) == 4 and all(os.path.getsize(p) > 0 for p in paths)


def test_cosine_run_refuses_to_resume_with_other_epochs(tmp_path):
    config = Config(lr_schedule="cosine", epochs=3)
    rundir.prepare(str(tmp_path), config)
    with pytest.raises(TfvaeError, match="resume with --epochs 3"):
        rundir.prepare(str(tmp_path), dataclasses.replace(config, epochs=6))
    rundir.prepare(str(tmp_path), dataclasses.replace(config, epochs=6), overwrite=True)
    rundir.prepare(str(tmp_path / "constant"), Config(epochs=3))
    rundir.prepare(str(tmp_path / "constant"), Config(epochs=6))  # constant rate: extendable
