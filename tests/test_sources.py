"""tfvae.sources: folders made from the real MNIST files, tensorflow-datasets, streaming."""

import dataclasses
import json
import os
import shutil
import types

import numpy as np
import pytest
import tensorflow as tf
from helpers import cli_error, resize, run_program, tint, tiny_config

from tfvae import catalog, checkpoints, data, rundir, sources, train
from tfvae.config import Config
from tfvae.errors import DataError

COUNT = 60  # images per test folder: 6 of each digit, on average


@pytest.fixture(scope="module")
def digits(mnist_dir):
    return data.load_subset("mnist", "train", mnist_dir, COUNT)


def write(path, image, encode=tf.io.encode_png):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tf.io.write_file(str(path), encode(image))


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory, digits):
    """MNIST digits as grey PNGs in one subfolder per digit, named by their index."""
    folder = tmp_path_factory.mktemp("classes")
    for index, (image, label) in enumerate(zip(*digits)):
        write(folder / str(label) / f"{index:03d}.png", image[..., None])
    return str(folder)


@pytest.fixture(scope="module")
def tinted_folder(tmp_path_factory, mnist_dir):
    """The `digits` as 32x32 PNGs, each in its class's hue, written by the benchmarks' tool."""
    folder = str(tmp_path_factory.mktemp("tinted"))
    run_program(["-m", "benchmarks.image_folders", "--tinted", folder, "--count", str(COUNT),
                 "--data-dir", mnist_dir, "--seed", "0"])
    return folder


def flat_folder(root, images, size=None, encode=tf.io.encode_png, name="flat"):
    folder = os.path.join(root, name)
    for index, image in enumerate(images):
        image = image[..., None] if image.ndim == 2 else image
        if size:
            image = resize(image[None], size)[0]
        write(os.path.join(folder, f"{index:03d}.png" if encode is tf.io.encode_png
                           else f"{index:03d}.jpg"), image, encode)
    return folder


def index_of(path):
    return int(os.path.splitext(os.path.basename(path))[0])


def test_class_subfolders_give_the_digits_and_labels_unchanged(class_folder, digits):
    config, loaded = sources.load(Config(dataset=class_folder))
    assert (config.image_size, config.channels, config.num_classes) == ((28, 28), 1, 10)
    paths, _, classes = sources.scan_folder(class_folder)
    assert classes == [str(d) for d in range(10)]
    held_out = [p for p in paths if sources.path_hash(p) < 0.1]
    assert len(loaded["test"].labels) == len(held_out) and 0 < len(held_out) < COUNT / 2
    assert len(loaded["train"].labels) + len(held_out) == COUNT
    # PNG is lossless: each image is its digit, under its digit's label.
    order = sorted(paths, key=sources.path_hash)
    train_paths = [p for p in order if sources.path_hash(p) >= 0.1]
    for path, image, label in zip(train_paths, *loaded["train"]):
        np.testing.assert_array_equal(image[..., 0], digits[0][index_of(path)])
        assert label == digits[1][index_of(path)] == int(os.path.dirname(path))


def test_the_split_is_stable_when_files_are_added(class_folder, tmp_path):
    folder = str(tmp_path / "grown")
    shutil.copytree(class_folder, folder)
    _, before = sources.load(Config(dataset=folder), splits=("test",))
    write(os.path.join(folder, "3", "999.png"), tf.zeros([28, 28, 1], tf.uint8))
    _, after = sources.load(Config(dataset=folder), splits=("test",))
    kept = [i for i, image in enumerate(after["test"].images) if image.any()]
    np.testing.assert_array_equal(after["test"].images[kept], before["test"].images)


def test_a_flat_folder_of_fashion_mnist_is_unlabelled(tmp_path):
    images, _ = data.load_subset("fashion_mnist", "test",
                                 os.path.join(os.environ["TFVAE_DATA_DIR"], "fashion_mnist")
                                 if os.environ.get("TFVAE_DATA_DIR") else None, 40)
    folder = flat_folder(str(tmp_path), images)
    config, loaded = sources.load(Config(dataset=folder, test_fraction=0.25, train_size=20))
    assert config.num_classes == 0 and config.label_classes == 0
    assert loaded["train"].images.shape == (20, 28, 28, 1)
    assert not loaded["train"].labels.any() and not loaded["test"].labels.any()
    assert 0 < len(loaded["test"].labels) < 20


