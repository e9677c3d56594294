"""Where images come from: MNIST-likes, any tensorflow-datasets image set, or a folder of files.

`load(config)` reads a Config's data and returns the config resolved from it (`image_size`,
`channels`, `num_classes` filled in, a folder's path made absolute) with the train and test
splits. Images are uint8 [N, H, W, C] in memory, except a folder too large for memory, whose
training split is an `ImageFiles` that `data.train_batches` reads and decodes file by file.
"""

import collections
import dataclasses
import hashlib
import os
import sys

import numpy as np
import tensorflow as tf

from tfvae import data
from tfvae.config import MNIST_LIKE, MNIST_SHAPE, check_image_pixels, names_folder
from tfvae.data import DataError
from tfvae.errors import first_line

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")  # what tf.io.decode_image reads
# A folder whose decoded training images (uint8) exceed this is streamed from its files.
MAX_IN_MEMORY_BYTES = 1 << 30
# Salts the hash that puts a folder's files in the test split: the same for every run, so test
# numbers compare across seeds.
SPLIT_SALT = "tfvae-test-split"
# Channel count kept when the stored one is used: an alpha channel is dropped.
STORED_CHANNELS = {1: 1, 2: 1, 3: 3, 4: 3}
DECODE_BATCH = 256

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
                .map(lambda i: decode_file(paths[i], channels, (height, width)),
                     num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
                .batch(batch_size, drop_remainder=batch_size is not None))


def load(config, splits=("train", "test")):
    """Reads `config`'s data: (resolved config, {split: Split}) for each of `splits`.

    Train and test keep their first --train-size / --test-size images when given. Raises
    DataError (one line) for data that cannot be read, and for --conditional on unlabelled data.
    """
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


def load_test_set(config):
    """A Config's test set as training evaluates it: (x [N, H, W, C] float32, labels [N])."""
    _, loaded = load(config, splits=("test",))
    return data.test_set(*loaded["test"], config.binarize)


def resolve(config, shape, num_classes):
    """`config` with the data's shape (H, W, C) and number of classes filled in."""
    check_image_pixels(*shape[:2], source=config.dataset)
    return dataclasses.replace(config, image_size=tuple(shape[:2]), channels=shape[2],
                               num_classes=num_classes)


def _limit(split, size):
    return Split(split.images[:size], split.labels[:size]) if size else split


def _sizes(config):
    return {"train": config.train_size, "test": config.test_size}


# MNIST and Fashion-MNIST: the IDX reader, then tensorflow-datasets, as always.

def _load_mnist_like(config, splits):
    shape = config.image_shape
    loaded = {}
    for split in splits:
        images, labels = data.load_subset(config.dataset, split, config.data_dir,
                                          _sizes(config)[split])
        images = images[..., None]  # [N, 28, 28, 1]
        if shape != MNIST_SHAPE:
            images = convert_in_batches(tf.data.Dataset.from_tensor_slices(images), shape)
        loaded[split] = Split(images, labels.astype(np.int32))
    return resolve(config, shape, config.label_classes), loaded


# Any tensorflow-datasets image set, by name.

