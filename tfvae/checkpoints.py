"""A run's checkpoints: the manager, a damaged index rebuilt, restore with fallback, and the
trained run they hold."""

import collections
import dataclasses
import os

import tensorflow as tf

from tfvae import rundir
from tfvae.distribute import dtype_policy_name
from tfvae.errors import TfvaeError, first_line
from tfvae.files import write_text
from tfvae.models import build_model


def manager(run_dir, checkpoint, max_to_keep=3):
    """The CheckpointManager of a run directory, keeping the newest `max_to_keep`.

    Its `checkpoint` index file is rebuilt from the checkpoint files present when it is
    missing, garbled or names files that are gone.
    """
    directory = os.path.join(run_dir, rundir.CHECKPOINT_DIR)
    _repair_index(directory)
    return tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)


def _repair_index(directory):
    steps = rundir.checkpoint_steps(directory)
    if not steps:
        return
    try:
        state = tf.train.get_checkpoint_state(directory)
    except Exception:  # a garbled index raises protobuf's ParseError
        state = None
    listed = [] if state is None else list(state.all_model_checkpoint_paths)
    if [os.path.basename(p) for p in listed] == [f"ckpt-{step}" for step in steps]:
        return
    names = [f"ckpt-{step}" for step in steps]  # the index's text format, relative paths
    write_text(os.path.join(directory, "checkpoint"),
               f'model_checkpoint_path: "{names[-1]}"\n'
               + "".join(f'all_model_checkpoint_paths: "{name}"\n' for name in names))
    rundir.note(f"rebuilt {os.path.join(directory, 'checkpoint')} from the checkpoint files "
                "present")


def restore_latest(checkpoint_manager, checkpoint):
    """Restores the newest intact checkpoint; returns its path, or None when the run has none.

    A damaged newest checkpoint falls back to the next older one, with a note. Raises
    TfvaeError when checkpoints exist but none can be restored, so a run never silently
    restarts from step 0.
    """
    steps = rundir.checkpoint_steps(checkpoint_manager.directory)
    failures = []
    for step in reversed(steps):
        path = os.path.join(checkpoint_manager.directory, f"ckpt-{step}")
        try:
            status = checkpoint.restore(path)
            status.expect_partial()  # a reader without the optimizer leaves its slots unread
            status.assert_existing_objects_matched()
        except (AssertionError, ValueError, IndexError, tf.errors.OpError) as error:
            failures.append((path, error))
            continue
        if failures:
            path_failed, error = failures[0]
            rundir.note(f"checkpoint {path_failed} is damaged ({first_line(error)[:120]}); "
                        f"resuming from {path}")
        return path
    if not failures:
        return None
    path, error = failures[0]
    if isinstance(error, (tf.errors.OpError, IndexError)):  # unreadable, not a mismatch
        raise TfvaeError(f"every checkpoint in {checkpoint_manager.directory} is damaged (newest: "
                         f"{first_line(error)[:160]}): restore them from a backup, or rerun "
                         "with --overwrite to start afresh") from None
    raise TfvaeError(f"checkpoint {path} does not fit this model ({first_line(error)[:200]}): "
                     "it was made by a different model or config") from None


def new_model(config):
    """The model a Config describes (its image shape and classes), with the run's dtype policy."""
    return build_model(config, dtype_policy=dtype_policy_name(config))


def mixed_precision_copy(config, model):
    """(config, model) with mixed precision on: the same weights, hidden layers in bfloat16
    (float16 on a GPU). Returned as they are when the run already trained that way."""
    if config.mixed_precision:
        return config, model
    config = dataclasses.replace(config, mixed_precision=True)
    copy = new_model(config)
    copy.set_weights(model.get_weights())
    return config, copy


Run = collections.namedtuple("Run", "config model step checkpoint")


def load_run(run_dir):
    """A trained run: its Config, its model with the newest checkpoint's weights, that step."""
    config = rundir.load_config(run_dir)
    model = new_model(config)
    step = tf.Variable(0, dtype=tf.int64, name="global_step")
    checkpoint = tf.train.Checkpoint(model=model, step=step)
    path = restore_latest(manager(run_dir, checkpoint), checkpoint)
    if path is None:
        raise TfvaeError(f"{run_dir} has no checkpoint yet: train it first with "
                         f"`python -m tfvae.train --out {run_dir}`")
    return Run(config, model, int(step.numpy()), path)