def test_tinted_digits_are_colour_and_convert_to_grey(tinted_folder):
    config, loaded = sources.load(Config(dataset=tinted_folder))
    assert (config.image_size, config.channels, config.num_classes) == ((32, 32), 3, 10)
    colour = loaded["train"].images
    assert colour.shape[1:] == (32, 32, 3) and colour.dtype == np.uint8
    assert np.abs(colour[..., 0].astype(int) - colour[..., 1]).mean() > 10  # not grey
    grey_config, grey = sources.load(Config(dataset=tinted_folder, channels=1,
                                            image_size=(30, 30)))
    assert grey_config.image_shape == (30, 30, 1)
    assert grey["train"].images.shape == (len(colour), 30, 30, 1)
    expected = tf.image.resize(tf.image.rgb_to_grayscale(colour), (30, 30), antialias=True)
    np.testing.assert_allclose(grey["train"].images, expected, atol=1)


def test_odd_sizes_keep_their_shape_or_resize(tmp_path, digits):
    wide = flat_folder(str(tmp_path), digits[0][:20], size=(64, 48), name="wide")
    config, loaded = sources.load(Config(dataset=wide, test_fraction=0.2))
    assert config.image_shape == (64, 48, 1) and loaded["test"].images.shape[1:] == (64, 48, 1)
    flat_folder(str(tmp_path), digits[0][:20], size=(64, 48), name="mixed/wide")
    flat_folder(str(tmp_path), digits[0][20:40], size=(30, 30), name="mixed/small")
    config, loaded = sources.load(Config(dataset=str(tmp_path / "mixed"), image_size=(30, 30),
                                         test_fraction=0.2))
    assert config.image_shape == (30, 30, 1) and config.num_classes == 2
    images = np.concatenate([loaded["train"].images, loaded["test"].images])
    labels = np.concatenate([loaded["train"].labels, loaded["test"].labels])
    assert images.shape == (40, 30, 30, 1)
    # Classes sort as small (0), wide (1). The 30x30 images are kept exactly as written.
    written = resize(digits[0][20:40, ..., None], (30, 30))
    small = images[labels == 0]
    assert len(small) == 20
    assert all(any(np.array_equal(image, w) for w in written) for image in small)


def test_jpeg_files_decode_to_nearly_the_digits(tmp_path, digits):
    folder = flat_folder(str(tmp_path), digits[0][:20],
                         encode=lambda image: tf.io.encode_jpeg(image, quality=95))
    _, loaded = sources.load(Config(dataset=folder, test_fraction=0.2))
    paths = sorted(sources.scan_folder(folder)[0], key=sources.path_hash)
    test_paths = [p for p in paths if sources.path_hash(p) < 0.2]
    originals = digits[0][[index_of(p) for p in test_paths]].astype(float)
    assert np.abs(loaded["test"].images[..., 0] - originals).mean() < 4


def test_a_relative_folder_is_stored_absolute(class_folder, monkeypatch):
    monkeypatch.chdir(os.path.dirname(class_folder))
    config, _ = sources.load(Config(dataset=f"./{os.path.basename(class_folder)}"),
                             splits=("test",))
    assert config.dataset == class_folder


def test_streamed_and_in_memory_batches_are_identical(class_folder, monkeypatch):
    kwargs = dict(batch_size=8, seed=3, binarization="dynamic", noise_shape=(1, 2))
    _, in_memory = sources.load(Config(dataset=class_folder), splits=("train",))
    monkeypatch.setattr(sources, "MAX_IN_MEMORY_BYTES", 1000)
    _, streamed = sources.load(Config(dataset=class_folder), splits=("train",))
    assert isinstance(streamed["train"].images, sources.ImageFiles)
    assert isinstance(in_memory["train"].images, np.ndarray)
    for start_step in (0, 9):  # 6 steps per epoch: resuming in the second epoch
        a = list(data.train_batches(*in_memory["train"], start_step=start_step, **kwargs).take(4))
        b = list(data.train_batches(*streamed["train"], start_step=start_step, **kwargs).take(4))
        for u, v in zip(a, b):
            for tensor_a, tensor_b in zip(u, v):
                np.testing.assert_array_equal(tensor_a, tensor_b)
    assert a[0][0].shape == (8, 28, 28, 1)


