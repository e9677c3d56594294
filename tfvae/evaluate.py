"""Scores a trained run in nats: `python -m tfvae.evaluate RUN_DIR --k 5000`.

Reports the test ELBO (with its reconstruction and KL terms) and the importance-weighted bound
L_k of Burda et al. (2015), whose negative is the usual "test NLL" of VAE papers, and writes
them to eval.json in the run directory.
"""

import contextlib
import dataclasses
import hashlib
import json
import os
import time
import zipfile

import keras
import numpy as np
import tensorflow as tf

from tfvae import checkpoints, data, losses, pretrained, rundir, steps
from tfvae.cli import EVAL_BATCH_SIZE, EVAL_CHUNK, parse_evaluate
from tfvae.config import check_at_least, check_seed
from tfvae.errors import TfvaeError, exit_on_error, first_line
from tfvae.files import atomic_path, write_json

INTERRUPTED = ("interrupted: the images scored so far are kept in the run's "
               f"{rundir.EVAL_IMAGES_FILE}; rerun the same command to go on from there")
DEFAULT_BATCH_SIZE = EVAL_BATCH_SIZE  # why these: tfvae/cli.py
DEFAULT_CHUNK = EVAL_CHUNK
EVAL_BUSY = ("wait for its evaluation to finish (two evaluations of one run would overwrite "
             "each other's eval_images.npz)")


def evaluate_run(run_dir, k=5000, subset=None, batch_size=DEFAULT_BATCH_SIZE,
                 chunk=DEFAULT_CHUNK, seed=0, data_dir=None, mixed_precision=False, verbose=1,
                 write=True, save_images=True, out=None):
    """Evaluates the newest checkpoint of `run_dir` on the test set and writes eval.json.

    Args:
      run_dir: a directory made by `python -m tfvae.train`, or `pretrained:NAME`.
      k: importance samples per image for L_k.
      subset: score only the first N test images (default: all of them).
      batch_size: images per compiled call; chunk: samples decoded at once per image.
      seed: seeds the importance samples; the test set's binarization is fixed whatever it is.
      data_dir: where the IDX files are, overriding the run's config.
      mixed_precision: decode in bfloat16 (float16 on a GPU) whatever the run was trained in;
        the logits, likelihoods and the bound stay float32. False keeps the run's precision.
      verbose: 1 shows a progress bar.
      write: False leaves eval.json to the caller (`main` prints the numbers first).
      save_images: keep the per-image bounds in eval_images.npz after every batch, and go on
        from that file when it holds an unfinished (or finished) evaluation with the same
        checkpoint, k, seed, batch size, chunk, subset and precision.
      out: the directory for eval.json and eval_images.npz (default: `run_dir`; needed for
        `pretrained:NAME`).

    Returns:
      The dict written to eval.json: per-image means in nats ('elbo', 'reconstruction', 'kl',
      'iwae', 'nll' = -iwae, 'nll_bits_per_dim'), the standard error of 'nll' over the test
      images ('nll_standard_error'), and what produced them.
    """
    for name, value in (("k", k), ("batch-size", batch_size), ("chunk", chunk),
                        ("subset", subset)):
        check_at_least(name, value)
    check_seed("seed", seed)
    out = pretrained.output_dir(run_dir, out)
    load_run = pretrained.load_run if pretrained.is_pretrained(run_dir) else checkpoints.load_run
    config, model, step, checkpoint_path = load_run(run_dir)
    weights = weights_digest(model)  # before the copy: the weights, not their precision
    if mixed_precision:
        config, model = checkpoints.mixed_precision_copy(config, model)
    rundir.ensure_writable(out, flag="--out (eval.json goes there)")
    # The whole test split, not the run's --test-size: numbers then compare across runs.
    test_x, test_labels = data.load_test_set(dataclasses.replace(
        config, data_dir=data.usable_data_dir(data_dir, config.data_dir), test_size=subset))
    num_images = len(test_x)
    progbar = keras.utils.Progbar(num_images, stateful_metrics=["elbo", "iwae"],
                                  verbose=verbose)
    # The weights' digest, not the checkpoint's name, ties the saved rows to the model they
    # score: another run's file, or a run retrained under the same name, never matches.
    settings = {"weights": weights, "dataset": config.dataset,
                "images": num_images, "k": k, "seed": seed, "batch_size": batch_size,
                "chunk": chunk, "mixed_precision": config.mixed_precision}
    images_path = os.path.join(out, rundir.EVAL_IMAGES_FILE)
    # A second evaluation of this run would overwrite the file this one goes on from.
    with (rundir.locked(out, rundir.EVAL_LOCK_FILE, EVAL_BUSY) if save_images
          else contextlib.nullcontext()):
        rows, seconds = (read_scored_images(images_path, settings) if save_images
                         else (NO_ROWS, 0.0))
        if len(rows) and verbose:
            rundir.note(f"going on after the {len(rows)} images already scored in "
                        f"{images_path}")
        started = time.perf_counter()
        for batch_rows in score_batches(model, config, test_x, test_labels, k, batch_size,
                                        chunk, seed, first=len(rows),
                                        checkpoint_path=checkpoint_path):
            rows = np.concatenate([rows, batch_rows])
            if save_images:
                write_scored_images(images_path, settings, rows,
                                    seconds + time.perf_counter() - started)
            means = rows.mean(axis=0)
            progbar.update(len(rows), [("elbo", means[1]), ("iwae", means[0])])
        seconds += time.perf_counter() - started

    result = dict(zip(steps.IWAE_METRIC_NAMES, rows.mean(axis=0).tolist()))
    result.update({
        "nll": -result["iwae"],
        # Over the test images (the images' spread, not the k samples' noise, dominates).
        "nll_standard_error": float(rows[:, 0].std(ddof=1) / np.sqrt(num_images))
        if num_images > 1 else 0.0,
        "nll_bits_per_dim": losses.bits_per_dim(-result["iwae"], config.image_shape),
        "k": k, "images": num_images, "dataset": config.dataset, "seed": seed,
        "mixed_precision": config.mixed_precision,
        "batch_size": batch_size, "chunk": chunk, "checkpoint": os.path.basename(checkpoint_path),
        "weights_sha256": weights,
        "step": step, "seconds": seconds, "images_per_second": num_images / seconds,
    })
    if write:
        write_json(os.path.join(out, rundir.EVAL_FILE), result)
    return result


