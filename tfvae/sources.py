"""Where images come from: MNIST-likes, any tensorflow-datasets image set, or a folder of files.

`load(config)` reads a Config's data and returns the config resolved from it (`image_size`,
`channels`, `num_classes` filled in, a folder's path made absolute) with the train and test
splits. Images are uint8 [N, H, W, C] in memory, except a folder too large for memory, whose
training split is an `ImageFiles` that `data.train_batches` reads and decodes file by file.

Built on `tfvae.mnist` (IDX files), `tfvae.catalog` (tensorflow-datasets) and `tfvae.images`
(decoding, conversion); `tfvae.data` turns what `load` returns into tf.data pipelines.
"""

import collections
import dataclasses
import hashlib
import os

import numpy as np
import tensorflow as tf

from tfvae import catalog, images, mnist
from tfvae.config import MNIST_LIKE, MNIST_SHAPE, check_image_pixels, names_folder
from tfvae.errors import DataError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")  # what tf.io.decode_image reads
# A folder whose decoded training images (uint8) exceed this is streamed from its files.
MAX_IN_MEMORY_BYTES = 1 << 30
# Salts the hash that puts a folder's files in the test split: the same for every run, so test
# numbers compare across seeds.
SPLIT_SALT = "tfvae-test-split"

Split = collections.namedtuple("Split", "images labels")  # uint8 [N, H, W, C] or ImageFiles


