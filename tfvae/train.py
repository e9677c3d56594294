"""Trains a VAE: `python -m tfvae.train --latent-dim 2`.

Writes into the run directory: config.json, metrics.jsonl, TensorBoard logs, checkpoints, per-
epoch image grids and, at the end, training.gif and the latent-space figures. Rerunning the same
command resumes.
"""

import collections
import contextlib
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfvae import checkpoints, data, figures, rundir, sources, steps
from tfvae.cli import parse_train
from tfvae.config import default_run_dir
from tfvae.distribute import barrier, check_same_step, distribute_batches, is_chief, make_strategy
from tfvae.errors import TfvaeError, exit_on_error, first_line
from tfvae.tensorboard import write_image_arrays


def load_datasets(config):
    """(config resolved from the data, (train images, labels), (test x, labels)) of a Config.

    Train images are uint8 [N, H, W, C] or, for a folder too large for memory, a
    `sources.ImageFiles`; the test set is binarized once (`data.test_set`).
    """
    config, loaded = sources.load(config)
    return config, tuple(loaded["train"]), data.test_set(*loaded["test"], config.binarize)


def make_optimizer(config, model, total_steps=None):
    """Adam (AdamW given --weight-decay), loss-scaled under mixed_float16, with its slots
    built so checkpoints restore.

    `total_steps` is the run's length in steps, which --lr-schedule cosine anneals over.
    """
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        if not total_steps:
            raise ValueError("--lr-schedule cosine needs the run's total_steps")
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, total_steps)
    optimizer = keras.optimizers.Adam(learning_rate, weight_decay=config.weight_decay or None)
    if model.excluded_from_weight_decay():
        optimizer.exclude_from_weight_decay(var_list=model.excluded_from_weight_decay())
    if model.dtype_policy_name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    return optimizer


def save_checkpoint(manager, step, chief):
    """Saves on every worker, as MultiWorkerMirroredStrategy requires (saving may run
    collectives); only the chief's copy is kept, the others go to a scratch directory."""
    try:
        if chief:
            manager.save(checkpoint_number=step)
            return
        with tempfile.TemporaryDirectory(prefix="tfvae-worker-") as scratch:
            manager.checkpoint.write(os.path.join(scratch, "ckpt"))
    except (OSError, tf.errors.OpError) as error:
        # TensorFlow's save errors name a temporary file but not the OS's reason.
        reason = error.strerror if isinstance(error, OSError) else "the disk is full or a " \
            "file-size limit was reached"
        raise TfvaeError(f"could not write checkpoint {step} into {manager.directory} ({reason})"
                         "; the earlier checkpoints are kept: free space, then rerun the same "
                         "command to resume") from None


def after_divergence(checkpoint_step):
    """What a diverged run keeps and what to do, for its one-line message. Without a
    checkpoint, the run's directory is undone (rundir.undone_on_failure): no --overwrite."""
    if checkpoint_step:
        return (f"the last good checkpoint (step {checkpoint_step}) is kept: lower "
                "--learning-rate and rerun with --overwrite")
    return "no checkpoint was written: lower --learning-rate and rerun"


def check_finite(rows, first_step, checkpoint_step):
    """Stops the run at the first step whose ELBO terms are not finite."""
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if bad.size:
        values = dict(zip(steps.METRIC_NAMES, rows[bad[0]]))
        term = next((n for n in ("reconstruction", "kl") if not np.isfinite(values[n])), "elbo")
        raise TfvaeError(
            f"training diverged at step {first_step + int(bad[0]) + 1}: the {term} term became "
            f"{values[term]}; {after_divergence(checkpoint_step)}")


def check_finite_weights(model, step, checkpoint_step):
    """Stops the run before a checkpoint, picture or metric is made from non-finite weights."""
    if all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in model.trainable_variables):
        return
    raise TfvaeError(f"training diverged by step {step}: the weights became non-finite; "
                     f"{after_divergence(checkpoint_step)}")


def check_finite_test(test, epoch, state, checkpoint_step):
    """Stops the run when finite but huge weights give a non-finite test ELBO."""
    bad = [name for name in steps.METRIC_NAMES if not np.isfinite(test[name])]
    if bad:
        raise TfvaeError(f"training diverged in epoch {epoch} (step "
                         f"{int(state.global_step.numpy())}): the test {bad[0]} became "
                         f"{test[bad[0]]}; {after_divergence(checkpoint_step)}")


State = collections.namedtuple("State", "model optimizer global_step manager")


