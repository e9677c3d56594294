"""Helpers shared by the tests: tiny configs, their command lines, IDX files, CLI errors."""

import dataclasses
import gzip
import importlib.util
import json
import os
import pathlib

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvae import checkpoints, rundir, train
from tfvae.config import Config
from tfvae.errors import exit_on_error

TEST_IMAGES = 30  # in make_run's test split: three of each class
# A run small enough to train in seconds on a CPU, on real MNIST.
TINY = dict(model="mlp", hidden_units=(32,), latent_dim=2, train_size=1024, test_size=200,
            batch_size=64, epochs=1, steps_per_call=8)


def benchmark_module(name):
    """benchmarks/<name>.py as a module: the benchmarks are scripts, not an installed package."""
    path = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def make_run(root, latent_dim=2, conditional=False, seed=0):
    """A run directory as training leaves it: config.json and a checkpoint of an untrained model."""
    data_dir = fake_test_split(os.path.join(root, "data"))
    config = Config(latent_dim=latent_dim, conditional=conditional, seed=seed, data_dir=data_dir)
    run_dir = os.path.join(root, "run")
    rundir.prepare(run_dir, config)
    keras.utils.set_random_seed(seed)
    model = checkpoints.new_model(config)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=train.make_optimizer(config, model),
                                     step=tf.Variable(0, dtype=tf.int64))
    checkpoints.manager(run_dir, checkpoint).save(checkpoint_number=1)
    return run_dir, model
