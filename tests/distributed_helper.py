"""Subprocess side of tests/test_distribute.py: each mode needs a process of its own.

`python tests/distributed_helper.py mirrored OUT.json`: splits the CPU into two logical devices
(possible only before TensorFlow starts, hence a fresh process) and writes how far one
MirroredStrategy step over them is from one device's step on the same global batch.

`python tests/distributed_helper.py mirrored-train OUT.json`: runs `train_and_evaluate` with
--strategy mirrored over two logical devices and writes its last metrics.

`python tests/distributed_helper.py worker WEIGHTS.npz TRAIN-FLAGS...`: runs `tfvae.train` as
one worker of the cluster in $TF_CONFIG, then saves the model's final weights to WEIGHTS.npz.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def max_difference(a, b):
    return max(float(abs(u - v).max()) for u, v in zip(a, b))


def mirrored(out_path):
    import keras
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from tfvae import data, steps
    from tfvae.config import Config
    from tfvae.distribute import distribute_batches
    from tfvae.models import build_model
    from tfvae.train import make_optimizer

    config = Config(model="conv", latent_dim=2, batch_size=16, train_size=64, strategy="mirrored")
    images, labels = data.load_subset("mnist", "train", size=config.train_size)
    batches = data.train_batches(images, labels, batch_size=config.batch_size, seed=0,
                                 binarization="dynamic", noise_shape=(1, config.latent_dim))
    first = tf.constant(0, tf.int64)

    def first_step(strategy, weights):
        """Gradients and sums of step 0 on the global batch, then the weights after it."""
        with strategy.scope():
            model = build_model(config)
            model.set_weights(weights)
            optimizer = make_optimizer(config, model)
        gradients = steps.make_gradient_function(model, optimizer, config)

        def replica_gradients(x, y, eps):  # as steps' replica_step: the batch onto the replica
            return gradients(*tf.nest.map_structure(tf.identity, (x, y, eps)), 1.0)

        @tf.function
        def summed_gradients(x, y, eps):
            grads, sums = strategy.run(replica_gradients, args=(x, y, eps))
            return [strategy.reduce("SUM", g, axis=None) for g in grads + [sums]]

        x, y, eps = next(iter(distribute_batches(strategy, batches)))
        *grads, sums = [t.numpy() for t in summed_gradients(x, y, eps)]
        rows = steps.make_train_function(model, optimizer, config, strategy)(
            iter(distribute_batches(strategy, batches)), first, tf.constant(1))
        replica_batches = [int(t.shape[0]) for t in strategy.experimental_local_results(x)]
        return grads, sums, rows.numpy()[0], model.get_weights(), replica_batches

    keras.utils.set_random_seed(0)
    weights = build_model(config).get_weights()
    one = first_step(tf.distribute.get_strategy(), weights)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    two = first_step(strategy, weights)
    result = {
        "replicas": strategy.num_replicas_in_sync,
        "replica_batches": two[4],
        "loss": float(-one[1][0]),
        "loss_difference": float(abs(one[1][0] - two[1][0])),
        "gradient_difference": max_difference(one[0], two[0]),
        "gradient_scale": max(float(abs(g).max()) for g in one[0]),
        "row_difference": float(abs(one[2] - two[2]).max()),
        "weight_change": max_difference(one[3], weights),
        "weight_difference": max_difference(one[3], two[3]),
    }
    with open(out_path, "w") as f:
        json.dump(result, f)


def mirrored_train(out_path):
    """The real entry point under MirroredStrategy over two logical CPUs, end to end (its own
    process: two MirroredStrategy objects in one process would share collective keys)."""
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from helpers import tiny_config

    from tfvae.train import train_and_evaluate

    config = tiny_config(hidden_units=(400,), train_size=256, test_size=100, batch_size=32,
                         steps_per_call=50, strategy="mirrored")
    record = train_and_evaluate(config, os.path.join(os.path.dirname(out_path), "run"))
    with open(out_path, "w") as f:
        json.dump({"replicas": len(tf.config.list_logical_devices("CPU")), **record}, f)


def worker(weights_path, argv):
    import numpy as np

    from tfvae import checkpoints, train

    built = []
    new_model = checkpoints.new_model

    def recording_new_model(config):
        built.append(new_model(config))
        return built[-1]

    checkpoints.new_model = recording_new_model  # to read this worker's weights after training
    train.main(argv)
    np.savez(weights_path, *built[0].get_weights())


if __name__ == "__main__":
    if sys.argv[1] == "mirrored":
        mirrored(sys.argv[2])
    elif sys.argv[1] == "mirrored-train":
        mirrored_train(sys.argv[2])
    else:
        worker(sys.argv[2], sys.argv[3:])
