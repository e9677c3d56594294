"""How far `tfvae.evaluate --mixed-precision` moves the IWAE bound of a trained run.

    TFVAE_DATA_DIR=../shared/data python -m benchmarks.eval_precision RUN_DIR [--subset 200]
        [--k 5000]

Scores the first `--subset` test images twice with the same importance samples, float32 and
mixed bfloat16 (the evaluate command's own step), and prints both mean NLLs, their paired
difference with its standard error, and the standard error of the NLL itself: the difference
should be small against the latter.
"""

import argparse
import dataclasses
import time

import numpy as np

from tfvae import checkpoints, data, evaluate


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.eval_precision",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--subset", type=int, default=200)
    parser.add_argument("--k", type=int, default=5000)
    args = parser.parse_args(argv)
    config, model, _, _ = checkpoints.load_run(args.run_dir)
    x, labels = data.load_test_set(dataclasses.replace(config, test_size=args.subset))
    mixed_config, mixed_model = checkpoints.mixed_precision_copy(config, model)
    results = {}
    for name, variant_model, variant_config in (("float32", model, config),
                                                 ("mixed bfloat16", mixed_model, mixed_config)):
        started = time.perf_counter()
        results[name] = -evaluate.score_images(variant_model, variant_config, x, labels,
                                               args.k)[:, 0]
        seconds = time.perf_counter() - started
        nll = results[name]
        print(f"{name:<15} NLL {nll.mean():.3f} +/- {nll.std(ddof=1) / np.sqrt(len(nll)):.3f} "
              f"nats ({len(nll)} images, k={args.k}, {len(nll) / seconds:.2f} images/s)",
              flush=True)
    difference = results["mixed bfloat16"] - results["float32"]
    print(f"mixed - float32: {difference.mean():+.4f} +/- "
          f"{difference.std(ddof=1) / np.sqrt(len(difference)):.4f} nats (paired); largest "
          f"per image {np.abs(difference).max():.4f}")


if __name__ == "__main__":
    main()
