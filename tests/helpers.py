"""Helpers shared by the tests: tiny configs, their command lines, IDX files, CLI errors, image
folders, reference models and weights, and programs run in a process of their own."""

import dataclasses
import gzip
import json
import os
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import checkpoints, rundir, train
from tfvae.config import Config
from tfvae.errors import exit_on_error

ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository: tfvae/, benchmarks/
TEST_IMAGES = 30  # in make_run's test split: three of each class
# A run small enough to train in seconds on a CPU, on real MNIST.
TINY = dict(model="mlp", hidden_units=(32,), latent_dim=2, train_size=1024, test_size=200,
            batch_size=64, epochs=1, steps_per_call=8)


def run_program(argv, timeout=600):
    """Runs `python ARGV...` from the repository's root, as a user would (e.g. ["-m",
    "benchmarks.image_folders", ...]); returns its stdout, failing the test on a bad exit."""
    result = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def tiny_config(**overrides):
    """A Config for a real run of a few seconds; `overrides` replace any of its values."""
    return Config(**{**TINY, **overrides})


def train_test_elbos(config, run_dir):
    """Trains `config` into `run_dir` and returns its test ELBO after each epoch."""
    train.train_and_evaluate(config, run_dir)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line)["test_elbo"] for line in f]


def to_argv(config):
    """The `python -m tfvae.train` flags that give `config` (those that differ from defaults)."""
    argv = []
    for field in dataclasses.fields(Config):
        value = getattr(config, field.name)
        if value == field.default or not field.metadata["flag"]:
            continue
        flag = "--" + field.name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, tuple):
            argv += [flag, *map(str, value)]
        else:
            argv += [flag, str(value)]
    return argv


def cli_error(main, argv, capsys):
    """Runs a command's `main` as the command line does; returns its one-line error."""
    with pytest.raises(SystemExit) as exit_info:
        exit_on_error(main)(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def write_idx(path, array, magic_type=0x08, compress=True):
    """Writes `array` as an IDX file (gzip-compressed unless told otherwise)."""
    array = np.asarray(array)
    header = bytes([0, 0, magic_type, array.ndim]) + b"".join(
        d.to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        with open(path, "wb") as f:
            f.write(payload)


def fake_test_split(directory):
    """A small IDX test split: random strokes, labels 0-9 repeating."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    images = (rng.random([TEST_IMAGES, 28, 28]) < 0.2) * 255
    write_idx(os.path.join(directory, "t10k-images-idx3-ubyte.gz"), images)
    write_idx(os.path.join(directory, "t10k-labels-idx1-ubyte.gz"),
              np.arange(TEST_IMAGES) % 10)
    return directory


def make_run(root, latent_dim=2, conditional=False, seed=0, **overrides):
    """A run directory as training leaves it: config.json and a checkpoint of an untrained model
    (`overrides`: other Config values)."""
    data_dir = fake_test_split(os.path.join(root, "data"))
    config = Config(latent_dim=latent_dim, conditional=conditional, seed=seed, data_dir=data_dir,
                    **overrides)
    run_dir = os.path.join(root, "run")
    rundir.prepare(run_dir, config)
    keras.utils.set_random_seed(seed)
    model = checkpoints.new_model(config)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=train.make_optimizer(config, model),
                                     step=tf.Variable(0, dtype=tf.int64))
    checkpoints.manager(run_dir, checkpoint).save(checkpoint_number=1)
    return run_dir, model


def resize(images, size):
    """uint8 [N, h, w, C] -> uint8 [N, H, W, C] (antialiased bilinear, rounded)."""
    resized = tf.image.resize(images, size, antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


def tint(digits, rng):
    """uint8 [N, h, w] grey digits -> uint8 [N, h, w, 3]: each digit in a random fully
    saturated hue on black, its intensity scaling the colour."""
    hues = rng.uniform(0.0, 1.0, len(digits))
    hsv = np.stack([hues, np.ones_like(hues), np.ones_like(hues)], -1)
    colours = tf.image.hsv_to_rgb(hsv.astype(np.float32)).numpy()[:, None, None, :]  # [N,1,1,3]
    return np.rint(digits[..., None] * colours).astype(np.uint8)


def randomize(layer_or_model, seed, scale):
    """Replaces every weight by N(0, scale^2) draws, so a flow is far from the identity."""
    rng = np.random.default_rng(seed)
    layer_or_model.set_weights([rng.normal(0.0, scale, w.shape).astype(np.float32)
                                for w in layer_or_model.get_weights()])


def ppca(seed=0, observed=5, latent=2, scale=0.5):
    """A linear-Gaussian model with orthogonal columns, so its exact posterior is diagonal."""
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.normal(size=(observed, latent)))
    weights = basis * np.array([2.0, 1.0])[:latent]  # W = Q diag(2, 1): W^T W = diag(4, 1)
    bias = rng.normal(size=observed)
    x = rng.multivariate_normal(bias, weights @ weights.T + scale**2 * np.eye(observed), size=4)
    covariance = weights @ weights.T + scale**2 * np.eye(observed)
    _, logdet = np.linalg.slogdet(covariance)
    centred = x - bias
    log_px = -0.5 * (np.einsum("bi,ij,bj->b", centred, np.linalg.inv(covariance), centred)
                     + logdet + observed * np.log(2 * np.pi))
    # Posterior N(M^-1 W^T (x - b), s^2 M^-1), M = W^T W + s^2 I, diagonal here (Tipping &
    # Bishop 1999).
    m = np.diag(weights.T @ weights) + scale**2
    post_mean = centred @ weights / m
    post_logvar = np.broadcast_to(np.log(scale**2 / m), post_mean.shape)
    return weights, bias, scale, x, log_px, post_mean, post_logvar
