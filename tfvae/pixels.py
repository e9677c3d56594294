"""Per-pixel training targets and the fixed draws of evaluation, shared by the input pipeline
(`tfvae.data`) and the models' Keras fit/evaluate (`tfvae.keras_fit`), without tf.data."""

import tensorflow as tf

# The test set is binarized once with this seed, whatever the run's seed, so that test
# numbers compare across runs; its reparameterization noise is fixed the same way.
TEST_BINARIZATION_SEED = (2015, 12)
EVAL_NOISE_SEED = (2015, 13)


def binarize(intensities, method, seed=None):
    """Maps intensities in [0, 1] to the training targets.

    Args:
      intensities: float tensor in [0, 1].
      method: 'dynamic' (Bernoulli draw with the intensity as probability, from the stateless
        `seed`), 'static' (threshold at 0.5, as the tutorial) or 'none'.
      seed: shape [2] int seed, needed for 'dynamic'.
    """
    if method == "dynamic":
        uniform = tf.random.stateless_uniform(tf.shape(intensities), seed=seed)
        return tf.cast(uniform < intensities, tf.float32)
    if method == "static":
        return tf.cast(intensities > 0.5, tf.float32)
    if method == "none":
        return intensities
    raise ValueError(f"binarize takes 'dynamic', 'static' or 'none', not {method!r} (a Config's "
                     "'auto' is decided by Config.resolved)")


def held_out_targets(intensities, method):
    """Held-out intensities [N, ...] binarized as every evaluation does: all at once, with
    TEST_BINARIZATION_SEED.

    Args:
      intensities: float tensor in [0, 1], the whole held-out set (a batch draws differently).
      method: as `binarize`.
    """
    return binarize(intensities, method, TEST_BINARIZATION_SEED)


def eval_noise(num_images, noise_shape):
    """The fixed reparameterization noise of an evaluation: [num_images, *noise_shape] float32.

    Args:
      num_images: images evaluated (the noise of image i depends on this count too).
      noise_shape: per image, (samples, latent_dim).
    """
    return tf.random.stateless_normal([num_images, *noise_shape], seed=EVAL_NOISE_SEED)