@dataclasses.dataclass(frozen=True)
class ImageFiles:
    """A split of a folder read on demand: `paths[i]` decoded to `shape` (H, W, C) uint8."""

    paths: tuple
    shape: tuple

    def __len__(self):
        return len(self.paths)

    def batches(self, index_batches):
        """Maps a dataset of index vectors [B] to uint8 image batches [B, H, W, C], in order."""
        paths = tf.constant(self.paths)
        height, width, channels = self.shape
        batch_size = index_batches.element_spec.shape[0]
        return (index_batches.unbatch()
                .map(lambda i: images.decode_file(paths[i], channels, (height, width)),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .batch(batch_size, drop_remainder=batch_size is not None))


def load(config, splits=("train", "test")):
    """Reads `config`'s data: (resolved config, {split: Split}) for each of `splits`.

    Train and test keep their first --train-size / --test-size images when given. Raises
    DataError (one line) for data that cannot be read, and for --conditional on unlabelled data.
    """
    config = config.resolved()  # 'auto' binarization and likelihood decided before reading
    if config.dataset in MNIST_LIKE:
        resolved, loaded = _load_mnist_like(config, splits)
    elif names_folder(config.dataset):
        resolved, loaded = _load_folder(config, splits)
    else:
        resolved, loaded = _load_tfds(config, splits)
    check_labelled(resolved)
    return resolved, loaded


def check_labelled(config):
    """Refuses --conditional on unlabelled data (num_classes 0)."""
    if config.conditional and config.num_classes == 0:
        raise DataError(f"--conditional needs labels, and {config.dataset} has none (a flat "
                        "folder is unlabelled): drop --conditional, or put the images in one "
                        "subfolder per class")


def resolve(config, shape, num_classes):
    """`config` with the data's shape (H, W, C) and number of classes filled in, and with them
    whether the conv decoder has its colour path (`decoder_film`)."""
    check_image_pixels(*shape[:2], source=config.dataset)
    config = dataclasses.replace(config, image_size=tuple(shape[:2]), channels=shape[2],
                                 num_classes=num_classes)
    return dataclasses.replace(config, decoder_film=config.film)


def _limit(split, size):
    return Split(split.images[:size], split.labels[:size]) if size else split


def _sizes(config):
    return {"train": config.train_size, "test": config.test_size}


# MNIST and Fashion-MNIST: the IDX reader, then tensorflow-datasets, as always.

def _load_mnist_like(config, splits):
    shape = config.image_shape
    loaded = {}
    for split in splits:
        digits, labels = mnist.load(config.dataset, split, config.data_dir)
        digits, labels = _limit(Split(digits[..., None], labels), _sizes(config)[split])  # C=1
        if shape != MNIST_SHAPE:
            _check_resized_fit(config, split, len(digits), shape)
            digits = images.convert_in_batches(tf.data.Dataset.from_tensor_slices(digits), shape)
        loaded[split] = Split(digits, labels.astype(np.int32))
    return resolve(config, shape, config.label_classes), loaded


def _check_resized_fit(config, split, count, shape):
    """Refuses to resize more digits than memory holds: as uint8, and a test set also as the
    float32 it is scored in (10000 test digits at 1000x1000 are 50 GB)."""
    needed = count * int(np.prod(shape)) * (5 if split == "test" else 1)
    if needed > catalog.usable_memory():
        fewer = "--train-size N" if split == "train" else "--test-size N (evaluate: --subset N)"
        raise DataError(f"the {count} {split} images of {config.dataset} at {shape[0]}x"
                        f"{shape[1]} take {needed / 2**30:.1f} GiB in memory, more than half "
                        f"this machine's: pass {fewer} or a smaller --image-size H W")


# Any tensorflow-datasets image set, by name.

def _load_tfds(config, splits):
    name = config.dataset
    info = catalog.info(name)
    image_key, label_key = catalog.image_and_label_features(name, info.features,
                                                            info.supervised_keys)
    stored = tuple(info.features[image_key].shape)
    shape = _target_shape(config, stored, name)
    num_classes = info.features[label_key].num_classes if label_key else 0
    check_labelled(dataclasses.replace(config, num_classes=num_classes))  # before downloading
    names = catalog.split_names(name, config.test_fraction)
    loaded = {}
    for split in splits:
        dataset, split_info = catalog.load(name, names[split])
        catalog.check_fits_memory(name, split, split_info, _sizes(config)[split], shape)
        pairs = dataset.map(
            lambda ex: (images.convert(ex[image_key], shape[2], shape[:2]),
                        ex[label_key] if label_key else tf.constant(0, tf.int64)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if _sizes(config)[split]:
            pairs = pairs.take(_sizes(config)[split])
        batches = list(pairs.batch(images.DECODE_BATCH).as_numpy_iterator())
        if not batches:
            raise DataError(f"tensorflow-datasets gave no {split} images of {name}")
        loaded[split] = Split(np.concatenate([b[0] for b in batches]),
                              np.concatenate([b[1] for b in batches]).astype(np.int32))
    return resolve(config, shape, num_classes), loaded


# A folder: one subfolder per class, or flat and unlabelled.

def class_folders(folder):
    """A folder's classes: its subfolders, hidden ones aside, sorted by name.

    A link back to the folder or above it (`ln -s . self`), or a second link to a class
    already listed, is no class: its images are there already.
    """
    real_folder, seen, classes = os.path.realpath(folder), set(), []
    for name in sorted(e.name for e in os.scandir(folder)
                       if e.is_dir() and not e.name.startswith(".")):
        real = os.path.realpath(os.path.join(folder, name))
        if real in seen or real_folder == real or real_folder.startswith(real + os.sep):
            continue
        seen.add(real)
        classes.append(name)
    return classes


def class_names(dataset):
    """The class names the data gives: a folder's subfolders, or a tensorflow-datasets label
    feature's names; () when it gives none (MNIST-likes, unlabelled or moved data)."""
    if dataset in MNIST_LIKE:
        return ()
    if names_folder(dataset):
        return tuple(class_folders(dataset)) if os.path.isdir(dataset) else ()
    return catalog.label_names(dataset)


def scan_folder(folder):
    """(relative paths, labels, class names) of a folder's images, sorted.

    Subfolders are the classes, sorted by name, each read recursively; files directly in the
    folder are then ignored, as `keras.utils.image_dataset_from_directory` does. A folder without
    subfolders is unlabelled (no class names, labels all 0).
    """
    if not os.path.isdir(folder):
        raise DataError(f"folder {folder} does not exist: pass an existing folder of images, "
                        "or a dataset name")
    classes = class_folders(folder)
    paths, labels, seen = [], [], set()
    for label, root in enumerate(classes or [""]):
        found = sorted(_image_files(folder, root, recursive=bool(classes), seen=seen))
        paths += found
        labels += [label] * len(found)
    if not paths:
        loose = sum(1 for _ in _image_files(folder, "", recursive=False, seen=set()))
        if classes and loose:  # e.g. a flat folder where one file became a directory
            raise DataError(f"folder {folder} holds {loose} images directly and subfolders "
                            f"({_examples_of(classes)}) without any; subfolders are read as "
                            "the classes: move the images into them, or remove the subfolders")
        raise DataError(f"folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)}): "
                        "put images in it, or in one subfolder per class")
    return paths, np.array(labels, np.int32), classes


def _image_files(folder, root, recursive, seen):
    """Relative paths of the regular image files under folder/root; `seen` holds the real
    paths already listed, so a file reached twice through links is listed once (and cannot
    be in both the training and the test split)."""
    for directory, subdirs, files in os.walk(os.path.join(folder, root)):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".")) if recursive else []
        for name in files:
            path = os.path.join(directory, name)
            if not name.lower().endswith(IMAGE_EXTENSIONS) or name.startswith("."):
                continue
            # A FIFO would block the scan's read forever; a dangling link has nothing to read.
            real = os.path.realpath(path)
            if real in seen or not os.path.isfile(real):
                continue
            seen.add(real)
            yield os.path.relpath(path, folder)


def _examples_of(names):
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


def path_hash(relative_path):
    """A file's place in [0, 1), from a salted hash of its path: the same on every machine."""
    digest = hashlib.sha256(f"{SPLIT_SALT}:{relative_path}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _load_folder(config, splits):
    folder = os.path.abspath(os.path.expanduser(config.dataset))
    paths, labels, classes = scan_folder(folder)
    check_labelled(dataclasses.replace(config, num_classes=len(classes)))
    # Files below --test-fraction are the test split, so adding files moves no other file.
    # Each split is in hash order, so that its first --train-size images mix the classes.
    places = np.array([path_hash(p) for p in paths])
    order = np.argsort(places, kind="stable")
    test = places[order] < config.test_fraction
    chosen = {"train": order[~test], "test": order[test]}
    files = {}
    for split in splits:
        if not len(chosen[split]):
            raise DataError(f"folder {folder} has no {split} images with --test-fraction "
                            f"{config.test_fraction}: add images or change --test-fraction")
        full = [os.path.join(folder, paths[i]) for i in chosen[split]]
        files[split] = _limit(Split(full, labels[chosen[split]]), _sizes(config)[split])
    shape = config.image_shape if config.image_size and config.channels else None
    if shape is None or _streams(files, shape):
        # Decoding every file once finds the shape, and any unreadable file before training
        # starts rather than in the middle of an epoch.
        shape = _folder_shape(config, [p for split in files.values() for p in split.images],
                              folder)
    check_image_pixels(*shape[:2], source=f"the folder {folder}")  # before decoding them all
    loaded = {}
    for split, (split_paths, split_labels) in files.items():
        if split == "train" and _streams(files, shape):
            split_images = ImageFiles(tuple(split_paths), shape)
        else:
            split_images = images.decode_files(split_paths, shape)
        loaded[split] = Split(split_images, split_labels)
    resolved = resolve(dataclasses.replace(config, dataset=folder), shape, len(classes))
    return resolved, loaded


def _streams(files, shape):
    """Whether the training split is too large for memory, and is read from its files."""
    return "train" in files and len(files["train"].images) * np.prod(shape) > MAX_IN_MEMORY_BYTES


def _folder_shape(config, paths, folder):
    """The (H, W, C) the images of a folder become: each file is decoded once to see its own."""
    shapes = images.stored_shapes(paths)
    sizes = {tuple(s[:2]) for s in shapes}
    stored = {images.STORED_CHANNELS.get(int(s[2]), 3) for s in shapes}
    if config.image_size is None and len(sizes) > 1:
        raise DataError(f"the images in {folder} have different sizes ({_examples(sizes)}): "
                        "pass --image-size H W to resize them all")
    if config.channels is None and len(stored) > 1:
        raise DataError(f"the images in {folder} mix grey and colour: pass --channels 1 or "
                        "--channels 3 to convert them all")
    height, width = config.image_size or sizes.pop()
    return (int(height), int(width), config.channels or stored.pop())


def _examples(sizes):
    return ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:3]) + (", ..." if len(sizes) > 3
                                                                  else "")


def _target_shape(config, stored, name):
    height, width, channels = stored
    if config.image_size is None and (height is None or width is None):
        raise DataError(f"the images of {name} have different sizes: pass --image-size H W to "
                        "resize them all")
    height, width = config.image_size or (height, width)
    return (height, width, config.channels or images.STORED_CHANNELS.get(channels, 3))
