"""Pictures beside the scalars in TensorBoard: each epoch's sample grid and reconstructions.

`write_image_summaries` is what `python -m tfvae.train` calls per epoch; `ImageSummaries` is the
same as a Keras callback for `model.fit` users.
"""

import math
import os

import keras
import numpy as np
import tensorflow as tf

from tfvae import data, viz
from tfvae.keras_fit import to_unit_images

SAMPLES_TAG = "samples"
RECONSTRUCTIONS_TAG = "reconstructions"


def grid_latents(model, seed, side=8):
    """The latents and labels of a sample grid, as the CLI draws them (`[seed, 1]`).

    Unconditional: side x side prior draws; conditional: one row per class, the same
    NUM_CLASSES styles in every row.
    """
    if model.conditional:
        labels = np.repeat(np.arange(data.NUM_CLASSES), data.NUM_CLASSES)
        styles = model.sample_prior(data.NUM_CLASSES, [seed, 1])
        return tf.tile(styles, [data.NUM_CLASSES, 1]), labels
    return model.sample_prior(side * side, [seed, 1]), None


def write_image_summaries(model, step, z, labels, originals, original_labels=None):
    """Writes the grid decoded from `z` and the reconstructions of `originals` as image
    summaries ('samples', 'reconstructions') into the default summary writer at `step`.

    Args:
      model: a tfvae VAE.
      step: the summary step (an epoch number).
      z, labels: the grid's latents [N, latent_dim] and, for conditional models, labels [N];
        one row per class for conditional models, else a square grid.
      originals: images [M, 28, 28(, 1)] (uint8 or floats in [0, 1]) to reconstruct.
      original_labels: their labels [M] (conditional models).
    """
    samples = model.decode(z, labels, apply_sigmoid=True).numpy()
    rows = data.NUM_CLASSES if model.conditional else math.isqrt(len(samples))
    originals = to_unit_images(originals)
    logits, _, _ = model(originals, original_labels if model.conditional else None)
    pictures = {SAMPLES_TAG: viz.image_grid(samples, rows),
                RECONSTRUCTIONS_TAG: viz.reconstruction_grid(originals.numpy(),
                                                             tf.sigmoid(logits).numpy())}
    for tag, grid in pictures.items():
        tf.summary.image(tag, grid[None, :, :, None], step=step)  # [1, H, W, 1] uint8


class ImageSummaries(keras.callbacks.Callback):
    """Adds, each epoch, the sample grid and reconstructions to a TensorBoard log directory.

    Use beside keras.callbacks.TensorBoard(log_dir): the pictures go to `log_dir/images`, at
    the epoch numbers of its scalars. The prior draws are made once, so epochs compare.

    Args:
      log_dir: the TensorBoard log directory.
      images: a few images to reconstruct each epoch, e.g. x_test[:16].
      labels: their labels (conditional models).
      seed: keys the prior draws of the sample grid.

    Example:
      >>> vae.fit(x, epochs=10, callbacks=[keras.callbacks.TensorBoard("logs"),
      ...                                  ImageSummaries("logs", x_test[:16])])
    """

    def __init__(self, log_dir, images, labels=None, seed=0):
        super().__init__()
        self.log_dir, self.images, self.labels, self.seed = log_dir, images, labels, seed
        self._writer = self._grid = None

    def on_train_begin(self, logs=None):
        self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "images"))
        self._grid = grid_latents(self.model, self.seed)

    def on_epoch_end(self, epoch, logs=None):
        with self._writer.as_default():
            write_image_summaries(self.model, epoch, *self._grid, self.images, self.labels)
        self._writer.flush()

    def on_train_end(self, logs=None):
        self._writer.close()