def set_up(config, deterministic=True):
    """The strategy, then seeds: what must happen before any other TensorFlow work."""
    strategy = make_strategy(config)  # first: multi-worker must set up TF before it starts
    keras.utils.set_random_seed(config.seed)  # weight initialisation; all else is stateless
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return strategy


def build_state(config, strategy, total_steps=None, workdir=None):
    """Model, optimizer and step under `strategy`, restored from `workdir`'s newest checkpoint."""
    with strategy.scope():
        model = checkpoints.new_model(config)
        optimizer = make_optimizer(config, model, total_steps)
        global_step = tf.Variable(0, dtype=tf.int64, name="global_step")
    manager = None
    if workdir is not None:
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=global_step)
        # Every worker resumes from the chief's checkpoints (the run directory must be shared).
        manager = checkpoints.manager(workdir, checkpoint)
        checkpoints.restore_latest(manager, checkpoint)
    return State(model, optimizer, global_step, manager)


class Reporter:
    """Everything the chief process writes and prints; on other workers it does nothing."""

    def __init__(self, config, workdir, active, test_x, test_labels, progress=True):
        self.config, self.workdir, self.active = config, workdir, active
        self.progress = progress  # the per-step bar; the per-epoch line is printed regardless
        count = figures.NUM_RECONSTRUCTIONS
        self.originals = test_x[:count], test_labels[:count]  # the same images every epoch
        self.writer = None
        if active:
            self.writer = tf.summary.create_file_writer(
                os.path.join(workdir, rundir.TENSORBOARD_DIR))

    def resumed(self, step, start_epoch):
        """Drops metric lines past the checkpoint; returns the last kept record, or None."""
        if not self.active:
            return None
        # A kill after an epoch's metrics but before its checkpoint logged that epoch early.
        records = rundir.truncate_metrics(self.workdir, start_epoch)
        if step:
            print(f"resuming {self.workdir} at epoch {start_epoch + 1}, step {step}")
        return records[-1] if records else None

    def progress_bar(self, steps_per_epoch):
        return keras.utils.Progbar(steps_per_epoch, stateful_metrics=["elbo"],
                                   verbose=1 if self.active and self.progress else 0)

    def epoch_end(self, model, record):
        """Writes the epoch's pictures, console line, metrics line and TensorBoard scalars."""
        if not self.active:
            return
        samples, reconstructions = figures.progress_images(model, self.config.seed,
                                                           *self.originals)
        figures.write_progress(model, self.workdir, record["epoch"], samples, self.originals[0],
                               reconstructions, dataset=self.config.dataset)
        print(f"epoch {record['epoch']}/{self.config.epochs}: test elbo {record['test_elbo']:.2f}"
              f" (reconstruction {record['test_reconstruction']:.2f}, kl {record['test_kl']:.2f})"
              f", train elbo {record['train_elbo']:.2f}, {record['seconds']:.1f} s, "
              f"{record['images_per_second']:.0f} images/s", flush=True)
        rundir.append_metrics(self.workdir, record)
        try:
            with self.writer.as_default(step=record["epoch"]):
                for name, value in record.items():
                    if name != "epoch":
                        tf.summary.scalar(name, value)
                write_image_arrays(model, record["epoch"], samples, self.originals[0],
                                   reconstructions)
            self.writer.flush()
        except tf.errors.OpError as error:
            raise TfvaeError(f"could not write TensorBoard logs into {self.workdir}/"
                             f"{rundir.TENSORBOARD_DIR}: {first_line(error)[:200]}") from None

    def finish(self, model, test_x, test_labels):
        """The end-of-run pictures: training.gif, manifold, transitions, scatter."""
        if self.active:
            figures.write_training_gif(self.workdir)
            figures.write_run_figures(model, self.config, self.workdir, test_x, test_labels)


