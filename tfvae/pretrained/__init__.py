"""Trained runs shipped with tfvae: `pretrained:NAME` wherever a run directory is read.

Each lives in tfvae/pretrained/NAME/ beside this file: `model.keras` (the trained model, for
`keras.models.load_model`), the run's `config.json`, `pretrained.json` (the command, commit,
CPU and date that made it and the numbers it reaches) and `digits.npz` (the first test image of
each class and the latent means of the first test images), so that `generate --transition`
needs no data. They are read-only: generate and evaluate write into --out. The digits are
images of the MNIST test set (Yann LeCun, Corinna Cortes and Christopher J. C. Burges), made
available under the Creative Commons Attribution-Share Alike 3.0 license.

Example:
    >>> from tfvae import pretrained
    >>> pretrained.names()
    ['mnist-conv-z2', 'mnist-mlp-z20']
    >>> model = pretrained.load("mnist-conv-z2")  # a ConvVAE, not compiled
"""

import json
import os

import keras
import numpy as np

# tfvae.models registers tfvae's classes, which keras.models.load_model looks up by name.
from tfvae import checkpoints, models, rundir  # noqa: F401
from tfvae.errors import TfvaeError

PREFIX = "pretrained:"
DIRECTORY = os.path.dirname(os.path.abspath(__file__))
MODEL_FILE = "model.keras"
RECORD_FILE = "pretrained.json"
DIGITS_FILE = "digits.npz"

def names():
    """The names of the shipped runs, sorted."""
    if not os.path.isdir(DIRECTORY):
        return []
    return sorted(name for name in os.listdir(DIRECTORY)
                  if os.path.isfile(os.path.join(DIRECTORY, name, MODEL_FILE)))


def is_pretrained(run_dir):
    """True for `pretrained:NAME`, which generate and evaluate take in place of a run directory."""
    return isinstance(run_dir, str) and run_dir.startswith(PREFIX)


def directory(name):
    """The folder of a shipped run, given `NAME` or `pretrained:NAME`.

    Args:
      name: one of `names()`, with or without the `pretrained:` prefix.
    """
    name = name[len(PREFIX):] if is_pretrained(name) else name
    if name not in names():
        raise TfvaeError(f"no pretrained run {name!r}: use one of "
                         f"{', '.join(PREFIX + n for n in names())}")
    return os.path.join(DIRECTORY, name)


def load(name):
    """The shipped Keras model `name` (not compiled: compile it before fit or evaluate).

    Args:
      name: one of `names()`, with or without the `pretrained:` prefix.
    """
    return keras.models.load_model(os.path.join(directory(name), MODEL_FILE))


def load_config(name):
    """The Config the shipped run `name` was trained with.

    Args:
      name: one of `names()`, with or without the `pretrained:` prefix.
    """
    return rundir.load_config(directory(name))


def record(name):
    """What made the shipped run `name` and the numbers it reaches (its pretrained.json).

    Args:
      name: one of `names()`, with or without the `pretrained:` prefix.
    """
    with open(os.path.join(directory(name), RECORD_FILE), encoding="utf-8") as f:
        return json.load(f)


def load_run(name):
    """(config, model, step, checkpoint) of a shipped run, as `checkpoints.load_run` gives a run's.

    Args:
      name: `pretrained:NAME`, or one of `names()`.
    """
    name = name if is_pretrained(name) else PREFIX + name
    return checkpoints.Run(load_config(name), load(name), record(name)["step"], name)


def output_dir(run_dir, out):
    """Where generate or evaluate writes: `out`, which a pretrained run needs, else `run_dir`.

    Args:
      run_dir: a run directory or `pretrained:NAME`; out: the command's --out, or None.
    """
    if out:
        return out
    if is_pretrained(run_dir):
        raise TfvaeError(f"{run_dir} is part of the installed package and is not written to: "
                         "pass --out DIR for the files")
    return run_dir


def transition_digits(name):
    """Offline stand-ins for the test set of a shipped run's transition.

    Args:
      name: `pretrained:NAME`, or one of `names()`.

    Returns:
      (x [C, H, W, 1] float32, the first test image of each of the C classes as the test set
      gives it; labels [C]; reference (latent means [N, latent_dim], labels [N]) of the first N
      test images, which name the class a frame passes through).
    """
    with np.load(os.path.join(directory(name), DIGITS_FILE)) as digits:
        return (digits["x"].astype(np.float32), digits["labels"].astype(np.int32),
                (digits["reference_means"], digits["reference_labels"].astype(np.int32)))
