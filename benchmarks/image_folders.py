"""Writes folders of images made from the real MNIST files, for `--dataset FOLDER`.

    python -m benchmarks.image_folders --tinted runs/tinted_mnist --count 10000
    python -m benchmarks.image_folders --synthetic 100000 --size 64 64 runs/synthetic

--tinted: 32x32 RGB PNGs in one subfolder per digit, each digit resized and tinted on black
with its class's hue, moved at random (seeded). --synthetic N: N unlabelled RGB PNGs of
--size H W, tiles of tinted digits scaled up (cheap to make, not compressible to nothing).
"""

import argparse
import os

import numpy as np
import tensorflow as tf

from tfvae import data

HUE_JITTER = 0.05  # --tinted: each class's hue varies by up to this (a hue circle is 1)


def tint(digits, rng, labels=None):
    """uint8 [N, h, w] grey digits -> uint8 [N, h, w, 3]: each digit in a fully saturated hue
    on black, its intensity scaling the colour.

    The hue is random, or given `labels` the class's own hue (class k of 10 at k / 10) moved at
    random by up to HUE_JITTER: colour then comes with the digit's identity, which a 2-D latent
    space holds, so a 2-D model's pictures show colour as well as shape.
    """
    if labels is None:
        hues = rng.uniform(0.0, 1.0, len(digits))
    else:
        hues = (np.asarray(labels) / 10 + rng.uniform(-HUE_JITTER, HUE_JITTER, len(digits))) % 1
    hsv = np.stack([hues, np.ones_like(hues), np.ones_like(hues)], -1)
    colours = tf.image.hsv_to_rgb(hsv.astype(np.float32)).numpy()[:, None, None, :]  # [N,1,1,3]
    return np.rint(digits[..., None] * colours).astype(np.uint8)


def resize(images, size):
    """uint8 [N, h, w, C] -> uint8 [N, H, W, C] (antialiased bilinear, rounded)."""
    resized = tf.image.resize(images, size, antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8).numpy()


def write_pngs(paths, images):
    """Encodes and writes many PNGs in a parallel tf.data map (eager calls cost more per file)."""
    def write(path, image):
        with tf.control_dependencies([tf.io.write_file(path, tf.io.encode_png(image))]):
            return tf.identity(path)

    writes = (tf.data.Dataset.from_tensor_slices((list(paths), images))
              .map(write, num_parallel_calls=tf.data.AUTOTUNE))
    for _ in writes:
        pass


def write_tinted(out, digits, labels, seed=0, size=(32, 32)):
    """One PNG per digit in out/<label>/, tinted; returns the paths written."""
    rng = np.random.default_rng(seed)
    images = tint(resize(digits[..., None], size)[..., 0], rng, labels)
    for label in np.unique(labels):
        os.makedirs(os.path.join(out, str(label)), exist_ok=True)
    paths = [os.path.join(out, str(label), f"{index:06d}.png")
             for index, label in enumerate(labels)]
    write_pngs(paths, images)
    return paths


def synthetic_images(digits, count, size, rng):
    """uint8 [count, H, W, 3]: 2x2 tiles of randomly chosen tinted digits, scaled to `size`."""
    chosen = digits[rng.integers(0, len(digits), (count, 4))]  # [count, 4, 28, 28]
    tiles = tint(chosen.reshape(count * 4, 28, 28), rng).reshape(count, 2, 2, 28, 28, 3)
    mosaic = tiles.transpose(0, 1, 3, 2, 4, 5).reshape(count, 56, 56, 3)
    return resize(mosaic, size)


def write_synthetic(out, digits, count, size=(64, 64), seed=0, chunk=1000):
    """`count` unlabelled PNGs in `out`, made `chunk` at a time so memory stays small."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    for begin in range(0, count, chunk):
        images = synthetic_images(digits, min(chunk, count - begin), size, rng)
        write_pngs([os.path.join(out, f"{begin + offset:07d}.png")
                    for offset in range(len(images))], images)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="folder to write (created)")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--tinted", action="store_true",
                      help="32x32 RGB tinted digits in class subfolders")
    kind.add_argument("--synthetic", type=int, metavar="N", help="N unlabelled RGB images")
    parser.add_argument("--count", type=int, default=None,
                        help="--tinted: use the first N MNIST training images (default: all)")
    parser.add_argument("--size", type=int, nargs=2, default=(64, 64), metavar=("H", "W"),
                        help="--synthetic: image size (default: 64 64)")
    parser.add_argument("--data-dir", default=None, help="MNIST IDX folder (default: "
                        "$TFVAE_DATA_DIR, then tensorflow-datasets)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    digits, labels = data.load_subset("mnist", "train", args.data_dir, args.count)
    if args.tinted:
        written = len(write_tinted(args.out, digits, labels, args.seed))
    else:
        write_synthetic(args.out, digits, args.synthetic, tuple(args.size), args.seed)
        written = args.synthetic
    print(f"wrote {written} images into {args.out}")


if __name__ == "__main__":
    main()
