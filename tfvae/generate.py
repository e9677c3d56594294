"""Pictures of a trained run: `python -m tfvae.generate RUN_DIR --transition --manifold --scatter`.

Loads config.json and the latest checkpoint of a `python -m tfvae.train` run and writes, into the
run directory (or --out): samples.png, digit_D.png, reconstructions.png, manifold.png,
transition.gif (and, for conditional runs, transition_class.gif) and scatter.png. The functions
here that take a model are also what tfvae.train and the notebooks call; the array-to-file work
is in tfvae.viz and the latent-space math in tfvae.latent.
"""

import os

import numpy as np
import tensorflow as tf

from tfvae import data, latent, rundir, viz
from tfvae.config import ArgumentParser
from tfvae.errors import TfvaeError, exit_on_error

CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
}
GRID = 20  # the CVAE tutorial's 20x20 manifold
STEPS = 16  # frames from one digit to the next: at 10 fps a 1.6 s morph, smooth to the eye
FPS = 10  # GIFs time frames in hundredths of a second: 12 fps would play at 12.5
DEFAULT_SAMPLES = 64
MORPH_STYLES = 4  # styles shown side by side while the class morphs
NUM_RECONSTRUCTIONS = 16


def prior_samples(model, num, seed, labels=None):
    """Images [num, 28, 28, 1] decoded from draws of the prior keyed by `seed`."""
    return model.sample(model.sample_prior(num, [seed, 2]), labels).numpy()


def manifold_images(model, grid=GRID, label=0):
    """Images [grid * grid, 28, 28, 1] decoded over a grid of standard-normal quantiles.

    Args:
      label: the class to decode for a conditional model (ignored otherwise).
    """
    if model.latent_dim != 2:
        raise TfvaeError(f"the manifold needs a 2-D latent and this run's is "
                         f"{model.latent_dim}-D: train with --latent-dim 2")
    z = latent.quantile_grid(grid)
    labels = np.full(len(z), label, np.int32) if model.conditional else None
    return model.decode(z, labels, apply_sigmoid=True).numpy()


def encode_means(model, x, labels=None, batch_size=1000):
    """Posterior means [N, latent_dim] of images x [N, 28, 28, 1], in batches."""
    means = []
    for start in range(0, len(x), batch_size):
        batch_labels = labels[start:start + batch_size] if model.conditional else None
        means.append(model.encode(x[start:start + batch_size], batch_labels)[0].numpy())
    return np.concatenate(means)


def class_exemplars(labels, classes=range(data.NUM_CLASSES)):
    """Index of the first test image of each class, in the order of `classes`."""
    labels = np.asarray(labels)
    missing = [c for c in classes if not (labels == c).any()]
    if missing:
        raise TfvaeError(f"the test set has no image of class {missing[0]}: use a larger "
                         "--test-size for the run, or pass --indices")
    return np.array([int(np.flatnonzero(labels == c)[0]) for c in classes])


def transition_images(model, x, labels, steps=STEPS, method="linear"):
    """A looping walk through the latent means of images x [K, 28, 28, 1].

    Frame k * steps decodes exactly the k-th image's mean. A conditional model also walks its
    label, blending one-hot vectors in step, so the class changes along with the style.

    Returns:
      images [K * steps, 28, 28, 1] in [0, 1].
    """
    path = latent.interpolation_path(encode_means(model, x, labels), steps, method)
    label_path = None
    if model.conditional:
        one_hot = np.eye(model.num_classes, dtype=np.float32)[np.asarray(labels)]
        label_path = latent.interpolation_path(one_hot, steps, "linear")
    return model.decode(path, label_path, apply_sigmoid=True).numpy()


