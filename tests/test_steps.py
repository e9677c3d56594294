"""tfvae.steps: the compiled training step."""

import keras
import numpy as np
import tensorflow as tf

from tfvae import steps
from tfvae.config import Config
from tfvae.models import MlpVAE

LATENT = 3


def binary_images(num, seed=0):
    uniform = tf.random.stateless_uniform([num, 28, 28, 1], seed=[seed, 1])
    return tf.cast(uniform < 0.3, tf.float32)


def test_training_step_applies_the_warmup_weight():
    # With a weight of ~0 the first steps ignore the KL, so the encoder's variance layer moves
    # differently than under the full objective; an ignored warm-up would give equal weights.
    config = Config(model="mlp", latent_dim=LATENT, hidden_units=(16,), batch_size=8,
                    jit_compile=False)
    x = binary_images(8)
    batches = tf.data.Dataset.from_tensors(
        (x, tf.zeros([8], tf.int32), tf.random.stateless_normal([8, 1, LATENT], seed=[1, 1])))
    results = []
    for warmup_steps in (0, 10**6):
        keras.utils.set_random_seed(0)
        model = MlpVAE(latent_dim=LATENT, hidden_units=(16,))
        model.build((None, 28, 28, 1))
        optimizer = keras.optimizers.SGD(0.1)
        optimizer.build(model.trainable_variables)
        train_steps = steps.make_train_function(model, optimizer, config,
                                                tf.distribute.get_strategy(), warmup_steps)
        train_steps(iter(batches.repeat()), tf.constant(0, tf.int64), tf.constant(1))
        results.append([w.numpy() for w in model.trainable_weights])
    encoder_output_kernel = 2  # Dense(2 * latent): its updates carry the KL's gradient
    assert not np.allclose(results[0][encoder_output_kernel], results[1][encoder_output_kernel])
    # The decoder's gradient does not involve the KL: both runs update it identically.
    np.testing.assert_allclose(results[0][-2], results[1][-2], rtol=1e-5, atol=1e-7)