def train_and_evaluate(config, workdir, overwrite=False, progress=True):
    """Trains (or resumes) the run in `workdir`; returns the last epoch's metrics.

    `progress=False` drops the per-step progress bar and keeps one line per epoch (notebooks).
    The config's "auto" values are resolved first (`Config.resolved`): config.json holds what
    the run used.
    """
    config = config.resolved()
    strategy = set_up(config)
    chief = is_chief(strategy)
    config, (train_images, train_labels), (test_x, test_labels) = load_datasets(config)
    steps_per_epoch = data.count_steps_per_epoch(len(train_images), config.batch_size)
    with (rundir.locked(workdir) if chief else contextlib.nullcontext(),
          rundir.undone_on_failure(workdir) if chief else contextlib.nullcontext()):
        if chief:
            rundir.prepare(workdir, config, overwrite, steps_per_epoch)
        barrier(strategy)  # the others may read the run directory once the chief has (re)made it
        state = build_state(config, strategy, config.epochs * steps_per_epoch, workdir)
        step = int(state.global_step.numpy())
        check_same_step(strategy, step)
        start_epoch = step // steps_per_epoch
        reporter = Reporter(config, workdir, chief, test_x, test_labels, progress)
        record = reporter.resumed(step, start_epoch)
        batches = data.train_batches(train_images, train_labels, batch_size=config.batch_size,
                                     seed=config.seed, binarization=config.binarize,
                                     noise_shape=config.train_noise_shape, start_step=step)
        iterator = iter(distribute_batches(strategy, batches))
        train_steps = steps.make_train_function(
            state.model, state.optimizer, config, strategy,
            warmup_steps=config.kl_warmup_epochs * steps_per_epoch)
        eval_step = steps.make_eval_function(state.model, config)
        test_batches = data.eval_batches(test_x, test_labels, batch_size=config.eval_batch_size,
                                         noise_shape=(1, config.latent_dim))
        for epoch in range(start_epoch + 1, config.epochs + 1):
            started = time.perf_counter()
            train_elbo = run_epoch(train_steps, iterator, state, config, chief,
                                   epoch * steps_per_epoch, reporter.progress_bar(steps_per_epoch))
            seconds = time.perf_counter() - started
            test = steps.evaluate_elbo(eval_step, test_batches)
            check_finite_test(test, epoch, state, _last_saved_step(state.manager))
            record = epoch_record(epoch, state, train_elbo, seconds, config, test)
            reporter.epoch_end(state.model, record)
            save_checkpoint(state.manager, int(state.global_step.numpy()), chief)
        reporter.finish(state.model, test_x, test_labels)
    return record


def run_epoch(train_steps, iterator, state, config, chief, last_step, progress):
    """Trains from the current step to `last_step`; returns the per-step train ELBOs."""
    step = int(state.global_step.numpy())
    first_step = last_step - progress.target
    train_elbo = []
    while step < last_step:
        num = min(config.steps_per_call, last_step - step)
        if config.checkpoint_every:
            num = min(num, config.checkpoint_every - step % config.checkpoint_every)
        try:
            rows = train_steps(iterator, tf.constant(step, tf.int64), tf.constant(num)).numpy()
        except (tf.errors.NotFoundError, tf.errors.PermissionDeniedError) as error:
            # A streamed folder lost a file, or moved: the weights are part-way through this
            # call's steps, so the last checkpoint is what can be kept.
            saved = _last_saved_step(state.manager)
            kept = f"the checkpoint of step {saved} is kept" if saved else "nothing was saved"
            raise TfvaeError(f"a training image could not be read ({first_line(error)[:160]})"
                             f"; {kept}: restore the folder, then rerun the same command to "
                             "resume") from None
        check_finite(rows, step, _last_saved_step(state.manager))
        # The rows are computed before each update: the last update may still have blown up.
        check_finite_weights(state.model, step + num, _last_saved_step(state.manager))
        step += num
        train_elbo.append(rows[:, 0])
        progress.update(step - first_step, [("elbo", rows[-1, 0])])
        state.global_step.assign(step)
        if config.checkpoint_every and step % config.checkpoint_every == 0 and step < last_step:
            save_checkpoint(state.manager, step, chief)
    # The last compiled call may run fewer steps: concatenate, then average.
    return np.concatenate(train_elbo)  # fewer than steps_per_epoch after a resume


def _last_saved_step(manager):
    steps_saved = rundir.checkpoint_steps(manager.directory)
    return steps_saved[-1] if steps_saved else 0


def epoch_record(epoch, state, train_elbo, seconds, config, test):
    """The metrics.jsonl line of an epoch."""
    learning_rate = float(keras.ops.convert_to_numpy(state.optimizer.learning_rate))
    return {"epoch": epoch, "step": int(state.global_step.numpy()),
            "train_elbo": float(np.mean(train_elbo)), "test_elbo": test["elbo"],
            "test_reconstruction": test["reconstruction"], "test_kl": test["kl"],
            "learning_rate": learning_rate, "seconds": seconds,
            "images_per_second": len(train_elbo) * config.batch_size / seconds}


def main(argv=None, prog="python -m tfvae.train"):
    config, args = parse_train(argv, prog)
    workdir = args.out or default_run_dir(config)
    record = train_and_evaluate(config, workdir, overwrite=args.overwrite)
    if record is not None:
        print(f"done: test elbo {record['test_elbo']:.2f} nats; outputs in {workdir}")
    return record


if __name__ == "__main__":
    exit_on_error(main)()