def test_mnist_resolves_to_its_own_shape(mnist_dir):
    config, loaded = sources.load(Config(data_dir=mnist_dir, train_size=10, test_size=5))
    assert (config.image_size, config.channels, config.num_classes) == ((28, 28), 1, 10)
    images, labels = data.load_subset("mnist", "test", mnist_dir, 5)
    np.testing.assert_array_equal(loaded["test"].images[..., 0], images)
    np.testing.assert_array_equal(loaded["test"].labels, labels)


def test_an_old_mnist_config_is_the_same_run_as_a_resolved_one():
    old = Config()  # tfvae 0.1.0 saved null image_size, channels, num_classes
    resolved = dataclasses.replace(old, image_size=(28, 28), channels=1, num_classes=10)
    rundir.check_same_run("run", old, resolved)
    with pytest.raises(Exception, match="image_size"):
        rundir.check_same_run("run", old, dataclasses.replace(resolved, image_size=(32, 32)))


def test_tensorflow_datasets_image_sets_with_and_without_labels(monkeypatch):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        config, loaded = sources.load(Config(dataset="cifar10", test_size=5))
        assert (config.image_size, config.channels, config.num_classes) == ((32, 32), 3, 10)
        assert loaded["train"].images.shape == (12, 32, 32, 3)
        assert loaded["test"].images.shape == (5, 32, 32, 3)
        assert loaded["train"].labels.max() < 10
        config, loaded = sources.load(Config(dataset="binarized_mnist", channels=3))
        assert config.image_shape == (28, 28, 3) and config.num_classes == 0
        assert loaded["test"].images.shape == (12, 28, 28, 3)
        assert not loaded["test"].labels.any()


def test_a_tensorflow_datasets_set_without_test_split_holds_out_the_end_of_train(monkeypatch):
    import tensorflow_datasets as tfds

    def load(name, split, with_info):  # what tfds.load says of a dataset with only "train"
        raise ValueError(f'Unknown split "{split}". Should be one of [\'train\'].')

    monkeypatch.setattr(tfds, "load", load)
    names = catalog.split_names("some_set", 0.1)
    assert names == {"train": "train[:90%]", "test": "train[90%:]"}


def test_other_tensorflow_datasets_failures_are_one_line_data_errors(monkeypatch):
    import tensorflow_datasets as tfds

    def load(name, split, with_info):
        raise ValueError("Failed to read shard 3\nmore detail")

    monkeypatch.setattr(tfds, "load", load)
    with pytest.raises(DataError) as error:
        catalog.load("some_set", "train")
    assert not isinstance(error.value, catalog.MissingSplit)
    assert str(error.value) == ("could not load some_set through tensorflow-datasets (Failed to "
                                "read shard 3); check the connection or the name")


def test_a_tensorflow_datasets_split_too_large_for_memory_is_refused():
    huge = types.SimpleNamespace(num_examples=10**12)
    with pytest.raises(DataError, match="pass --train-size N or a smaller --image-size"):
        catalog.check_fits_memory("celeb_a", "train", huge, None, (218, 178, 3))
    catalog.check_fits_memory("celeb_a", "train", huge, 1000, (218, 178, 3))  # 116 MB: fits


def test_feature_choice_of_a_tensorflow_datasets_set():
    import tensorflow_datasets as tfds

    info = tfds.builder("celeb_a").info  # an image, attributes, landmarks: no class label
    assert catalog.image_and_label_features("celeb_a", info.features) == ("image", None)
    info = tfds.builder("emnist/letters").info
    assert catalog.image_and_label_features("emnist/letters", info.features,
                                            info.supervised_keys) == ("image", "label")


def train_error(argv, capsys):
    return cli_error(train.main, [*argv, "--model", "mlp", "--epochs", "1"], capsys)