def _load_tfds(config, splits):
    import tensorflow_datasets as tfds

    name = config.dataset
    try:
        info = tfds.builder(name).info
    except Exception as error:  # DatasetNotFoundError, or a malformed name
        raise DataError(f"unknown dataset {name!r}: pass mnist, fashion_mnist, a "
                        "tensorflow-datasets image dataset (cifar10, emnist/letters, ...) or a "
                        f"folder of images ({first_line(error)[:100]})") from None
    image_key, label_key = image_and_label_features(name, info.features, info.supervised_keys)
    stored = tuple(info.features[image_key].shape)
    shape = _target_shape(config, stored, name)
    num_classes = info.features[label_key].num_classes if label_key else 0
    check_labelled(dataclasses.replace(config, num_classes=num_classes))  # before downloading
    names = _tfds_split_names(tfds, name, config.test_fraction)
    loaded = {}
    for split in splits:
        dataset, split_info = _tfds_load(tfds, name, names[split])
        _check_fits_memory(name, split, split_info, _sizes(config)[split], shape)
        pairs = dataset.map(
            lambda ex: (convert(ex[image_key], shape[2], shape[:2]),
                        ex[label_key] if label_key else tf.constant(0, tf.int64)),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        if _sizes(config)[split]:
            pairs = pairs.take(_sizes(config)[split])
        batches = list(pairs.batch(DECODE_BATCH).as_numpy_iterator())
        if not batches:
            raise DataError(f"tensorflow-datasets gave no {split} images of {name}")
        loaded[split] = Split(np.concatenate([b[0] for b in batches]),
                              np.concatenate([b[1] for b in batches]).astype(np.int32))
    return resolve(config, shape, num_classes), loaded


def image_and_label_features(name, features, supervised_keys=None):
    """The keys of a tfds dataset's image feature and its ClassLabel feature (None if none)."""
    import tensorflow_datasets as tfds

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


def _tfds_split_names(tfds, name, test_fraction):
    """The tfds splits read as train and test: without a test split, the last --test-fraction
    of train is held out."""
    try:
        _tfds_load(tfds, name, "test")
        return {"train": "train", "test": "test"}
    except ValueError as error:  # tfds: Unknown split "test". Should be one of [...]
        if "split" not in str(error).lower():
            raise DataError(f"could not load {name} through tensorflow-datasets "
                            f"({first_line(error)[:200]})") from None
    kept = 100 - round(100 * test_fraction)
    return {"train": f"train[:{kept}%]", "test": f"train[{kept}%:]"}


def _tfds_load(tfds, name, split):
    print(f"loading {name} {split} through tensorflow-datasets (downloaded once, then cached; "
          "offline, it retries for a few minutes before giving up)",
          file=sys.stderr, flush=True)
    try:
        dataset, info = tfds.load(name, split=split, with_info=True)
    except ValueError:
        raise
    except Exception as error:  # offline, disk full...: all mean the same to a user
        raise DataError(f"could not load {name} through tensorflow-datasets "
                        f"({first_line(error)[:200]}); check the connection or the name"
                        ) from None
    try:
        return dataset, info.splits[split]  # its size, once tfds has prepared the data
    except (KeyError, ValueError):
        return dataset, None


def _check_fits_memory(name, split, split_info, size, shape):
    """Refuses a tensorflow-datasets split whose decoded images would not fit in memory."""
    count = min(split_info.num_examples, size or split_info.num_examples) if split_info else 0
    needed = count * int(np.prod(shape))
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    if needed > available:
        raise DataError(f"the {count} {split} images of {name} take {needed / 2**30:.1f} GiB "
                        f"decoded, more than half this machine's memory: pass --train-size N "
                        "or a smaller --image-size H W")


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
    try:
        import tensorflow_datasets as tfds

        info = tfds.builder(dataset).info
        _, label_key = image_and_label_features(dataset, info.features, info.supervised_keys)
    except Exception:  # pictures then number the classes; nothing else depends on the names
        return ()
    return tuple(info.features[label_key].names) if label_key else ()


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
            images = ImageFiles(tuple(split_paths), shape)
        else:
            images = decode_files(split_paths, shape)
        loaded[split] = Split(images, split_labels)
    resolved = resolve(dataclasses.replace(config, dataset=folder), shape, len(classes))
    return resolved, loaded


def _streams(files, shape):
    """Whether the training split is too large for memory, and is read from its files."""
    return "train" in files and len(files["train"].images) * np.prod(shape) > MAX_IN_MEMORY_BYTES


def _folder_shape(config, paths, folder):
    """The (H, W, C) the images of a folder become: each file is decoded once to see its own."""
    shapes = list(_decoded(paths, lambda path: tf.shape(_decode_raw(path))))
    sizes = {tuple(s[:2]) for s in shapes}
    stored = {STORED_CHANNELS.get(int(s[2]), 3) for s in shapes}
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
    return (height, width, config.channels or STORED_CHANNELS.get(channels, 3))


# Decoding and conversion, with tf.io and tf.image.

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
