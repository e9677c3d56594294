"""MNIST-like data (an IDX reader, tensorflow-datasets as fallback) and the tf.data pipelines.

Other sources (tensorflow-datasets image sets, folders of images) are in `tfvae.sources`.

Every random draw of a training step (shuffle order, Bernoulli pixels, the reparameterization
noise) is a stateless function of (seed, step). A step's batch is then the same whether the run
was interrupted and resumed, grouped into compiled calls differently, or split across replicas.
"""

import gzip
import hashlib
import os
import sys
import zlib

import numpy as np
import tensorflow as tf

from tfvae.config import MNIST_CLASSES, MNIST_SHAPE
from tfvae.errors import TfvaeError, first_line

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist"}
# SHA-256 of the published .gz files, so a folder of one dataset's files is never read as the
# other's (both are 28x28 grey images with labels 0-9, so nothing else would tell them apart).
PUBLISHED_SHA256 = {
    "mnist": {
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion_mnist": {
        "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}
# The test set is binarized once with this seed, whatever the run's seed, so that test
# numbers compare across runs.
TEST_BINARIZATION_SEED = (2015, 12)
EVAL_NOISE_SEED = (2015, 13)


class DataError(TfvaeError):
    """Missing, corrupt or mismatched data, with what to do about it."""


def read_idx(path, expected_ndim):
    """Reads a gzip-compressed IDX file into a uint8 array, checking magic, dimensions, length."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise DataError(f"missing data file {path}") from None
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"corrupt data file {path}: not a complete gzip file ({error}); "
                        "download it again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"corrupt data file {path}: bad IDX magic number "
                        f"(expected unsigned bytes, 0x0000080{expected_ndim})")
    if raw[3] != expected_ndim:
        raise DataError(f"corrupt data file {path}: {raw[3]} dimensions, expected "
                        f"{expected_ndim}")
    header = 4 + 4 * expected_ndim
    if len(raw) < header:
        raise DataError(f"corrupt data file {path}: truncated header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(expected_ndim))
    expected = int(np.prod(dims, dtype=np.int64))
    if len(raw) - header != expected:
        raise DataError(f"corrupt data file {path}: {len(raw) - header} bytes of data where its "
                        f"header {dims} promises {expected}; download it again")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_dir(directory, split):
    """Reads one split from a directory of the four standard IDX .gz files."""
    image_file, label_file = (os.path.join(directory, name) for name in IDX_FILES[split])
    images = read_idx(image_file, expected_ndim=3)
    labels = read_idx(label_file, expected_ndim=1)
    if images.shape[1:] != MNIST_SHAPE[:2]:
        raise DataError(f"{image_file} holds {images.shape[1:]} images, expected "
                        f"{MNIST_SHAPE[:2]}")
    if len(images) == 0:
        raise DataError(f"{image_file} holds no images: download it again")
    if len(images) != len(labels):
        raise DataError(f"{image_file} has {len(images)} images but {label_file} has "
                        f"{len(labels)} labels: the two files do not belong together")
    if labels.max(initial=0) >= MNIST_CLASSES:
        raise DataError(f"corrupt data file {label_file}: label {labels.max()} is not 0-9")
    return images, labels


def _resolve_dir(data_dir, dataset):
    """Accepts the dataset's own folder or a parent holding `mnist/`, `fashion_mnist/`."""
    nested = os.path.join(data_dir, dataset)
    return nested if os.path.isdir(nested) else data_dir


def _how_to_fix(dataset):
    return (f"download the four {dataset} IDX .gz files ({', '.join(IDX_FILES['train'])}, "
            f"{', '.join(IDX_FILES['test'])}) into a directory and pass --data-dir DIR "
            "or set TFVAE_DATA_DIR=DIR")


def load(dataset, split, data_dir=None):
    """Returns (images [N, 28, 28] uint8, labels [N] uint8) of one split.

    Sources, in order: `data_dir`, $TFVAE_DATA_DIR, then tensorflow-datasets (which downloads).
    """
    if dataset not in TFDS_NAMES:
        raise DataError(f"unknown dataset {dataset!r}: use one of {', '.join(TFDS_NAMES)}")
    data_dir = data_dir or os.environ.get("TFVAE_DATA_DIR")
    if data_dir:
        if not os.path.isdir(data_dir):
            raise DataError(f"data directory {data_dir} does not exist: {_how_to_fix(dataset)}")
        directory = _resolve_dir(data_dir, dataset)
        missing = [n for n in IDX_FILES[split] if not os.path.isfile(os.path.join(directory, n))]
        if missing:
            raise DataError(f"{directory} lacks {', '.join(missing)}: {_how_to_fix(dataset)}")
        _check_is_dataset(directory, split, dataset)
        return read_idx_dir(directory, split)
    return _load_tfds(dataset, split)


def _check_is_dataset(directory, split, dataset):
    """Raises DataError if a file is the published file of another dataset."""
    for name in IDX_FILES[split]:
        path = os.path.join(directory, name)
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        other = next((d for d, known in PUBLISHED_SHA256.items()
                      if d != dataset and digest in known), None)
        if other:
            raise DataError(f"{path} is {other}'s {name}, not {dataset}'s: put each dataset's "
                            f"files in its own folder, or pass --dataset {other}")


def _load_tfds(dataset, split):
    print(f"loading {dataset} {split} through tensorflow-datasets (downloaded once, then cached;"
          " offline, it retries for a few minutes before giving up)", file=sys.stderr, flush=True)
    try:
        import tensorflow_datasets as tfds

        batches = list(tfds.as_numpy(tfds.load(TFDS_NAMES[dataset], split=split,
                                               batch_size=10_000)))
    except Exception as error:  # tfds fails in many ways offline; all mean the same to a user
        reason = first_line(error)[:200]
        raise DataError(f"could not load {dataset} through tensorflow-datasets ({reason}); "
                        f"{_how_to_fix(dataset)}") from None
    if not batches:
        raise DataError(f"tensorflow-datasets gave no {split} images of {dataset}: "
                        f"{_how_to_fix(dataset)}")
    images = np.concatenate([batch["image"] for batch in batches])[..., 0]
    return images, np.concatenate([batch["label"] for batch in batches]).astype(np.uint8)


def load_subset(dataset, split, data_dir=None, size=None):
    """`load`, keeping only the first `size` images when `size` is given."""
    images, labels = load(dataset, split, data_dir)
    return (images[:size], labels[:size]) if size else (images, labels)


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
    return intensities


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
    x = binarize(_to_unit(images), binarization, TEST_BINARIZATION_SEED)
    return x.numpy(), np.asarray(labels).astype(np.int32)


def usable_data_dir(override, stored):
    """Where a finished run's data is: `override` (--data-dir), else the run's stored directory
    if it still exists, else None ($TFVAE_DATA_DIR, then tensorflow-datasets)."""
    if override:
        return override
    return stored if stored and os.path.isdir(stored) else None


def load_test_set(config):
    """A Config's test set as training evaluates it: (x [N, H, W, C] float32, labels [N]).

    Any source: MNIST-likes, tensorflow-datasets image sets, folders (`sources.load_test_set`).
    """
    from tfvae import sources  # sources reads MNIST-likes through this module

    return sources.load_test_set(config)


def eval_batches(x, labels, *, batch_size, noise_shape):
    """Batches of a prepared test set with fixed noise: (x, labels, eps), the last one partial."""
    eps = tf.random.stateless_normal([len(x), *noise_shape], seed=EVAL_NOISE_SEED)
    return (tf.data.Dataset.from_tensor_slices((x, labels, eps))
            .batch(batch_size).prefetch(tf.data.AUTOTUNE))
