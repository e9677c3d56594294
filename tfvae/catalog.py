"""tensorflow-datasets: the one loader tfvae reads it through (MNIST-likes without local files,
and any image set by name), and what a dataset's metadata says (features, splits, size).

tensorflow_datasets is imported inside the functions that use it, on purpose: its import takes
seconds, which runs that read IDX files or folders, and every `--help`, should not pay.
"""

import os
import sys

import numpy as np

from tfvae.errors import DataError, first_line

CHECK_NAME = "check the connection or the name"


class MissingSplit(DataError):
    """The dataset has no split of that name (tensorflow-datasets' ValueError)."""


def load(name, split, fix=CHECK_NAME):
    """One split of a tensorflow-datasets dataset, downloaded once and then cached.

    Returns (a tf.data.Dataset of feature dicts, the split's SplitInfo or None when tfds does not
    know its size). Raises MissingSplit when `name` has no split `split`, and DataError, ending
    with `fix`, for any other failure (offline, disk full, unknown name...).

    Args:
      name: a tensorflow-datasets name, e.g. "mnist" or "emnist/letters".
      split: a split, or a slice of one ("train[:90%]").
      fix: what the user can do about a failure, appended to its message.
    """
    import tensorflow_datasets as tfds  # slow to import: see the module's docstring

    print(f"loading {name} {split} through tensorflow-datasets (downloaded once, then cached; "
          "offline, it retries for a few minutes before giving up)",
          file=sys.stderr, flush=True)
    try:
        dataset, info = tfds.load(name, split=split, with_info=True)
    except Exception as error:  # offline, disk full...: all mean the same to a user
        if isinstance(error, ValueError) and "split" in str(error).lower():
            raise MissingSplit(f"{name} has no split {split!r} ({first_line(error)[:200]})"
                               ) from None
        raise DataError(f"could not load {name} through tensorflow-datasets "
                        f"({first_line(error)[:200]}); {fix}") from None
    try:
        return dataset, info.splits[split]  # its size, once tfds has prepared the data
    except (KeyError, ValueError):
        return dataset, None


def info(name):
    """A dataset's DatasetInfo, read without downloading its data; DataError for a bad name."""
    import tensorflow_datasets as tfds  # slow to import: see the module's docstring

    try:
        return tfds.builder(name).info
    except Exception as error:  # DatasetNotFoundError, or a malformed name
        raise DataError(f"unknown dataset {name!r}: pass mnist, fashion_mnist, a "
                        "tensorflow-datasets image dataset (cifar10, emnist/letters, ...) or a "
                        f"folder of images ({first_line(error)[:100]})") from None


def image_and_label_features(name, features, supervised_keys=None):
    """The keys of a tfds dataset's image feature and its ClassLabel feature (None if none)."""
    import tensorflow_datasets as tfds  # slow to import: see the module's docstring

    def of_type(kind):
        return [key for key, feature in features.items() if isinstance(feature, kind)]

    keys = supervised_keys if isinstance(supervised_keys, tuple) else ()
    images, labels = of_type(tfds.features.Image), of_type(tfds.features.ClassLabel)
    if not images:
        kinds = ", ".join(f"{key} ({type(f).__name__})" for key, f in features.items())
        raise DataError(f"{name} is not an image dataset (its features: {kinds}): pass a "
                        "tensorflow-datasets image dataset such as cifar10, or a folder of "
                        "images")
    image = next((k for k in (*keys[:1], "image") if k in images), images[0])
    label = next((k for k in (*keys[1:2], "label") if k in labels), None)
    if label is None and len(labels) == 1:
        label = labels[0]
    return image, label


def label_names(name):
    """The class names of a dataset's label feature; () when it has none or cannot be read."""
    try:
        dataset_info = info(name)
        _, label_key = image_and_label_features(name, dataset_info.features,
                                                dataset_info.supervised_keys)
    except Exception:  # pictures then number the classes; nothing else depends on the names
        return ()
    return tuple(dataset_info.features[label_key].names) if label_key else ()


def split_names(name, test_fraction):
    """The tfds splits read as train and test: without a test split, the last `test_fraction`
    of train is held out."""
    try:
        load(name, "test")
        return {"train": "train", "test": "test"}
    except MissingSplit:
        kept = 100 - round(100 * test_fraction)
        return {"train": f"train[:{kept}%]", "test": f"train[{kept}%:]"}


def usable_memory():
    """Bytes a data set may take in memory: half this machine's."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2


def check_fits_memory(name, split, split_info, size, shape):
    """Refuses a tensorflow-datasets split whose decoded images would not fit in memory."""
    count = min(split_info.num_examples, size or split_info.num_examples) if split_info else 0
    needed = count * int(np.prod(shape))
    if needed > usable_memory():
        raise DataError(f"the {count} {split} images of {name} take {needed / 2**30:.1f} GiB "
                        f"decoded, more than half this machine's memory: pass --train-size N "
                        "or a smaller --image-size H W")
