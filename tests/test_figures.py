"""tfvae.figures: the pictures of a model, on untrained runs (tests/helpers.make_run)."""

import os

import imageio.v2 as imageio
import numpy as np
import tensorflow as tf
from helpers import TEST_IMAGES, make_run

from tfvae import data, figures, rundir, viz


def test_transition_starts_at_the_decoded_endpoint_and_steps_through_each_image(run):
    run_dir, model = run
    config = rundir.load_config(run_dir)
    x, labels = data.load_test_set(config)
    index = figures.class_exemplars(labels)
    np.testing.assert_array_equal(labels[index], np.arange(10))
    images = figures.transition_images(model, x[index], labels[index], steps=12)
    assert images.shape == (120, 28, 28, 1)
    assert images.min() >= 0.0 and images.max() <= 1.0
    means, _ = model.encode(x[index])
    endpoints = model.decode(means, apply_sigmoid=True).numpy()
    np.testing.assert_allclose(images[::12], endpoints, atol=1e-5)
    # The GIF's first frame is that decoded endpoint, upscaled.
    figures.write_transitions(model, run_dir, x[index], labels[index], seed=0, steps=12)
    first = imageio.mimread(os.path.join(run_dir, "transition.gif"))[0][..., 0]
    np.testing.assert_array_equal(first[:112], viz.animation_frames(endpoints[:1])[0])


def test_transition_captions_name_the_classes_and_the_region_passed_through(run):
    run_dir, model = run
    x, labels = data.load_test_set(rundir.load_config(run_dir))
    index = figures.class_exemplars(labels)[:3]
    reference = (figures.encode_means(model, x, labels), labels)
    captions = figures.transition_captions(model, x[index], labels[index],
                                           figures.CLASS_NAMES["mnist"], steps=4,
                                           reference=reference)
    assert len(captions) == 12
    assert captions[0].startswith("0 to 1\nnow in: ") and captions[4].startswith("1 to 2")
    assert captions[-1].startswith("2 to 0")


def test_a_one_hot_float_label_vector_decodes_like_the_integer_label(conditional_run):
    _, model = conditional_run
    z = tf.random.stateless_normal([3, 2], seed=[0, 1])
    soft = np.eye(10, dtype=np.float32)[[7, 0, 3]]
    np.testing.assert_allclose(model.decode(z, soft), model.decode(z, [7, 0, 3]), atol=1e-6)
    images = figures.class_morph_images(model, [7, 0, 3], seed=0, steps=12, styles=2)
    assert images.shape == (36, 2, 28, 28, 1)
    # Frame 12 is exactly class 0, drawn in the two fixed styles.
    styles = tf.random.stateless_normal([2, 2], seed=[0, 4])
    np.testing.assert_allclose(images[12], model.decode(styles, [0, 0], apply_sigmoid=True),
                               atol=1e-5)


def test_scatter_of_a_3d_latent_uses_pca(tmp_path):
    run_dir, model = make_run(str(tmp_path), latent_dim=3)
    config = rundir.load_config(run_dir)
    x, labels = data.load_test_set(config)
    points, axis_labels, title = figures.scatter_points(model, x, labels)
    assert points.shape == (TEST_IMAGES, 2)
    assert axis_labels[0].startswith("PC1") and "3-D" in title
