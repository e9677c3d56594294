"""MNIST and Fashion-MNIST: their four IDX files from a directory, else tensorflow-datasets."""

import gzip
import hashlib
import os
import zlib

import numpy as np

from tfvae import catalog
from tfvae.config import MNIST_CLASSES, MNIST_SHAPE
from tfvae.errors import DataError

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


def resolve_dir(data_dir, dataset):
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

    Args:
      dataset: 'mnist' or 'fashion_mnist'.
      split: 'train' or 'test'.
      data_dir: a directory of the four IDX .gz files, or its parent.
    """
    if dataset not in TFDS_NAMES:
        raise DataError(f"unknown dataset {dataset!r}: use one of {', '.join(TFDS_NAMES)}")
    data_dir = data_dir or os.environ.get("TFVAE_DATA_DIR")
    if data_dir:
        if not os.path.isdir(data_dir):
            raise DataError(f"data directory {data_dir} does not exist: {_how_to_fix(dataset)}")
        directory = resolve_dir(data_dir, dataset)
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
    examples, _ = catalog.load(TFDS_NAMES[dataset], split, fix=_how_to_fix(dataset))
    batches = list(examples.batch(10_000).as_numpy_iterator())
    if not batches:
        raise DataError(f"tensorflow-datasets gave no {split} images of {dataset}: "
                        f"{_how_to_fix(dataset)}")
    images = np.concatenate([batch["image"] for batch in batches])[..., 0]
    return images, np.concatenate([batch["label"] for batch in batches]).astype(np.uint8)
