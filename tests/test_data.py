"""The IDX reader, MNIST through tensorflow-datasets and the binarized pipelines."""

import gzip
import hashlib
import os
import shutil

import hypothesis
import hypothesis.strategies as st
import numpy as np
import pytest
import tensorflow as tf
from helpers import write_idx

from tfvae import data, mnist, pixels
from tfvae.config import MNIST_SHAPE, Config
from tfvae.errors import DataError


def make_split(directory, n_train=40, n_test=20, seed=0):
    rng = np.random.default_rng(seed)
    for (image_file, label_file), n in zip(mnist.IDX_FILES.values(), (n_train, n_test)):
        write_idx(os.path.join(directory, image_file), rng.integers(0, 256, (n, 28, 28)))
        write_idx(os.path.join(directory, label_file), rng.integers(0, 10, (n,)))
    return directory


def test_reads_real_mnist(mnist_dir):
    images, labels = data.load("mnist", "test", mnist_dir)  # the README's Keras example's call
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (10000,) and set(np.unique(labels)) == set(range(10))
    assert abs(images.mean() - 33.8) < 1.0  # MNIST's published test-set mean intensity


def test_parent_directory_finds_the_dataset_folder(mnist_dir):
    images, _ = mnist.load("mnist", "test", os.path.dirname(mnist_dir))
    assert images.shape == (10000, 28, 28)


def test_round_trips_a_written_file(tmp_path):
    make_split(tmp_path)
    images, labels = mnist.load("mnist", "train", str(tmp_path))
    assert images.shape == (40, 28, 28) and labels.shape == (40,)


def test_rejects_truncated_file(tmp_path):
    make_split(tmp_path)
    path = tmp_path / mnist.IDX_FILES["train"][0]
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DataError, match="train-images.*bytes of data"):
        mnist.load("mnist", "train", str(tmp_path))


def test_rejects_truncated_gzip_stream(tmp_path):
    make_split(tmp_path)
    path = tmp_path / mnist.IDX_FILES["test"][0]
    path.write_bytes(path.read_bytes()[:-50])
    with pytest.raises(DataError, match="t10k-images.*gzip"):
        mnist.load("mnist", "test", str(tmp_path))


def test_rejects_bad_magic(tmp_path):
    make_split(tmp_path)
    write_idx(tmp_path / mnist.IDX_FILES["train"][1], np.zeros(40), magic_type=0x0D)
    with pytest.raises(DataError, match="train-labels.*magic"):
        mnist.load("mnist", "train", str(tmp_path))


def test_rejects_images_and_labels_of_different_lengths(tmp_path):
    make_split(tmp_path)
    write_idx(tmp_path / mnist.IDX_FILES["train"][1], np.zeros(39))
    with pytest.raises(DataError, match="40 images but .* 39 labels"):
        mnist.load("mnist", "train", str(tmp_path))


def test_missing_directory_and_missing_file_say_how_to_fix(tmp_path):
    with pytest.raises(DataError, match="does not exist.*--data-dir"):
        mnist.load("mnist", "train", str(tmp_path / "nowhere"))
    make_split(tmp_path)
    os.remove(tmp_path / mnist.IDX_FILES["test"][1])
    with pytest.raises(DataError, match="lacks t10k-labels.*TFVAE_DATA_DIR"):
        mnist.load("mnist", "test", str(tmp_path))


def test_tfds_failure_says_how_to_point_at_local_files(monkeypatch):
    import tensorflow_datasets as tfds

    def offline(*args, **kwargs):
        raise ConnectionError("no route to host\nmore detail")

    monkeypatch.delenv("TFVAE_DATA_DIR", raising=False)
    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(DataError, match="tensorflow-datasets .no route to host.*--data-dir"):
        mnist.load("fashion_mnist", "train")


@hypothesis.settings(max_examples=150, deadline=None)
@hypothesis.given(st.data())
def test_fuzzed_idx_files_raise_only_data_errors(tmp_path_factory, draw):
    directory = tmp_path_factory.mktemp("fuzz")
    make_split(directory, n_train=3, n_test=2)
    name = draw.draw(st.sampled_from(sum(mnist.IDX_FILES.values(), ())))
    path = directory / name
    raw = bytearray(gzip.decompress(path.read_bytes()))
    mutation = draw.draw(st.sampled_from(["truncate", "flip", "magic", "dims", "raw"]))
    if mutation == "truncate":
        raw = raw[: draw.draw(st.integers(0, len(raw) - 1))]
    elif mutation == "flip":
        i = draw.draw(st.integers(0, min(len(raw), 16) - 1))
        raw[i] ^= 1 << draw.draw(st.integers(0, 7))
    elif mutation == "magic":
        raw[:4] = draw.draw(st.binary(min_size=4, max_size=4).filter(lambda b: b != raw[:4]))
    elif mutation == "dims":
        raw[4:8] = draw.draw(st.integers(0, 2**32 - 1)).to_bytes(4, "big")
    payload = bytes(raw)
    if mutation == "raw":
        payload = gzip.compress(payload)[: draw.draw(st.integers(0, 30))]
    else:
        payload = gzip.compress(payload)
    hypothesis.assume(payload != path.read_bytes())
    path.write_bytes(payload)
    split = "train" if name.startswith("train") else "test"
    try:
        mnist.load("mnist", split, str(directory))
    except DataError:
        pass
    shutil.rmtree(directory)


