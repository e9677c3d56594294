"""Test-set evaluation throughput: the ELBO pass and the IWAE bound (k = 5000), in images/s.

    TFVAE_DATA_DIR=/work/shared/data python -m benchmarks.eval_speed [--quick]
        [--models conv mlp] [--xla both|off|on] [--out benchmarks/results/eval_speed.json]

Uses tfvae's own compiled steps (steps.make_eval_function, steps.make_iwae_function with
tfvae.evaluate's default batch and chunk) on freshly initialised models: throughput does not
depend on the weights. Each model and XLA setting runs in one process, one after another.
"""

import argparse
import json
import os
import time

import numpy as np
import tensorflow as tf

from benchmarks import flops
from tfvae import data, rundir, steps
from tfvae.config import Config


def elbo_rate(model, config, test_x, test_labels):
    eval_step = steps.make_eval_function(model, config)
    batches = data.eval_batches(test_x, test_labels, batch_size=config.eval_batch_size,
                                noise_shape=(1, config.latent_dim))
    steps.evaluate_elbo(eval_step, batches.take(1))  # compiles
    started = time.perf_counter()
    steps.evaluate_elbo(eval_step, batches)
    return len(test_x) / (time.perf_counter() - started)


def iwae_rate(model, config, test_x, test_labels, k, batch, seconds):
    """Images/s of tfvae.evaluate's IWAE step (its default chunk) on `batch` test images."""
    from tfvae import evaluate

    iwae_step = steps.make_iwae_function(model, config, k, evaluate.DEFAULT_CHUNK)
    x, labels = tf.constant(test_x[:batch]), tf.constant(test_labels[:batch])
    seed = tf.constant([0, 0], tf.int64)
    iwae_step(x, labels, seed).numpy()  # compiles
    started, done = time.perf_counter(), 0
    while time.perf_counter() - started < seconds or not done:
        iwae_step(x, labels, seed).numpy()
        done += batch
    return done / (time.perf_counter() - started)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.eval_speed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="1,000 test images, k = 50, conv only")
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--iwae-batch", type=int, default=20,
                        help="test images per timed IWAE call (at k = 5000 a conv image costs "
                        "~55 GFLOP: seconds on this CPU)")
    parser.add_argument("--xla", choices=("both", "off", "on"), default="both")
    parser.add_argument("--models", nargs="+", choices=("conv", "mlp"), default=["conv", "mlp"])
    parser.add_argument("--out", default="benchmarks/results/eval_speed.json")
    args = parser.parse_args(argv)
    k = 50 if args.quick else args.k
    images, labels = data.load_subset("mnist", "test", size=1000 if args.quick else None)
    gflops = flops.matmul_gflops(seconds=1.0 if args.quick else 4.0)
    print(f"float32 matmul: {gflops:.0f} GFLOP/s")
    rows = []
    for model_name in ("conv",) if args.quick else args.models:
        for jit in {"both": (False, True), "off": (False,), "on": (True,)}[args.xla]:
            config = Config(model=model_name, jit_compile=jit)
            model = rundir.new_model(config)
            test_x, test_labels = data.test_set(images, labels, config.binarize)
            row = {"model": model_name, "jit_compile": jit,
                   "elbo_images_per_second": elbo_rate(model, config, test_x, test_labels)}
            row["iwae_k"] = k
            row["iwae_images_per_second"] = iwae_rate(
                model, config, test_x, test_labels, k, min(args.iwae_batch, len(test_x)),
                2.0 if args.quick else 10.0)
            # k forward passes per image (an upper bound: the encoder runs once), each a third
            # of a training step's FLOPs.
            row["iwae_fraction_of_roofline"] = (
                row["iwae_images_per_second"] * k * flops.train_flops_per_image(model) / 3
                / (gflops * 1e9))
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"{'model':<5} {'xla':<5} {'ELBO images/s':>14} {'IWAE images/s':>14}")
    for row in rows:
        iwae = row.get("iwae_images_per_second", np.nan)
        print(f"{row['model']:<5} {str(row['jit_compile']):<5} "
              f"{row['elbo_images_per_second']:>14.0f} {iwae:>14.2f}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"matmul_gflops": gflops, "results": rows}, f, indent=1)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
