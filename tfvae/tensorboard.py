"""Pictures beside the scalars in TensorBoard: each epoch's sample grid and reconstructions.

`python -m tfvae.train` calls `write_image_arrays` per epoch with the pictures it has decoded
for its PNG files; `ImageSummaries`, a Keras callback for `model.fit` users, decodes its own
through `write_image_summaries`.
"""

import os

import keras
import tensorflow as tf

from tfvae import figures, viz
from tfvae.keras_fit import to_unit_images

SAMPLES_TAG = "samples"
RECONSTRUCTIONS_TAG = "reconstructions"


def write_image_summaries(model, step, z, labels, originals, original_labels=None):
    """Writes the grid decoded from `z` and the reconstructions of `originals` as image
    summaries ('samples', 'reconstructions') into the default summary writer at `step`.

    Args:
      model: a tfvae VAE.
      step: the summary step (an epoch number).
      z: the grid's latents [N, latent_dim], as figures.progress_latents draws them: one row
        per class, or 8 x 8.
      labels: the grid's labels [N] (conditional models).
      originals: images [M, H, W(, C)] (uint8 or floats in [0, 1]) to reconstruct.
      original_labels: their labels [M] (conditional models).
    """
    originals = to_unit_images(originals).numpy()
    samples = figures.decode_images(model, z, labels)
    reconstructions = figures.reconstruct(model, originals, original_labels)
    write_image_arrays(model, step, samples, originals, reconstructions)


def write_image_arrays(model, step, samples, originals, reconstructions):
    """Writes already decoded pictures ([N, H, W, C] in [0, 1]) as the two image summaries."""
    rows = model.num_classes if model.conditional else figures.PROGRESS_GRID_SIDE
    pictures = {SAMPLES_TAG: viz.image_grid(samples, rows),
                RECONSTRUCTIONS_TAG: viz.reconstruction_grid(originals, reconstructions)}
    for tag, grid in pictures.items():
        grid = grid[:, :, None] if grid.ndim == 2 else grid  # [H, W, 1 or 3] uint8
        tf.summary.image(tag, grid[None], step=step)


class ImageSummaries(keras.callbacks.Callback):
    """Adds, each epoch, the sample grid and reconstructions to a TensorBoard log directory.

    Use beside keras.callbacks.TensorBoard(log_dir): the pictures go to `log_dir/images`, at
    the epoch numbers of its scalars. The prior draws are made once, so epochs compare.

    Args:
      log_dir: the TensorBoard log directory.
      images: a few images to reconstruct each epoch, e.g. x_test[:16].
      labels: their labels (conditional models).
      seed: keys the prior draws of the sample grid (as the CLI's --seed does its own).

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
        self._grid = figures.progress_latents(self.model, self.seed)

    def on_epoch_end(self, epoch, logs=None):
        with self._writer.as_default():
            write_image_summaries(self.model, epoch, *self._grid, self.images, self.labels)
        self._writer.flush()

    def on_train_end(self, logs=None):
        self._writer.close()
