"""Images decoded from files and converted to a run's shape: grey <-> colour, alpha dropped,
resized; with tf.io and tf.image, in parallel tf.data maps."""

import numpy as np
import tensorflow as tf

from tfvae.errors import DataError

# Channel count kept when the stored one is used: an alpha channel is dropped.
STORED_CHANNELS = {1: 1, 2: 1, 3: 3, 4: 3}
DECODE_BATCH = 256


def _decode_raw(path):
    return tf.io.decode_image(tf.io.read_file(path), expand_animations=False)


def decode_file(path, channels, size):
    """A file's image as uint8 [H, W, channels], converted and resized to `size` (H, W)."""
    return convert(_decode_raw(path), channels, size)


def convert(image, channels, size):
    """uint8 [h, w, c] (c = 1-4) -> uint8 [H, W, channels]: grey <-> colour, alpha dropped,
    resized (antialiased bilinear, rounded) only when its size is not already `size`."""
    image = tf.ensure_shape(image, [None, None, None])
    stored = tf.shape(image)[-1]
    colour = stored >= 3
    visible = tf.cond(colour, lambda: image[..., :3],
                      lambda: tf.image.grayscale_to_rgb(image[..., :1]))  # [h, w, 3]
    if channels == 1:
        image = tf.cond(colour, lambda: tf.image.rgb_to_grayscale(visible),
                        lambda: image[..., :1])
    else:
        image = visible
    same = tf.reduce_all(tf.shape(image)[:2] == tf.constant(size))

    def resize():
        resized = tf.image.resize(image, size, antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

    image = tf.cond(same, lambda: image, resize)
    return tf.ensure_shape(image, [*size, channels])


def convert_in_batches(images, shape):
    """A dataset of uint8 images -> uint8 array [N, *shape], converted where they differ."""
    converted = images.map(lambda image: convert(image, shape[2], shape[:2]),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    batches = list(converted.batch(DECODE_BATCH).as_numpy_iterator())
    return np.concatenate(batches) if batches else np.zeros((0, *shape), np.uint8)


def decode_files(paths, shape):
    """uint8 [N, *shape] of image files, decoded in parallel; DataError names a bad file."""
    images = np.empty((len(paths), *shape), np.uint8)  # filled in place: no second copy
    for index, image in enumerate(_decoded(paths, lambda p: decode_file(p, shape[2], shape[:2]))):
        images[index] = image
    return images


def stored_shapes(paths):
    """Each file's own (height, width, channels) as stored, decoding each once."""
    return list(_decoded(paths, lambda path: tf.shape(_decode_raw(path))))


def _decoded(paths, function):
    """Yields `function` of each file in order, run in a parallel tf.data map.

    Results come back in order, so when one fails the count so far names the file.
    """
    results = (tf.data.Dataset.from_tensor_slices(list(paths))
               .map(function, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
               .as_numpy_iterator())
    for index in range(len(paths)):
        try:
            yield next(results)
        except tf.errors.OpError:
            raise DataError(f"cannot read image {paths[index]}: it is not a PNG, JPEG, BMP "
                            "or GIF that TensorFlow can decode; replace or remove the file"
                            ) from None