def test_bad_folders_end_with_one_line(tmp_path, digits, class_folder, capsys, monkeypatch):
    err = train_error(["--dataset", str(tmp_path / "nowhere")], capsys)
    assert f"folder {tmp_path / 'nowhere'} does not exist" in err
    os.makedirs(tmp_path / "empty" / "cats")
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    assert "holds no images" in train_error(["--dataset", str(tmp_path / "empty")], capsys)
    broken = str(tmp_path / "broken")
    shutil.copytree(class_folder, broken)
    bad = os.path.join(broken, "7", "000.png")
    with open(bad, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not really")
    err = train_error(["--dataset", broken], capsys)
    assert f"cannot read image {bad}" in err
    monkeypatch.setattr(sources, "MAX_IN_MEMORY_BYTES", 1000)  # streamed: found before training
    err = train_error(["--dataset", broken, "--image-size", "28", "28", "--channels", "1"],
                      capsys)
    assert f"cannot read image {bad}" in err
    flat_folder(str(tmp_path), digits[0][:10], name="sizes/a")
    flat_folder(str(tmp_path), digits[0][10:20], size=(30, 30), name="sizes/b")
    err = train_error(["--dataset", str(tmp_path / "sizes")], capsys)
    assert "have different sizes (28x28, 30x30)" in err and "--image-size H W" in err


def test_mixed_channels_and_unlabelled_conditional_end_with_one_line(tmp_path, digits, capsys):
    flat_folder(str(tmp_path), digits[0][:10], name="mixed/grey")
    flat_folder(str(tmp_path), tint(digits[0][10:20], np.random.default_rng(0)),
                name="mixed/colour")
    folder = str(tmp_path / "mixed")
    err = train_error(["--dataset", folder, "--image-size", "28", "28"], capsys)
    assert "mix grey and colour" in err and "--channels" in err
    grey = flat_folder(str(tmp_path), digits[0][:20], name="grey")
    err = train_error(["--dataset", grey, "--conditional"], capsys)
    assert "--conditional needs labels" in err


def test_names_that_are_not_image_datasets_end_with_one_line(capsys):
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        err = train_error(["--dataset", "imdb_reviews"], capsys)
        assert "imdb_reviews is not an image dataset" in err and "text (Text)" in err
    assert "unknown dataset 'no_such_images'" in train_error(["--dataset", "no_such_images"],
                                                             capsys)


def test_training_on_a_tinted_folder_saves_the_resolved_shape(tinted_folder, tmp_path):
    config = tiny_config(dataset=tinted_folder, train_size=None, test_size=None,
                         batch_size=16, steps_per_call=2)
    record = train.train_and_evaluate(config, str(tmp_path))
    paths = sources.scan_folder(tinted_folder)[0]
    assert record["step"] == sum(sources.path_hash(p) >= 0.1 for p in paths) // 16
    saved = json.load(open(tmp_path / rundir.CONFIG_FILE))
    assert (saved["image_size"], saved["channels"], saved["num_classes"]) == ([32, 32], 3, 10)
    assert saved["dataset"] == tinted_folder
    assert os.path.getsize(tmp_path / "image_at_epoch_0001.png") > 0
    x, labels = data.load_test_set(rundir.load_config(str(tmp_path)))
    assert x.shape[1:] == (32, 32, 3) and labels.max() < 10


def test_a_streamed_folder_trains_and_resumes_to_the_in_memory_weights(class_folder, tmp_path,
                                                                       monkeypatch):
    config = tiny_config(dataset=class_folder, train_size=None, test_size=None, batch_size=8,
                         steps_per_call=2, epochs=2)
    in_memory = train.train_and_evaluate(config, str(tmp_path / "memory"))
    monkeypatch.setattr(sources, "MAX_IN_MEMORY_BYTES", 1000)
    train.train_and_evaluate(dataclasses.replace(config, epochs=1), str(tmp_path / "streamed"))
    streamed = train.train_and_evaluate(config, str(tmp_path / "streamed"))  # resumes
    assert streamed["step"] == in_memory["step"] > 0
    assert streamed["test_elbo"] == in_memory["test_elbo"]
    weights = [checkpoints.load_run(str(tmp_path / name)).model.weights
               for name in ("memory", "streamed")]
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
