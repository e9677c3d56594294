"""Trains a VAE: `python -m tfvae.train --latent-dim 2`.

Writes into the run directory: config.json, metrics.jsonl, TensorBoard logs, checkpoints, per-
epoch image grids and, at the end, training.gif. Rerunning the same command resumes.
"""

import glob
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from tfvae import data, generate, rundir, steps, viz
from tfvae.config import ArgumentParser, add_config_flags, config_from_args, default_run_dir
from tfvae.distribute import barrier, check_same_step, distribute_batches, is_chief, make_strategy
from tfvae.errors import TfvaeError, exit_on_error
from tfvae.models import build_model

FRAME_PATTERN = "image_at_epoch_{:04d}.png"
RECONSTRUCTION_PATTERN = "reconstruction_at_epoch_{:04d}.png"
GRID_SIDE = 8  # unconditional progress grids are 8x8; conditional ones 10 digits x 10 styles


def progress_latents(model, config):
    """The latents and labels of every epoch's sample grid: the same prior draws each epoch."""
    if config.conditional:
        labels = np.repeat(np.arange(data.NUM_CLASSES), data.NUM_CLASSES)  # one row per digit
        styles = model.sample_prior(data.NUM_CLASSES, [config.seed, 1])
        return tf.tile(styles, [data.NUM_CLASSES, 1]), labels  # the same styles in every row
    return model.sample_prior(GRID_SIDE * GRID_SIDE, [config.seed, 1]), None


def write_pictures(model, config, workdir, epoch, originals, original_labels):
    """Writes the epoch's sample grid and the reconstructions of the fixed test images."""
    z, labels = progress_latents(model, config)
    rows = data.NUM_CLASSES if config.conditional else GRID_SIDE
    samples = model.decode(z, labels, apply_sigmoid=True).numpy()
    path = os.path.join(workdir, FRAME_PATTERN.format(epoch))
    if config.conditional:
        viz.save_labelled_grid(path, samples, rows, generate.CLASS_NAMES[config.dataset],
                               [str(i + 1) for i in range(data.NUM_CLASSES)], row_title="label y",
                               col_title="style z (the same in every row)")
    else:
        viz.save_grid(path, samples, rows)
    generate.write_reconstructions(
        model, os.path.join(workdir, RECONSTRUCTION_PATTERN.format(epoch)), originals,
        original_labels)


def load_datasets(config):
    """((train images, labels) as uint8, (test x, labels) binarized once) of a Config."""
    train = data.load_subset(config.dataset, "train", config.data_dir, config.train_size)
    return train, data.load_test_set(config)


def make_optimizer(config, model, total_steps=None):
    """Adam, loss-scaled under mixed_float16, with its slots built so checkpoints restore.

    `total_steps` is the run's length in steps, which --lr-schedule cosine anneals over.
    """
    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        if not total_steps:
            raise ValueError("--lr-schedule cosine needs the run's total_steps")
        learning_rate = keras.optimizers.schedules.CosineDecay(learning_rate, total_steps)
    optimizer = keras.optimizers.Adam(learning_rate)
    if model.dtype_policy_name == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    optimizer.build(model.trainable_variables)
    return optimizer


def save_checkpoint(manager, step, chief):
    """Saves on every worker, as MultiWorkerMirroredStrategy requires (saving may run
    collectives); only the chief's copy is kept, the others go to a scratch directory."""
    if chief:
        manager.save(checkpoint_number=step)
        return
    with tempfile.TemporaryDirectory(prefix="tfvae-worker-") as scratch:
        manager.checkpoint.write(os.path.join(scratch, "ckpt"))


def check_finite(rows, first_step, checkpoint_step):
    """Stops the run at the first step whose ELBO terms are not finite."""
    bad = np.flatnonzero(~np.isfinite(rows).all(axis=1))
    if bad.size:
        values = dict(zip(steps.METRIC_NAMES, rows[bad[0]]))
        term = next((n for n in ("reconstruction", "kl") if not np.isfinite(values[n])), "elbo")
        kept = (f"the last good checkpoint (step {checkpoint_step}) is kept" if checkpoint_step
                else "no checkpoint was written yet")
        raise TfvaeError(
            f"training diverged at step {first_step + int(bad[0]) + 1}: the {term} term became "
            f"{values[term]}; {kept}: lower --learning-rate and rerun with --overwrite")


