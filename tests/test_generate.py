"""tfvae.generate: the command line and the model-using functions, on tiny untrained runs."""

import gzip
import os

import imageio.v2 as imageio
import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfvae import data, generate, rundir, train, viz
from tfvae.config import Config
from tfvae.models import build_model

TEST_IMAGES = 30  # three of each class


def write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fake_test_split(directory):
    """A small IDX test split: random strokes, labels 0-9 repeating."""
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(0)
    images = (rng.random([TEST_IMAGES, 28, 28]) < 0.2) * 255
    write_idx(os.path.join(directory, "t10k-images-idx3-ubyte.gz"), images)
    write_idx(os.path.join(directory, "t10k-labels-idx1-ubyte.gz"),
              np.arange(TEST_IMAGES) % 10)
    return directory


def make_run(root, latent_dim=2, conditional=False, seed=0):
    """A run directory as training leaves it: config.json and a checkpoint of an untrained model."""
    data_dir = fake_test_split(os.path.join(root, "data"))
    config = Config(latent_dim=latent_dim, conditional=conditional, seed=seed, data_dir=data_dir)
    run_dir = os.path.join(root, "run")
    rundir.prepare(run_dir, config)
    keras.utils.set_random_seed(seed)
    model = build_model(config)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=train.make_optimizer(config, model),
                                     step=tf.Variable(0, dtype=tf.int64))
    rundir.checkpoint_manager(run_dir, checkpoint).save(checkpoint_number=1)
    return run_dir, model


@pytest.fixture
def run(tmp_path):
    return make_run(str(tmp_path))


@pytest.fixture
def conditional_run(tmp_path):
    return make_run(str(tmp_path), conditional=True)


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def test_load_run_restores_the_saved_weights(run):
    run_dir, saved = run
    keras.utils.set_random_seed(123)  # a fresh model would start from other weights
    loaded = rundir.load_run(run_dir).model
    z = tf.random.stateless_normal([4, 2], seed=[1, 2])
    np.testing.assert_allclose(loaded.decode(z), saved.decode(z), atol=1e-6)