def test_dynamic_binarization_has_the_intensities_as_means():
    intensities = tf.linspace(0.0, 1.0, 11)[None, :] * tf.ones([20_000, 1])
    first = data.binarize(intensities, "dynamic", seed=[0, 1])
    second = data.binarize(intensities, "dynamic", seed=[0, 2])
    assert set(np.unique(first)) == {0.0, 1.0}
    np.testing.assert_allclose(tf.reduce_mean(first, 0), tf.linspace(0.0, 1.0, 11), atol=0.012)
    assert not np.array_equal(first, second)


def test_static_binarization_thresholds_at_one_half():
    x = tf.constant([0.0, 0.49, 0.5, 0.51, 1.0])
    np.testing.assert_array_equal(data.binarize(x, "static"), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(data.binarize(x, "none"), x)


def test_training_batches_are_fresh_draws_of_each_image_every_epoch():
    images = np.full((4, 28, 28), 128, np.uint8)  # every pixel has probability ~0.5
    stream = data.train_batches(images, np.arange(4), batch_size=4, seed=0,
                                binarization="dynamic", noise_shape=(1, 2))
    (x1, labels1, eps1), (x2, labels2, _) = list(stream.take(2))
    assert x1.shape == (4, 28, 28, 1) and eps1.shape == (4, 1, 2)
    assert set(labels1.numpy()) == set(labels2.numpy()) == {0, 1, 2, 3}
    assert not np.array_equal(x1, x2)
    assert abs(float(tf.reduce_mean(x1)) - 128 / 255) < 0.02


def test_training_stream_resumes_exactly_at_any_step():
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (50, 28, 28), np.uint8), np.arange(50)
    kwargs = dict(batch_size=8, seed=3, binarization="dynamic", noise_shape=(1, 2))
    full = list(data.train_batches(images, labels, **kwargs).take(20))
    resumed = list(data.train_batches(images, labels, start_step=13, **kwargs).take(7))
    for a, b in zip(full[13:], resumed):
        for u, v in zip(a, b):
            np.testing.assert_array_equal(u, v)
    other_seed = next(iter(data.train_batches(images, labels, **{**kwargs, "seed": 4})))
    assert not np.array_equal(full[0][0], other_seed[0])


def test_each_epoch_visits_every_image_once_in_a_new_order():
    images = np.arange(24, dtype=np.uint8)[:, None, None] * np.ones((1, 28, 28), np.uint8)
    stream = data.train_batches(images, np.arange(24) % 10, batch_size=6, seed=0,
                                binarization="none", noise_shape=(1, 1))
    seen = [np.rint(x.numpy()[:, 0, 0, 0] * 255).astype(int) for x, _, _ in stream.take(8)]
    first, second = np.concatenate(seen[:4]), np.concatenate(seen[4:])
    assert sorted(first) == sorted(second) == list(range(24))
    assert not np.array_equal(first, second)


def test_test_set_is_identical_between_loads(mnist_dir):
    images, labels = data.load_subset("mnist", "test", mnist_dir, size=500)
    a, _ = data.test_set(images, labels, "dynamic")
    b, _ = data.test_set(*data.load_subset("mnist", "test", mnist_dir, size=500), "dynamic")
    np.testing.assert_array_equal(a, b)
    assert set(np.unique(a)) == {0.0, 1.0}


def test_tensorflow_datasets_source_gives_what_the_idx_reader_gives(monkeypatch):
    # What a fresh machine without $TFVAE_DATA_DIR runs; mock_data serves MNIST's real schema.
    import tensorflow_datasets as tfds

    monkeypatch.delenv("TFVAE_DATA_DIR", raising=False)
    with tfds.testing.mock_data(num_examples=25):
        images, labels = mnist.load("mnist", "train")
        subset = data.load_subset("mnist", "test", size=7)
    assert images.shape == (25, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (25,) and labels.dtype == np.uint8 and labels.max() < 10
    assert subset[0].shape == (7, 28, 28)
    x, test_labels = data.test_set(*subset, "dynamic")
    assert x.shape == (7, *MNIST_SHAPE) and set(np.unique(x)) <= {0.0, 1.0}


def test_another_datasets_published_files_are_recognised(tmp_path, monkeypatch):
    make_split(str(tmp_path))
    with open(tmp_path / mnist.IDX_FILES["test"][0], "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    monkeypatch.setitem(mnist.PUBLISHED_SHA256, "fashion_mnist", {digest})
    with pytest.raises(DataError, match="is fashion_mnist's t10k-images.*--dataset "
                                             "fashion_mnist"):
        mnist.load("mnist", "test", str(tmp_path))
    images, _ = mnist.load("fashion_mnist", "test", str(tmp_path))  # under its own name: read
    assert images.shape == (20, 28, 28)


def test_published_checksums_match_the_real_files(mnist_dir):
    if os.environ.get("TFVAE_DATA_DIR"):  # the original files (from tfds they are re-packed)
        for name in (*mnist.IDX_FILES["train"], *mnist.IDX_FILES["test"]):
            with open(os.path.join(mnist_dir, name), "rb") as f:
                assert hashlib.sha256(f.read()).hexdigest() in mnist.PUBLISHED_SHA256["mnist"]
    assert mnist.load("mnist", "test", mnist_dir)[0].shape == (10000, 28, 28)


def test_a_configs_test_set_is_binarized_as_auto_resolves(mnist_dir):
    """Config() leaves --binarize at 'auto', which MNIST resolves to the tutorial's binary
    pixels: the test set must come back binary, not as raw intensities."""
    x, _ = data.load_test_set(Config(test_size=50, data_dir=mnist_dir))
    assert set(np.unique(x)) == {0.0, 1.0}
    with pytest.raises(ValueError, match="not 'auto'"):
        pixels.binarize(tf.zeros([2]), "auto")
