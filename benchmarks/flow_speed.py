"""The posterior flow's cost: tfvae's CouplingFlow against the coupling layers as published.

    python -m benchmarks.flow_speed [--repeats 15]

Real NVP as Dinh et al. write it runs each step's net on [z * mask, context] for every
sample and keeps half of its outputs (`CouplingFlow.masked`, also the tests' oracle).
CouplingFlow computes the same map from the kept half of z, the moved half's outputs and
the context once per image. Both run here forward and backward, compiled as training
compiles the fully connected model (XLA), on the best recipe's shapes: 128 images x 5
samples, z of 80, context of 160, 4 steps of 256 hidden units. The two alternate within
one process, so the machine's drift hits both; the ratio of medians is the figure to read.
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from tfvae.models import CouplingFlow


def timed_step(flow, forward):
    """A compiled forward and backward pass through `forward(z, context)`."""
    @tf.function(jit_compile=True)
    def step(z, context):
        with tf.GradientTape() as tape:
            out, log_det = forward(z, context)
            loss = tf.reduce_sum(out ** 2) - tf.reduce_sum(log_det)
        return tape.gradient(loss, flow.trainable_weights)
    return step


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.flow_speed",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--calls", type=int, default=20, help="steps per timing")
    args = parser.parse_args(argv)
    images, samples, latent, context_size = 128, 5, 80, 160
    flow = CouplingFlow(latent, steps=4)
    z = tf.random.stateless_normal([images, samples, latent], seed=[1, 2])
    context = tf.random.stateless_normal([images, 1, context_size], seed=[3, 4])
    flow(z, context)
    flow.set_weights([np.random.default_rng(0).normal(0, 0.05, w.shape).astype("float32")
                      for w in flow.get_weights()])
    flat_context = tf.reshape(tf.broadcast_to(context, [images, samples, context_size]),
                              [images * samples, context_size])
    flat_z = tf.reshape(z, [images * samples, latent])
    candidates = {
        "masked, as published": (timed_step(flow, flow.masked),
                                 flat_z, flat_context),
        "tfvae CouplingFlow": (timed_step(flow, flow), z, context),
    }
    seconds = {name: [] for name in candidates}
    for name, (step, z_in, context_in) in candidates.items():
        step(z_in, context_in)  # compile
    for _ in range(args.repeats):
        for name, (step, z_in, context_in) in candidates.items():
            start = time.perf_counter()
            for _ in range(args.calls):
                grads = step(z_in, context_in)
            grads[0].numpy()
            seconds[name].append((time.perf_counter() - start) / args.calls)
    medians = {name: np.median(times) for name, times in seconds.items()}
    baseline = medians["masked, as published"]
    print(f"{'flow':<22} {'ms per step':>12} {'speed-up':>9}")
    for name, median in medians.items():
        print(f"{name:<22} {1e3 * median:>12.2f} {baseline / median:>8.2f}x")


if __name__ == "__main__":
    main()
