"""The run directory: atomic file writes, config.json, metrics.jsonl and checkpoints."""

import collections
import contextlib
import dataclasses
import json
import os
import shutil
import tempfile

import tensorflow as tf

from tfvae.config import config_from_dict
from tfvae.errors import TfvaeError, first_line

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
CHECKPOINT_DIR = "checkpoints"
# Keys that may differ between a run directory and a rerun of it without changing the run.
RESUMABLE_KEYS = ("epochs", "data_dir", "checkpoint_every", "steps_per_call", "eval_batch_size",
                  "strategy")


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds.

    A kill at any moment leaves either the old file or the new one, never a torn one.
    """
    directory, name = os.path.split(os.path.abspath(path))
    suffix = os.path.splitext(name)[1]  # writers such as imageio pick the format from it
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text):
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def write_json(path, obj):
    """Writes `obj` as indented, key-sorted JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def prepare(run_dir, config, overwrite=False):
    """Creates `run_dir` for `config`, or checks that an existing one was made by the same config.

    Raises TfvaeError, naming the differing keys, if it holds a run of another config.
    """
    ensure_writable(run_dir)
    config_path = os.path.join(run_dir, CONFIG_FILE)
    if os.path.exists(config_path) and not overwrite:
        saved = load_config(run_dir)
        differing = [k for k in dataclasses.asdict(config)
                     if k not in RESUMABLE_KEYS and getattr(saved, k) != getattr(config, k)]
        if differing:
            details = ", ".join(f"{k} ({getattr(saved, k)!r} there, {getattr(config, k)!r} now)"
                                for k in differing)
            raise TfvaeError(f"{run_dir} holds a run with a different config: {details}; "
                             "pass --overwrite to start afresh or choose another --out")
        if saved.lr_schedule == "cosine" and saved.epochs != config.epochs:
            raise TfvaeError(f"{run_dir} anneals its learning rate over {saved.epochs} epochs "
                             f"(--lr-schedule cosine): resume with --epochs {saved.epochs}, or "
                             "pass --overwrite to start afresh")
    elif overwrite:
        _clear(run_dir)
    write_json(config_path, dataclasses.asdict(config))


def ensure_writable(directory, flag="--out"):
    """Creates `directory` if needed and checks that files can be written in it, up front."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, ".write-test")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as error:
        raise TfvaeError(f"cannot write to output directory {directory!r} ({error.strerror}): "
                         f"pass a writable {flag}") from None


def _clear(run_dir):
    """Removes what a previous run wrote, leaving anything else in the directory alone."""
    for name in os.listdir(run_dir):
        path = os.path.join(run_dir, name)
        if name in (CHECKPOINT_DIR, "tensorboard"):
            shutil.rmtree(path)
        elif name == CONFIG_FILE or name == METRICS_FILE or name.endswith((".png", ".gif")) \
                or name == "eval.json":
            os.remove(path)


def load_config(run_dir):
    """Reads the Config a run directory was made with."""
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        raise TfvaeError(f"{run_dir} is not a tfvae run directory (no {CONFIG_FILE}): "
                         "pass the --out directory of a `python -m tfvae.train` run")
    try:
        with open(path) as f:
            return config_from_dict(json.load(f))
    except (json.JSONDecodeError, TfvaeError) as error:
        raise TfvaeError(f"{path} is not a valid tfvae config ({error}): "
                         "rerun training with --overwrite") from None


def append_metrics(run_dir, record):
    """Appends one JSON line, written whole and synced so a kill never leaves a half line."""
    with open(os.path.join(run_dir, METRICS_FILE), "a") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_metrics(run_dir):
    """The records of metrics.jsonl, oldest first ([] before the first epoch ends)."""
    path = os.path.join(run_dir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.endswith("\n")]


def truncate_metrics(run_dir, last_epoch):
    """Drops metric lines after `last_epoch`, so a resumed run does not log an epoch twice."""
    kept = [r for r in read_metrics(run_dir) if r["epoch"] <= last_epoch]
    write_text(os.path.join(run_dir, METRICS_FILE),
               "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))


def checkpoint_manager(run_dir, checkpoint, max_to_keep=3):
    """The CheckpointManager of a run directory, keeping the newest `max_to_keep`."""
    return tf.train.CheckpointManager(checkpoint, os.path.join(run_dir, CHECKPOINT_DIR),
                                      max_to_keep=max_to_keep)


def restore_latest(manager, checkpoint):
    """Restores the newest checkpoint into `checkpoint`; returns False when there is none."""
    if manager.latest_checkpoint is None:
        return False
    try:
        status = checkpoint.restore(manager.latest_checkpoint)
        status.assert_existing_objects_matched()
        status.expect_partial()  # a reader without the optimizer leaves its slots unread
    except (AssertionError, ValueError, tf.errors.OpError) as error:
        raise TfvaeError(f"checkpoint {manager.latest_checkpoint} does not fit this model "
                         f"({first_line(error)}): it was made by a different model or "
                         "config") from None
    return True


Run = collections.namedtuple("Run", "config model step checkpoint")


def load_run(run_dir):
    """A trained run: its Config, its model with the newest checkpoint's weights, that step."""
    from tfvae.models import build_model  # models import Keras; keep this module light

    config = load_config(run_dir)
    model = build_model(config)
    step = tf.Variable(0, dtype=tf.int64, name="global_step")
    checkpoint = tf.train.Checkpoint(model=model, step=step)
    manager = checkpoint_manager(run_dir, checkpoint)
    if not restore_latest(manager, checkpoint):
        raise TfvaeError(f"{run_dir} has no checkpoint yet: train it first with "
                         f"`python -m tfvae.train --out {run_dir}`")
    return Run(config, model, int(step.numpy()), manager.latest_checkpoint)