def score_images(model, config, x, labels, k, batch_size=DEFAULT_BATCH_SIZE,
                 chunk=DEFAULT_CHUNK, seed=0):
    """Per-image IWAE_METRIC_NAMES rows [N, 4] (float64) for images x [N, H, W, C]."""
    return np.concatenate(list(score_batches(model, config, x, labels, k, batch_size, chunk,
                                             seed)))


def score_batches(model, config, x, labels, k, batch_size=DEFAULT_BATCH_SIZE,
                  chunk=DEFAULT_CHUNK, seed=0, first=0, checkpoint_path="the checkpoint"):
    """Yields per-image rows [b, 4] batch by batch, from image `first` (a batch boundary).

    Batch i's samples are keyed by stateless_fold_in([seed, 0], i) alone, so the same images,
    batch size and seed give the same numbers whatever model or precision scores them, and
    scoring resumed at a batch boundary gives what an uninterrupted pass gives.
    """
    iwae_step = steps.make_iwae_function(model, config, k, chunk)
    base_seed = tf.constant([seed, 0], tf.int64)
    for begin in range(first, len(x), batch_size):
        end = min(begin + batch_size, len(x))
        batch_seed = tf.random.experimental.stateless_fold_in(base_seed, begin // batch_size)
        batch_rows = iwae_step(tf.constant(x[begin:end]), tf.constant(labels[begin:end]),
                               batch_seed).numpy().astype(np.float64)
        if not np.isfinite(batch_rows).all():
            raise TfvaeError(f"the model gives non-finite log-likelihoods on test images "
                             f"{begin}-{end - 1}: {checkpoint_path} is broken")
        yield batch_rows


NO_ROWS = np.zeros([0, len(steps.IWAE_METRIC_NAMES)])


def weights_digest(model):
    """SHA-256 of a model's variable values, in order: what a checkpoint's numbers depend on."""
    digest = hashlib.sha256()
    for value in model.get_weights():
        digest.update(str((value.dtype.str, value.shape)).encode())
        digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def write_scored_images(path, settings, rows, seconds):
    """Saves the per-image rows so far, with what produced them and the seconds they took."""
    with atomic_path(path) as tmp:
        np.savez(tmp, rows=rows, seconds=seconds, settings=json.dumps(settings, sort_keys=True))


def read_scored_images(path, settings):
    """(rows, seconds) saved at `path` by an evaluation with the same `settings`, else none.

    A file from other weights, k, seed, batch size, chunk, subset or precision is ignored,
    and replaced as soon as the new evaluation has scored a batch; so is a damaged one.
    """
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as saved:
            if json.loads(str(saved["settings"])) != settings:
                return NO_ROWS, 0.0
            rows, seconds = saved["rows"], float(saved["seconds"])
        if (rows.dtype != np.float64 or rows.ndim != 2 or rows.shape[1] != NO_ROWS.shape[1]
                or len(rows) > settings["images"] or not np.isfinite(rows).all()):
            raise ValueError("its rows do not fit this evaluation")
        return rows, seconds
    except FileNotFoundError:
        pass
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as error:
        # numpy's message for bytes that are not an .npz talks of pickles: say what it is.
        reason = ("not an .npz file" if "allow_pickle" in str(error)
                  else first_line(error)[:120])
        rundir.note(f"ignoring {path}, which could not be read ({reason}); scoring from the "
                    "first image")
    return NO_ROWS, 0.0


def summary(result):
    """The few lines `main` prints."""
    return (f"test ELBO {result['elbo']:.2f} nats (reconstruction {result['reconstruction']:.2f}"
            f", KL {result['kl']:.2f})\n"
            f"test NLL (IWAE, k={result['k']}) {result['nll']:.2f} "
            f"+/- {result['nll_standard_error']:.2f} nats "
            f"({result['nll_bits_per_dim']:.4f} bits/dim)\n"
            f"{result['images']} test images, {result['images_per_second']:.1f} images/s, "
            f"{result['seconds']:.1f} s")


def main(argv=None, prog="python -m tfvae.evaluate"):
    args = parse_evaluate(argv, prog)
    result = evaluate_run(args.run_dir, k=args.k, subset=args.subset, batch_size=args.batch_size,
                          chunk=args.chunk, seed=args.seed, data_dir=args.data_dir,
                          mixed_precision=args.mixed_precision, write=False, out=args.out)
    print(summary(result), flush=True)  # first: a failed write must not lose an hour's numbers
    path = os.path.join(args.out or args.run_dir, rundir.EVAL_FILE)
    write_json(path, result)
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    exit_on_error(main, INTERRUPTED)()
