"""One benchmark configuration, run in its own process so its peak memory is its own.

`python -m benchmarks.speed_child '{"kind": "tfvae", "model": "conv", "batch_size": 128}'`
prints one line `RESULT {json}`. Kinds: 'tutorial' (the baseline loop), 'tfvae' (tfvae's
training step as `python -m tfvae.train` builds it), 'iterator' (tfvae's input pipeline alone).
"""

import json
import resource
import sys
import time

import tensorflow as tf

from benchmarks import flops, tutorial
from tfvae import data, steps, train
from tfvae.config import Config


def timed(run_once, seconds, images_per_call):
    """Images/s of `run_once` over about `seconds`, after one untimed call that compiles."""
    run_once()
    started, calls = time.perf_counter(), 0
    while time.perf_counter() - started < seconds or calls < 2:
        run_once()
        calls += 1
    return calls * images_per_call / (time.perf_counter() - started)


def per_example_batches(images, labels, config, noise_shape):
    """tfvae's stream built the tutorial's way (per-example map, then batch), for comparison.

    Same stateless draws per image rather than per batch, so not bit-identical to
    data.train_batches; it only measures what a per-example map costs.
    """
    images, labels = tf.constant(images), tf.constant(labels, tf.int32)
    base_seed = tf.constant([config.seed, 0], tf.int64)

    def example(index):
        seed = tf.random.experimental.stateless_fold_in(base_seed, index)
        x = data.binarize(tf.cast(images[index], tf.float32)[..., None] / 255.0,
                          config.binarize, seed)
        eps = tf.random.stateless_normal(noise_shape, seed=seed[::-1])
        return x, labels[index], eps

    return (tf.data.Dataset.range(2**62).map(lambda i: i % len(images))
            .map(example, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .batch(config.batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE))


def run_tutorial(spec, images):
    model = tutorial.CVAE(spec.get("latent_dim", 20 if spec["model"] == "mlp" else 2),
                          spec["model"])
    optimizer = tf.keras.optimizers.Adam(1e-4)
    train_step = tutorial.make_train_step(model, optimizer)
    dataset = tutorial.train_dataset(images, spec["batch_size"])

    def epochs():  # the tutorial's `for epoch ...: for train_x in train_dataset:`
        while True:
            yield from dataset

    batches = epochs()

    def run_once():  # the tutorial calls the step once per batch from Python
        for _ in range(10):
            train_step(next(batches))

    return model, timed(run_once, spec["seconds"], 10 * spec["batch_size"])


def run_tfvae(spec, images, labels):
    overrides = {name: tuple(value) if isinstance(value, list) else value  # JSON has no tuples
                 for name, value in spec.get("overrides", {}).items()}
    config = Config(model=spec["model"], batch_size=spec["batch_size"], **overrides)
    # As train.train_and_evaluate sets things up (the real functions, not copies).
    strategy = train.set_up(config, deterministic=spec.get("deterministic", True))
    model, optimizer, _, _ = train.build_state(config, strategy)
    noise_shape = config.train_noise_shape  # k samples per image under --objective iwae
    if spec.get("pipeline") == "per-example":
        batches = per_example_batches(images, labels, config, noise_shape)
    else:
        batches = data.train_batches(images, labels, batch_size=config.batch_size,
                                     seed=config.seed, binarization=config.binarize,
                                     noise_shape=noise_shape)
    if spec["kind"] == "iterator":
        iterator = iter(batches)

        def pull():
            for _ in range(50):
                next(iterator)

        return model, timed(pull, spec["seconds"], 50 * config.batch_size)
    kwargs = {}
    if "jit_whole_step" in spec:
        kwargs["jit_whole_step"] = spec["jit_whole_step"]
    run_once = training_calls(model, optimizer, config, strategy, batches, **kwargs)
    return model, timed(run_once, spec["seconds"], config.steps_per_call * config.batch_size)


def training_calls(model, optimizer, config, strategy, batches, **kwargs):
    """A function that runs `config.steps_per_call` compiled training steps on `batches`, as
    tfvae.train does; `kwargs` go to steps.make_train_function."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    iterator = iter(strategy.experimental_distribute_dataset(batches.with_options(options)))
    train_steps = steps.make_train_function(model, optimizer, config, strategy, **kwargs)
    step = [0]
    num = config.steps_per_call

    def run_once():
        train_steps(iterator, tf.constant(step[0], tf.int64), tf.constant(num)).numpy()
        step[0] += num

    return run_once


def main(argv=None):
    spec = json.loads((argv or sys.argv[1:])[0])
    if "threads" in spec:
        tf.config.threading.set_intra_op_parallelism_threads(spec["threads"][0])
        tf.config.threading.set_inter_op_parallelism_threads(spec["threads"][1])
    images, labels = data.load("mnist", "train")
    if spec["kind"] == "tutorial":
        model, rate = run_tutorial(spec, images)
    else:
        model, rate = run_tfvae(spec, images, labels)
    result = dict(spec, images_per_second=rate,
                  flops_per_image=flops.train_flops_per_image(model),
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