def class_morph_images(model, classes, seed, steps=STEPS, styles=MORPH_STYLES):
    """A conditional model's classes morphing in a loop while `styles` style latents stay fixed.

    Returns:
      images [len(classes) * steps, styles, 28, 28, 1] in [0, 1].
    """
    z = tf.random.stateless_normal([styles, model.latent_dim], seed=[seed, 4])
    one_hot = np.eye(model.num_classes, dtype=np.float32)[np.asarray(classes)]
    label_path = latent.interpolation_path(one_hot, steps, "linear")  # [T, num_classes]
    frames = len(label_path)
    images = model.decode(tf.tile(z, [frames, 1]), np.repeat(label_path, styles, axis=0),
                          apply_sigmoid=True).numpy()
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


def transition_captions(model, x, labels, class_names, steps=STEPS, method="linear",
                        reference=None):
    """One caption per frame of `transition_images`: the two classes it moves between and,
    given reference=(test means, test labels) of an unconditional model, the class whose region
    of the latent space the frame is in (the digit it is passing through)."""
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
    paths = [os.path.join(out, "transition.gif")]
    captions = transition_captions(model, x, labels, class_names, steps, method, reference)
    viz.save_animation(paths[0], transition_images(model, x, labels, steps, method),
                       fps=FPS, hold_every=steps, captions=captions)
    if model.conditional:
        paths.append(os.path.join(out, "transition_class.gif"))
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


def write_reconstructions(model, path, x, labels):
    """Writes images x above their reconstructions from the posterior mean."""
    logits, _, _ = model(x, labels if model.conditional else None)
    viz.save_reconstructions(path, x, tf.sigmoid(logits).numpy())


def write_scatter(model, config, out, x, labels):
    path = os.path.join(out, "scatter.png")
    points, axis_labels, title = scatter_points(model, x, labels)
    viz.save_scatter(path, points, labels, CLASS_NAMES[config.dataset], axis_labels, title)
    return path


def write_run_figures(model, config, workdir, test_x, test_labels):
    """The end-of-training pictures: manifold.png (2-D latent), the transition GIFs, scatter.png.

    Returns the paths written.
    """
    paths = []
    names = CLASS_NAMES[config.dataset]
    if model.latent_dim == 2:
        paths.append(os.path.join(workdir, "manifold.png"))
        save_manifold(model, paths[-1], class_names=names)
    # Only the classes present, so a run on a small --test-size still gets its pictures.
    index = class_exemplars(test_labels, np.unique(test_labels))
    if len(index) > 1:
        reference = (encode_means(model, test_x, test_labels), test_labels)
        paths += write_transitions(model, workdir, test_x[index], test_labels[index],
                                   config.seed, class_names=names, reference=reference)
    paths.append(write_scatter(model, config, workdir, test_x, test_labels))
    return paths


def _positive(name, value, minimum=1):
    if value is not None and value < minimum:
        raise TfvaeError(f"--{name} must be at least {minimum}, not {value}")


