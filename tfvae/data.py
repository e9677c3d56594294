"""The input pipeline: a run's images as tf.data streams of training and test batches.

Where images come from (MNIST IDX files, tensorflow-datasets, folders) is `tfvae.sources`; the
per-pixel targets and the evaluation's fixed draws are `tfvae.pixels`, shared with Keras's fit.

Every random draw of a training step (shuffle order, Bernoulli pixels, the reparameterization
noise) is a stateless function of (seed, step). A step's batch is then the same whether the run
was interrupted and resumed, grouped into compiled calls differently, or split across replicas.
"""

import os

import numpy as np
import tensorflow as tf

from tfvae import mnist, sources
from tfvae.errors import DataError
from tfvae.pixels import binarize, eval_noise, held_out_targets


def load(dataset, split, data_dir=None):
    """MNIST or Fashion-MNIST as uint8 arrays: (images [N, 28, 28], labels [N]).

    Args:
      dataset: 'mnist' or 'fashion_mnist'.
      split: 'train' or 'test'.
      data_dir: a directory of the four IDX .gz files, or its parent (default:
        $TFVAE_DATA_DIR, then tensorflow-datasets, which downloads).
    """
    return mnist.load(dataset, split, data_dir)


def load_subset(dataset, split, data_dir=None, size=None):
    """`load`, keeping only the first `size` images when `size` is given."""
    images, labels = load(dataset, split, data_dir)
    return (images[:size], labels[:size]) if size else (images, labels)


def _to_unit(images_uint8):
    """uint8 [N, H, W, C] (or MNIST's [N, 28, 28]) -> float32 [N, H, W, C] in [0, 1]."""
    x = tf.cast(images_uint8, tf.float32)
    return (x if x.shape.rank == 4 else x[..., None]) / 255.0


def count_steps_per_epoch(num_images, batch_size):
    """Full batches per epoch; raises DataError when the images cannot fill one."""
    if num_images < batch_size:
        raise DataError(f"{num_images} training images cannot fill one batch of {batch_size}: "
                        "lower --batch-size or raise --train-size")
    return num_images // batch_size


def train_batches(images, labels, *, batch_size, seed, binarization, noise_shape, start_step=0):
    """An endless tf.data stream of training batches, from global step `start_step` on.

    Each element is (x [B, H, W, C] float32, labels [B] int32, eps [B, *noise_shape]). The
    order is a fresh permutation each epoch; epochs drop their last incomplete batch.

    Args:
      images: uint8 array [N, H, W, C] (or [N, 28, 28]) held in memory, or an image set read
        on demand (`sources.ImageFiles`: `len()` and `batches(index_batches)`), which gives the
        same batches for the same seed and step.
      labels: [N] integer array.
      noise_shape: shape of the reparameterization noise per image, (samples, latent_dim).
    """
    num_images = len(images)
    steps_per_epoch = count_steps_per_epoch(num_images, batch_size)
    pixel_batches = images.batches if hasattr(images, "batches") else _gatherer(images)
    labels = tf.constant(labels, dtype=tf.int32)
    base_seed = tf.constant([seed, 0], tf.int64)

    def epoch_order(epoch):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(num_images), seed=tf.random.experimental.stateless_fold_in(base_seed, epoch))
        return tf.data.Dataset.from_tensor_slices(
            tf.reshape(order[: steps_per_epoch * batch_size], [steps_per_epoch, batch_size]))

    def make_batch(step, indices, pixels):
        pixel_seed, noise_seed = tf.unstack(tf.random.experimental.stateless_split(
            tf.random.experimental.stateless_fold_in(base_seed, -1 - step), num=2))
        x = binarize(_to_unit(pixels), binarization, pixel_seed)
        eps = tf.random.stateless_normal([batch_size, *noise_shape], seed=noise_seed)
        return x, tf.gather(labels, indices), eps

    first_epoch = start_step // steps_per_epoch
    orders = (tf.data.Dataset.range(first_epoch, 2**62).flat_map(epoch_order)
              .skip(start_step - first_epoch * steps_per_epoch))
    steps = tf.data.Dataset.range(start_step, 2**62)
    return (tf.data.Dataset.zip(steps, orders, pixel_batches(orders))
            .map(make_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
            .prefetch(tf.data.AUTOTUNE))


def _gatherer(images):
    """In-memory images: index batches [B] -> uint8 batches gathered from one tensor."""
    images = tf.constant(images)
    return lambda index_batches: index_batches.map(
        lambda indices: tf.gather(images, indices), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True)


def test_set(images, labels, binarization):
    """The test set as float arrays, binarized once with a fixed seed: (x [N,H,W,C], labels)."""
    x = held_out_targets(_to_unit(images), binarization)
    return x.numpy(), np.asarray(labels).astype(np.int32)


def usable_data_dir(override, stored):
    """Where a finished run's data is: `override` (--data-dir), else the run's stored directory
    if it still exists, else None ($TFVAE_DATA_DIR, then tensorflow-datasets)."""
    if override:
        return override
    return stored if stored and os.path.isdir(stored) else None


def load_test_set(config):
    """A Config's test set as training evaluates it: (x [N, H, W, C] float32, labels [N]).

    Any source: MNIST-likes, tensorflow-datasets image sets, folders.
    """
    resolved, loaded = sources.load(config, splits=("test",))
    return test_set(*loaded["test"], resolved.binarize)


def eval_batches(x, labels, *, batch_size, noise_shape):
    """Batches of a prepared test set with fixed noise: (x, labels, eps), the last one partial."""
    eps = eval_noise(len(x), noise_shape)
    return (tf.data.Dataset.from_tensor_slices((x, labels, eps))
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))