def test_load_run_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    rundir.prepare(str(tmp_path), Config(latent_dim=2))
    with pytest.raises(SystemExit) as exit_info:
        generate.main([str(tmp_path), "--samples", "4"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path} has no checkpoint yet")


def test_every_flag_writes_its_file_and_the_same_seed_gives_the_same_files(run, tmp_path):
    run_dir, _ = run
    flags = [run_dir, "--samples", "9", "--reconstruct", "--manifold", "--grid", "5",
             "--transition", "--steps", "12", "--scatter"]
    first = generate.main([*flags, "--seed", "3", "--out", str(tmp_path / "a")])
    names = sorted(os.path.basename(p) for p in first)
    assert names == ["manifold.png", "reconstructions.png", "samples.png", "scatter.png",
                     "transition.gif"]
    again = generate.main([*flags, "--seed", "3", "--out", str(tmp_path / "b")])
    other = generate.main([*flags, "--seed", "4", "--out", str(tmp_path / "c")])
    for a, b, c in zip(first, again, other):
        assert read_bytes(a) == read_bytes(b), a
        if a.endswith("samples.png"):
            assert read_bytes(a) != read_bytes(c)
    manifold = imageio.imread(os.path.join(tmp_path, "a", "manifold.png"))
    assert manifold.shape[0] > 5 * 28 and manifold.shape[1] > 5 * 28  # tiles plus z axes
    gif = os.path.join(tmp_path, "a", "transition.gif")
    frames = np.stack(imageio.mimread(gif))
    assert frames.shape[2] == 112 and frames.shape[1] > 112  # 4x digits, a caption below
    # 10 digits, 12 frames each, the first of each held. Pillow may merge frames that an
    # untrained decoder leaves identical, but the playing time stays the same.
    with Image.open(gif) as opened:
        durations = []
        for i in range(opened.n_frames):
            opened.seek(i)
            durations.append(opened.info["duration"])
    assert sum(durations) == 10 * 500 + 10 * 11 * 1000 // generate.FPS
    assert 0 <= frames.min() and frames.max() <= 255
    assert os.path.getsize(gif) < 2 * 2**20
    assert not [n for n in os.listdir(tmp_path / "a") if n.startswith(".")]


def test_default_out_is_the_run_directory(run):
    run_dir, _ = run
    (path,) = generate.main([run_dir, "--samples", "4"])
    assert path == os.path.join(run_dir, "samples.png")


def test_transition_starts_at_the_decoded_endpoint_and_steps_through_each_image(run):
    run_dir, model = run
    config = rundir.load_config(run_dir)
    x, labels = data.load_test_set(config)
    index = generate.class_exemplars(labels)
    np.testing.assert_array_equal(labels[index], np.arange(10))
    images = generate.transition_images(model, x[index], labels[index], steps=12)
    assert images.shape == (120, 28, 28, 1)
    assert images.min() >= 0.0 and images.max() <= 1.0
    means, _ = model.encode(x[index])
    endpoints = model.decode(means, apply_sigmoid=True).numpy()
    np.testing.assert_allclose(images[::12], endpoints, atol=1e-5)
    # The GIF's first frame is that decoded endpoint, upscaled.
    generate.write_transitions(model, run_dir, x[index], labels[index], seed=0, steps=12)
    first = imageio.mimread(os.path.join(run_dir, "transition.gif"))[0][..., 0]
    np.testing.assert_array_equal(first[:112], viz.animation_frames(endpoints[:1])[0])


def test_transition_captions_name_the_classes_and_the_region_passed_through(run):
    run_dir, model = run
    x, labels = data.load_test_set(rundir.load_config(run_dir))
    index = generate.class_exemplars(labels)[:3]
    reference = (generate.encode_means(model, x, labels), labels)
    captions = generate.transition_captions(model, x[index], labels[index],
                                            generate.CLASS_NAMES["mnist"], steps=4,
                                            reference=reference)
    assert len(captions) == 12
    assert captions[0].startswith("0 to 1\nnow in: ") and captions[4].startswith("1 to 2")
    assert captions[-1].startswith("2 to 0")


def test_transition_indices_and_slerp(run, tmp_path):
    run_dir, _ = run
    generate.main([run_dir, "--transition", "--indices", "3", "2", "1", "18",
                   "--interpolation", "slerp", "--out", str(tmp_path)])
    assert os.path.exists(tmp_path / "transition.gif")


def test_conditional_run_writes_digit_samples_and_a_class_morph(conditional_run, tmp_path):
    run_dir, model = conditional_run
    paths = generate.main([run_dir, "--digit", "7", "--samples", "16", "--transition",
                           "--steps", "12", "--manifold", "--grid", "4", "--out", str(tmp_path)])
    assert sorted(os.path.basename(p) for p in paths) == [
        "digit_7.png", "manifold.png", "samples.png", "transition.gif", "transition_class.gif"]
    morph = np.stack(imageio.mimread(str(tmp_path / "transition_class.gif")))
    # four styles side by side at 4x, a caption strip below
    assert morph.shape[2] == 4 * (2 + generate.MORPH_STYLES * 30) and morph.shape[1] > 4 * 32
    assert os.path.getsize(tmp_path / "transition_class.gif") < 2 * 2**20


def test_a_one_hot_float_label_vector_decodes_like_the_integer_label(conditional_run):
    _, model = conditional_run
    z = tf.random.stateless_normal([3, 2], seed=[0, 1])
    soft = np.eye(10, dtype=np.float32)[[7, 0, 3]]
    np.testing.assert_allclose(model.decode(z, soft), model.decode(z, [7, 0, 3]), atol=1e-6)
    images = generate.class_morph_images(model, [7, 0, 3], seed=0, steps=12, styles=2)
    assert images.shape == (36, 2, 28, 28, 1)
    # Frame 12 is exactly class 0, drawn in the two fixed styles.
    styles = tf.random.stateless_normal([2, 2], seed=[0, 4])
    np.testing.assert_allclose(images[12], model.decode(styles, [0, 0], apply_sigmoid=True),
                               atol=1e-5)


def test_digit_on_an_unconditional_run_fails_cleanly(run, capsys):
    run_dir, _ = run
    with pytest.raises(SystemExit) as exit_info:
        generate.main([run_dir, "--digit", "3"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --digit needs a label-conditional run")
    assert err.count("\n") == 1


def test_manifold_needs_a_2d_latent(tmp_path, capsys):
    run_dir, _ = make_run(str(tmp_path), latent_dim=3)
    with pytest.raises(SystemExit) as exit_info:
        generate.main([run_dir, "--manifold"])
    assert exit_info.value.code == 2
    assert "needs a 2-D latent" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    ([], "nothing to write"),
    (["--samples", "0"], "--samples must be at least 1"),
    (["--transition", "--indices", "5"], "at least two test images"),
    (["--transition", "--indices", "1", "30"], "outside the run's test set of 30 images"),
])
def test_bad_flags_fail_with_one_line(run, capsys, flags, message):
    run_dir, _ = run
    with pytest.raises(SystemExit) as exit_info:
        generate.main([run_dir, *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_scatter_of_a_3d_latent_uses_pca(tmp_path):
    run_dir, model = make_run(str(tmp_path), latent_dim=3)
    config = rundir.load_config(run_dir)
    x, labels = data.load_test_set(config)
    points, axis_labels, title = generate.scatter_points(model, x, labels)
    assert points.shape == (TEST_IMAGES, 2)
    assert axis_labels[0].startswith("PC1") and "3-D" in title


def test_training_writes_the_run_figures_and_generate_runs_every_flag(tmp_path, mnist_dir):
    workdir = str(tmp_path / "run")
    train.main(["--data-dir", mnist_dir, "--out", workdir, "--latent-dim", "2", "--epochs", "1",
                "--train-size", "512", "--test-size", "200", "--batch-size", "64",
                "--conditional"])
    for name in ("training.gif", "manifold.png", "transition.gif", "transition_class.gif",
                 "scatter.png"):
        assert os.path.getsize(os.path.join(workdir, name)) > 0, name
    out = str(tmp_path / "pictures")
    paths = generate.main([workdir, "--samples", "20", "--digit", "4", "--reconstruct",
                           "--manifold", "--transition", "--scatter", "--seed", "1",
                           "--out", out])
    assert len(paths) == 7 and all(os.path.isfile(p) for p in paths)
    assert max(os.path.getsize(p) for p in paths if p.endswith(".gif")) < 2 * 2**20


def test_unwritable_out_is_a_clear_error(run, tmp_path, capsys):
    run_dir, _ = run
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        generate.main([run_dir, "--samples", "4", "--out", str(blocker / "pictures")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "cannot write to output directory" in err and err.count("\n") == 1
