"""Pictures of a model: progress grids, reconstructions, manifold, transition GIFs, scatter.

The functions that take a model live here; tfvae.viz turns arrays into files and tfvae.latent
does the latent-space math. tfvae.train, tfvae.generate and the notebooks all call these.
"""

import glob
import os

import numpy as np
import tensorflow as tf

from tfvae import latent, rundir, sources, viz
from tfvae.cli import GRID, STEPS  # the flags' defaults, which --help shows without TensorFlow
from tfvae.errors import TfvaeError

CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
}
FPS = 10  # GIFs time frames in hundredths of a second: 12 fps would play at 12.5
MORPH_STYLES = 4  # styles shown side by side while the class morphs
NUM_RECONSTRUCTIONS = 16
PROGRESS_GRID_SIDE = 8  # unconditional progress grids are 8x8; conditional: 10 digits x 10 styles
UNLABELLED_STOPS = 8  # images a transition walks through when there are no classes
# Pixels a model call encodes or decodes, so memory stays bounded whatever is asked and
# however large the images: a thousand MNIST digits per call, as before, or one 1000x1000 image.
PIXELS_PER_CALL = 1000 * 28 * 28


def images_per_call(model):
    """How many of `model`'s images one call to it handles: PIXELS_PER_CALL, at least one."""
    height, width, _ = model.image_shape
    return max(1, PIXELS_PER_CALL // (height * width))


def in_calls(model, function, x, labels=None, size=None):
    """`function(x_slice, labels_slice)` over slices of x and labels (or None) of `size` images
    (default: `images_per_call`), its results concatenated as one numpy array."""
    size = size or images_per_call(model)
    pieces = []
    for start in range(0, len(x), size):
        part = None if labels is None else labels[start:start + size]
        pieces.append(np.asarray(function(x[start:start + size], part)))
    return np.concatenate(pieces)


def decode_images(model, z, labels=None, batch_size=None):
    """Images [N, H, W, C] in [0, 1] decoded from z [N, latent_dim], `batch_size` at a time
    (default: `images_per_call`)."""
    return in_calls(model, lambda z, labels: model.decode(z, labels, apply_sigmoid=True),
                    np.asarray(z, np.float32), labels, batch_size)


def progress_latents(model, seed):
    """The latents and labels of every epoch's sample grid: the same prior draws each epoch."""
    if model.conditional:
        labels = np.repeat(np.arange(model.num_classes), model.num_classes)  # a row per class
        styles = model.prior.sample(model.num_classes, [seed, 1])
        return tf.tile(styles, [model.num_classes, 1]), labels  # the same styles in every row
    return model.prior.sample(PROGRESS_GRID_SIDE * PROGRESS_GRID_SIDE, [seed, 1]), None


def class_names(num_classes, dataset="mnist"):
    """The names of a dataset's classes: MNIST's digits, Fashion-MNIST's garments, or the
    names the data gave (a folder's subfolders, a tensorflow-datasets label's names), else
    their numbers."""
    names = CLASS_NAMES.get(dataset) or sources.class_names(dataset)
    if len(names) < num_classes:
        names = tuple(str(i) for i in range(num_classes))
    return tuple(names[:num_classes])


def progress_images(model, seed, originals, original_labels):
    """An epoch's pictures as arrays: (sample grid images, reconstructions of `originals`).

    Decoded once per epoch, for the PNG files and for TensorBoard alike.
    """
    z, labels = progress_latents(model, seed)
    return decode_images(model, z, labels), reconstruct(model, originals, original_labels)


def write_progress(model, run_dir, epoch, samples, originals, reconstructions,
                   dataset="mnist"):
    """Writes an epoch's sample grid and the fixed test images above their reconstructions."""
    path = os.path.join(run_dir, rundir.FRAME_PATTERN.format(epoch))
    if model.conditional:
        viz.save_labelled_grid(path, samples, model.num_classes,
                               class_names(model.num_classes, dataset),
                               [str(i + 1) for i in range(model.num_classes)],
                               row_title="label y", col_title="style z (the same in every row)")
    else:
        viz.save_grid(path, samples, PROGRESS_GRID_SIDE)
    viz.save_reconstructions(os.path.join(run_dir, rundir.RECONSTRUCTION_PATTERN.format(epoch)),
                             originals, reconstructions)


def write_training_gif(run_dir):
    """Animates the per-epoch sample grids into training.gif; returns its path, or None."""
    frames = sorted(glob.glob(os.path.join(run_dir, rundir.FRAME_PATTERN.replace("{:04d}", "*"))))
    if not frames:
        return None
    path = os.path.join(run_dir, rundir.TRAINING_GIF)
    epochs = [int(os.path.basename(f)[len("image_at_epoch_"):-len(".png")]) for f in frames]
    viz.gif_from_pngs(path, frames, captions=[f"epoch {n}" for n in epochs])
    return path


def prior_samples(model, num, seed, labels=None):
    """Images [num, H, W, C] decoded from draws of the prior keyed by `seed`."""
    return decode_images(model, model.prior.sample(num, [seed, 2]), labels)


def manifold_images(model, grid=GRID, label=0):
    """Images [grid * grid, H, W, C] decoded over a grid of standard-normal quantiles.

    Args:
      label: the class to decode for a conditional model (ignored otherwise).
    """
    if model.latent_dim != 2:
        raise TfvaeError(f"the manifold needs a 2-D latent and this run's is "
                         f"{model.latent_dim}-D: train with --latent-dim 2")
    z = latent.quantile_grid(grid)
    labels = np.full(len(z), label, np.int32) if model.conditional else None
    return decode_images(model, z, labels)


def encode_means(model, x, labels=None):
    """Where images x [N, H, W, C] sit in z, [N, latent_dim] (`VAE.posterior_location`: the
    posterior means of a one-layer Gaussian model), in batches."""
    return in_calls(model, lambda x, labels: model.posterior_location(*model.encode(x, labels)),
                    x, labels if model.conditional else None)


def class_exemplars(labels, classes=None):
    """Index of the first test image of each class, in the order of `classes` (default: 0 to
    the largest label)."""
    labels = np.asarray(labels)
    classes = range(int(labels.max()) + 1) if classes is None else classes
    missing = [c for c in classes if not (labels == c).any()]
    if missing:
        raise TfvaeError(f"the test set has no image of class {missing[0]}: use a larger "
                         "--test-size for the run, or pass --indices")
    return np.array([int(np.flatnonzero(labels == c)[0]) for c in classes])


def transition_images(model, x, labels, steps=STEPS, method="linear"):
    """A looping walk through the latent means of images x [K, H, W, C].

    Frame k * steps decodes exactly the k-th image's mean. A conditional model also walks its
    label, blending one-hot vectors in step, so the class changes along with the style.

    Returns:
      images [K * steps, H, W, C] in [0, 1].
    """
    path = latent.interpolation_path(encode_means(model, x, labels), steps, method)
    label_path = None
    if model.conditional:
        one_hot = np.eye(model.num_classes, dtype=np.float32)[np.asarray(labels)]
        label_path = latent.interpolation_path(one_hot, steps, "linear")
    return decode_images(model, path, label_path)


def class_morph_images(model, classes, seed, steps=STEPS, styles=MORPH_STYLES):
    """A conditional model's classes morphing in a loop while `styles` style latents stay fixed.

    Returns:
      images [len(classes) * steps, styles, H, W, C] in [0, 1].
    """
    z = tf.random.stateless_normal([styles, model.latent_dim], seed=[seed, 4])
    one_hot = np.eye(model.num_classes, dtype=np.float32)[np.asarray(classes)]
    label_path = latent.interpolation_path(one_hot, steps, "linear")  # [T, num_classes]
    frames = len(label_path)
    images = decode_images(model, tf.tile(z, [frames, 1]), np.repeat(label_path, styles, axis=0))
    return images.reshape(frames, styles, *images.shape[1:])


def scatter_points(model, x, labels):
    """Test-set latent means in 2-D: z itself, or its top two principal components.

    Returns:
      (points [N, 2], axis labels, title).
    """
    means = encode_means(model, x, labels)
    if means.shape[1] == 2:
        return means, ("z1", "z2"), "Posterior means of the test set"
    if means.shape[1] == 1:
        return np.concatenate([means, np.zeros_like(means)], 1), ("z1", ""), \
            "Posterior means of the test set"
    points, explained = latent.pca_project(means)
    axis_labels = tuple(f"PC{i + 1} ({share:.0%} of variance)" for i, share in enumerate(explained))
    return points, axis_labels, f"Posterior means of the test set, PCA of {means.shape[1]}-D z"


def transition_indices(test_labels, labelled=True):
    """The test images a default transition walks through: the first of each class present
    (so a run on a small --test-size still gets one), or of unlabelled data the first
    UNLABELLED_STOPS images."""
    if not labelled:
        return np.arange(min(UNLABELLED_STOPS, len(test_labels)))
    return class_exemplars(test_labels, np.unique(test_labels))


def transition_captions(model, x, labels, class_names, steps=STEPS, method="linear",
                        reference=None):
    """One caption per frame of `transition_images`: the two classes it moves between and,
    given reference=(test means, test labels) of an unconditional model, the class whose region
    of the latent space the frame is in (the digit it is passing through). None (no captions)
    for unlabelled images, `class_names` None."""
    if class_names is None:
        return None
    names = [class_names[int(c)] for c in labels]
    moves = [f"{names[i]} to {names[(i + 1) % len(names)]}" for i in range(len(names))
             for _ in range(steps)]
    if reference is None or model.conditional:
        return moves
    path = latent.interpolation_path(encode_means(model, x, labels), steps, method)
    near = latent.nearest_class(path, *reference)
    return [f"{move}\nnow in: {class_names[int(c)]}" for move, c in zip(moves, near)]


def write_transitions(model, out, x, labels, seed, steps=STEPS, method="linear",
                      class_names=CLASS_NAMES["mnist"], reference=None):
    """Writes transition.gif and, for a conditional model, transition_class.gif, captioned."""
    paths = [os.path.join(out, rundir.TRANSITION_FILE)]
    captions = transition_captions(model, x, labels, class_names, steps, method, reference)
    viz.save_animation(paths[0], transition_images(model, x, labels, steps, method),
                       fps=FPS, hold_every=steps, captions=captions)
    if model.conditional:
        paths.append(os.path.join(out, rundir.TRANSITION_CLASS_FILE))
        viz.save_animation(paths[1], class_morph_images(model, labels, seed, steps),
                           fps=FPS, hold_every=steps, captions=captions)
    return paths


def manifold_axis_values(grid=GRID):
    """The z1 values of the manifold's columns and z2 values of its rows, top to bottom."""
    z = latent.quantile_grid(grid)
    return z[:grid, 0], z[::grid, 1]


def save_manifold(model, path, grid=GRID, label=0, class_names=CLASS_NAMES["mnist"]):
    """Writes the 2-D latent's manifold with its z values on the axes."""
    title = f"p(x | z, y={class_names[label]})" if model.conditional else "p(x | z)"
    viz.save_manifold(path, manifold_images(model, grid, label), grid,
                      axis_values=manifold_axis_values(grid), title=title)


def reconstruct(model, x, labels=None):
    """Reconstruction probabilities of images x [N, H, W, C], decoded from the posterior mean."""
    return in_calls(model, lambda x, labels: model.likelihood.mean(model(x, labels)[0]),
                    x, labels if model.conditional else None)


def write_reconstructions(model, path, x, labels):
    """Writes images x above their reconstructions from the posterior mean."""
    viz.save_reconstructions(path, x, reconstruct(model, x, labels))


def write_scatter(model, dataset, out, x, labels, labelled=True):
    """Writes scatter.png, the test set's latent means coloured by class (one colour for
    unlabelled images); returns its path."""
    path = os.path.join(out, rundir.SCATTER_FILE)
    points, axis_labels, title = scatter_points(model, x, labels)
    num_classes = int(np.max(labels)) + 1
    names = class_names(num_classes, dataset) if labelled else None
    viz.save_scatter(path, points, labels, names, axis_labels, title)
    return path


def write_run_figures(model, config, run_dir, test_x, test_labels):
    """The end-of-training pictures: manifold.png (2-D latent), the transition GIFs, scatter.png.

    A picture the test set is too small for is skipped with a note. Returns the paths written.
    """
    paths = []
    names = class_names(config.label_classes, config.dataset) if config.label_classes else None
    if model.latent_dim == 2:
        paths.append(os.path.join(run_dir, rundir.MANIFOLD_FILE))
        save_manifold(model, paths[-1], class_names=names)
    index = transition_indices(test_labels, labelled=names is not None)
    if len(index) > 1:
        reference = (encode_means(model, test_x, test_labels), test_labels) if names else None
        paths += write_transitions(model, run_dir, test_x[index], test_labels[index],
                                   config.seed, class_names=names, reference=reference)
    else:
        rundir.note("no transition.gif: the test set holds one class only (raise --test-size)")
    if len(test_x) > 1:
        paths.append(write_scatter(model, config.dataset, run_dir, test_x, test_labels,
                                   labelled=names is not None))
    else:
        rundir.note("no scatter.png: it needs two test images or more (raise --test-size)")
    return paths