@exit_on_error
def main(argv=None):
    """The command line; a TfvaeError becomes one line on stderr and exit status 2."""
    parser = ArgumentParser(prog="python -m tfvae.generate", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the --out directory of a training run")
    parser.add_argument("--samples", type=int, metavar="N",
                        help=f"write samples.png, N samples from the prior (conditional runs: "
                             f"rounded up to whole rows, one column per class; also sets the "
                             f"count for --digit, default {DEFAULT_SAMPLES})")
    parser.add_argument("--digit", type=int, choices=range(10), metavar="D",
                        help="conditional runs: write digit_D.png, samples of class D (also the "
                             "class of a conditional run's --manifold, default 0)")
    parser.add_argument("--reconstruct", action="store_true",
                        help="write reconstructions.png: test images above their reconstructions")
    parser.add_argument("--manifold", action="store_true",
                        help="2-D latent: write manifold.png, images decoded over a grid of "
                             "standard-normal quantiles")
    parser.add_argument("--grid", type=int, default=GRID, help=f"manifold size (default {GRID})")
    parser.add_argument("--transition", action="store_true",
                        help="write transition.gif, a walk through test digits' latent means "
                             "(conditional runs: also transition_class.gif)")
    parser.add_argument("--indices", type=int, nargs="+", metavar="I",
                        help="test images for --transition (default: the first of each class)")
    parser.add_argument("--interpolation", choices=tuple(latent.INTERPOLATIONS), default="linear",
                        help="path between two latents (default linear)")
    parser.add_argument("--steps", type=int, default=STEPS,
                        help=f"frames from one digit to the next (default {STEPS})")
    parser.add_argument("--scatter", action="store_true",
                        help="write scatter.png, test-set latent means coloured by class")
    parser.add_argument("--seed", type=int, help="seed for sampling (default: the run's seed)")
    parser.add_argument("--out", help="directory for the files (default: RUN_DIR)")
    args = parser.parse_args(argv)

    _positive("samples", args.samples)
    _positive("grid", args.grid, 2)
    _positive("steps", args.steps)
    config = rundir.load_config(args.run_dir)
    if not any([args.samples, args.digit is not None, args.reconstruct, args.manifold,
                args.transition, args.scatter]):
        raise TfvaeError("nothing to write: pass one or more of --samples N, --digit D, "
                         "--reconstruct, --manifold, --transition, --scatter")
    if args.digit is not None and not config.conditional:
        raise TfvaeError(f"--digit needs a label-conditional run and {args.run_dir} is "
                         "unconditional: train with --conditional, or use --samples N")
    if args.manifold and config.latent_dim != 2:
        raise TfvaeError(f"--manifold needs a 2-D latent and {args.run_dir} has "
                         f"{config.latent_dim}: train with --latent-dim 2")
    if args.indices is not None and len(args.indices) < 2:
        raise TfvaeError("--indices needs at least two test images to move between")
    seed = config.seed if args.seed is None else args.seed
    out = args.out or args.run_dir
    rundir.ensure_writable(out)

    config, model, _, _ = rundir.load_run(args.run_dir)
    paths = []
    num = args.samples or DEFAULT_SAMPLES
    if args.samples:
        rows = -(-num // data.NUM_CLASSES) if config.conditional else int(np.ceil(np.sqrt(num)))
        paths.append(os.path.join(out, "samples.png"))
        if config.conditional:  # whole rows, so that each column is one class
            labels = np.arange(rows * data.NUM_CLASSES) % data.NUM_CLASSES
            viz.save_labelled_grid(paths[-1], prior_samples(model, len(labels), seed, labels),
                                   rows, col_labels=CLASS_NAMES[config.dataset],
                                   col_title="label y", row_title="one z per cell")
        else:
            viz.save_grid(paths[-1], prior_samples(model, num, seed), rows)
    if args.digit is not None:
        paths.append(os.path.join(out, f"digit_{args.digit}.png"))
        viz.save_grid(paths[-1], prior_samples(model, num, seed, np.full(num, args.digit)),
                      int(np.ceil(np.sqrt(num))))
    if args.manifold:
        paths.append(os.path.join(out, "manifold.png"))
        save_manifold(model, paths[-1], args.grid, args.digit or 0, CLASS_NAMES[config.dataset])
    if args.reconstruct or args.transition or args.scatter:
        test_x, test_labels = data.load_test_set(config)
    if args.reconstruct:
        paths.append(os.path.join(out, "reconstructions.png"))
        write_reconstructions(model, paths[-1], test_x[:NUM_RECONSTRUCTIONS],
                              test_labels[:NUM_RECONSTRUCTIONS])
    if args.transition:
        if args.indices is None:
            index = class_exemplars(test_labels)
        else:
            bad = [i for i in args.indices if not 0 <= i < len(test_x)]
            if bad:
                raise TfvaeError(f"--indices {bad[0]} is outside the run's test set of "
                                 f"{len(test_x)} images: use 0 to {len(test_x) - 1}")
            index = np.array(args.indices)
        paths += write_transitions(model, out, test_x[index], test_labels[index], seed,
                                   args.steps, args.interpolation, CLASS_NAMES[config.dataset],
                                   (encode_means(model, test_x, test_labels), test_labels))
    if args.scatter:
        paths.append(write_scatter(model, config, out, test_x, test_labels))
    for path in paths:
        print(f"wrote {path}")
    return paths


if __name__ == "__main__":
    main()