def train_and_evaluate(config, workdir, overwrite=False, progress=True):
    """Trains (or resumes) the run in `workdir`; returns the last epoch's metrics.

    `progress=False` drops the per-step progress bar and keeps one line per epoch (notebooks).
    """
    strategy = make_strategy(config)  # first: multi-worker must set up TF before it starts
    chief = is_chief(strategy)
    keras.utils.set_random_seed(config.seed)  # weight initialisation; all else is stateless
    tf.config.experimental.enable_op_determinism()
    (train_images, train_labels), (test_x, test_labels) = load_datasets(config)
    if len(train_images) < config.batch_size:
        raise TfvaeError(f"{len(train_images)} training images cannot fill one batch of "
                         f"{config.batch_size}: lower --batch-size or raise --train-size")
    if chief:
        rundir.prepare(workdir, config, overwrite)
    steps_per_epoch = len(train_images) // config.batch_size
    barrier(strategy)  # the others may read the run directory once the chief has (re)made it

    with strategy.scope():
        model = build_model(config)
        optimizer = make_optimizer(config, model, config.epochs * steps_per_epoch)
        global_step = tf.Variable(0, dtype=tf.int64, name="global_step")
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, step=global_step)
    # Every worker resumes from the chief's checkpoints (the run directory must be shared).
    manager = rundir.checkpoint_manager(workdir, checkpoint)
    rundir.restore_latest(manager, checkpoint)

    step = int(global_step.numpy())
    check_same_step(strategy, step)
    start_epoch = step // steps_per_epoch
    if chief:  # a kill after an epoch's metrics but before its checkpoint logged it early
        rundir.truncate_metrics(workdir, start_epoch)
    if chief and step:
        print(f"resuming {workdir} at epoch {start_epoch + 1}, step {step}")
    samples = config.k if config.objective == "iwae" else 1
    batches = data.train_batches(train_images, train_labels, batch_size=config.batch_size,
                                 seed=config.seed, binarization=config.binarize,
                                 noise_shape=(samples, config.latent_dim), start_step=step)
    iterator = iter(distribute_batches(strategy, batches))
    train_steps = steps.make_train_function(model, optimizer, config, strategy,
                                            warmup_steps=config.kl_warmup_epochs * steps_per_epoch)
    eval_step = steps.make_eval_function(model, config)
    test_batches = data.eval_batches(test_x, test_labels, batch_size=config.eval_batch_size,
                                     noise_shape=(1, config.latent_dim))
    writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard")) if chief else None

    record = rundir.read_metrics(workdir)[-1] if chief and start_epoch else None
    for epoch in range(start_epoch + 1, config.epochs + 1):
        progbar = keras.utils.Progbar(steps_per_epoch, stateful_metrics=["elbo"],
                                      verbose=1 if chief and progress else 0)
        started, train_elbo = time.perf_counter(), []
        epoch_end = epoch * steps_per_epoch
        while step < epoch_end:
            num = min(config.steps_per_call, epoch_end - step)
            if config.checkpoint_every:
                num = min(num, config.checkpoint_every - step % config.checkpoint_every)
            rows = train_steps(iterator, tf.constant(step, tf.int64), tf.constant(num)).numpy()
            check_finite(rows, step, int(global_step.numpy()))
            step += num
            train_elbo.append(rows[:, 0])
            progbar.update(step - epoch_end + steps_per_epoch, [("elbo", rows[-1, 0])])
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < epoch_end:
                global_step.assign(step)
                save_checkpoint(manager, step, chief)
        seconds = time.perf_counter() - started
        test = steps.evaluate_elbo(eval_step, test_batches)
        # The last compiled call of an epoch may run fewer steps: concatenate, then average.
        train_elbo = np.concatenate(train_elbo)  # fewer than steps_per_epoch after a resume
        learning_rate = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        record = {"epoch": epoch, "step": step, "train_elbo": float(np.mean(train_elbo)),
                  "test_elbo": test["elbo"], "test_reconstruction": test["reconstruction"],
                  "test_kl": test["kl"], "learning_rate": learning_rate, "seconds": seconds,
                  "images_per_second": len(train_elbo) * config.batch_size / seconds}
        global_step.assign(step)
        if chief:
            write_pictures(model, config, workdir, epoch, test_x[:16], test_labels[:16])
            print(f"epoch {epoch}/{config.epochs}: test elbo {test['elbo']:.2f} "
                  f"(reconstruction {test['reconstruction']:.2f}, kl {test['kl']:.2f}), "
                  f"train elbo {record['train_elbo']:.2f}, {seconds:.1f} s, "
                  f"{record['images_per_second']:.0f} images/s", flush=True)
            rundir.append_metrics(workdir, record)
            with writer.as_default(step=epoch):
                for name, value in record.items():
                    if name != "epoch":
                        tf.summary.scalar(name, value)
            writer.flush()
        save_checkpoint(manager, step, chief)

    if chief:
        frames = sorted(glob.glob(os.path.join(workdir, FRAME_PATTERN.replace("{:04d}", "*"))))
        if frames:
            epochs = [int(os.path.basename(f)[len("image_at_epoch_"):-4]) for f in frames]
            viz.gif_from_pngs(os.path.join(workdir, "training.gif"), frames,
                              captions=[f"epoch {n}" for n in epochs])
        generate.write_run_figures(model, config, workdir, test_x, test_labels)
    return record


def main(argv=None):
    parser = ArgumentParser(prog="python -m tfvae.train", description=__doc__.splitlines()[0])
    add_config_flags(parser)
    parser.add_argument("--out", help="run directory (default: runs/DATASET-MODEL-zLATENT)")
    parser.add_argument("--overwrite", action="store_true",
                        help="start afresh in --out even if it holds a run")
    args = parser.parse_args(argv)
    config = config_from_args(args)
    workdir = args.out or default_run_dir(config)
    record = train_and_evaluate(config, workdir, overwrite=args.overwrite)
    if record is not None:
        print(f"done: test elbo {record['test_elbo']:.2f} nats; outputs in {workdir}")
    return record


if __name__ == "__main__":
    exit_on_error(main)()
