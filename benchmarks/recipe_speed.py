"""What the recipes' autoregressive parts and k cost a training step.

    TFVAE_DATA_DIR=/work/shared/data python -m benchmarks.recipe_speed [--repeats 7]

The 240-epoch recipe's training step (fully connected 512-512, two stochastic layers, flow
posterior, VampPrior, linear autoregressive part, IWAE k=5, batch 128, XLA), as
`python -m tfvae.train` builds it, against the same with a MADE of 500 units, that MADE
seeing f(z), a local network of 16 or 8 units on each pixel's causal window, the local network
of 16 or 32 (the best recipe) whose output is a function of the pixel's probability through 8
knots (`--autoregressive-local-knots 8`), and k = 3 importance samples. The variants alternate
within one process, so the machine's drift hits them all; the ratios of the medians to the
linear part's are the figures to read.
"""

import argparse
import time

import numpy as np

from benchmarks import speed_child
from tfvae import data, train
from tfvae.config import Config

LINEAR = dict(model="mlp", hidden_units=(512, 512), latent_dim=80, top_latent_dim=40,
              posterior_flow_steps=4, prior_components=200, autoregressive_decoder=True,
              kl="mc", objective="iwae", k=5, kl_warmup_epochs=10, lr_schedule="cosine")
VARIANTS = {
    "linear part": {},
    "MADE 500": {"autoregressive_hidden_units": 500},
    "MADE 500 seeing f(z)": {"autoregressive_hidden_units": 500,
                             "autoregressive_conditional": True},
    "local network 16": {"autoregressive_local_units": 16},
    "local network 8": {"autoregressive_local_units": 8},
    "local 16, 8 knots": {"autoregressive_local_units": 16, "autoregressive_local_knots": 8},
    "local 32, 8 knots": {"autoregressive_local_units": 32, "autoregressive_local_knots": 8},
    "k = 3": {"k": 3},
}


def recipe_calls(config, images, labels):
    """speed_child.training_calls for `config`, built as tfvae.train builds it, compiled."""
    strategy = train.set_up(config)
    model, optimizer, _, _ = train.build_state(config, strategy, total_steps=10**6)
    batches = data.train_batches(images, labels, batch_size=config.batch_size, seed=config.seed,
                                 binarization=config.binarize,
                                 noise_shape=config.train_noise_shape)
    run = speed_child.training_calls(model, optimizer, config, strategy, batches)
    run()  # compiles
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.recipe_speed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=2, help="calls per timing")
    args = parser.parse_args(argv)
    images, labels = data.load("mnist", "train")
    runs = {name: recipe_calls(Config(**{**LINEAR, **flags}), images, labels)
            for name, flags in VARIANTS.items()}
    steps_per_timing = args.calls * Config(**LINEAR).steps_per_call
    seconds = {name: [] for name in runs}
    for _ in range(args.repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            for _ in range(args.calls):
                run()
            seconds[name].append((time.perf_counter() - started) / steps_per_timing)
    linear = np.median(seconds["linear part"])
    print(f"{'variant':24} {'ms per step':>12} {'x linear':>9}")
    for name, times in seconds.items():
        print(f"{name:24} {1000 * np.median(times):12.1f} {np.median(times) / linear:9.2f}")


if __name__ == "__main__":
    main()
