"""Pictures of a trained run: `python -m tfvae.generate RUN_DIR --transition --manifold --scatter`.

Loads config.json and the latest checkpoint of a `python -m tfvae.train` run and writes, into the
run directory (or --out): samples.png, digit_D.png, reconstructions.png, manifold.png,
transition.gif (and, for conditional runs, transition_class.gif) and scatter.png. The pictures
themselves are made by tfvae.figures.
"""

import dataclasses
import json
import math
import os

import numpy as np

from tfvae import checkpoints, data, figures, pretrained, rundir, viz
from tfvae.cli import DEFAULT_SAMPLES, parse_generate
from tfvae.errors import TfvaeError, exit_on_error
from tfvae.files import write_json

INTERRUPTED = "interrupted: the files already written are complete; rerun to write the rest"
# Decoded values one picture may hold (1 GiB as float32): 10000 MNIST digits are 7.8M of them,
# 268 images of 1000x1000 fill it.
PICTURE_VALUES = 2**28


def check_fits_run(args, config):
    """Refuses, before any work, pictures the run cannot make."""
    if args.digit is not None and not config.conditional:
        raise TfvaeError(f"--digit needs a label-conditional run and {args.run_dir} is "
                         "unconditional: train with --conditional, or use --samples N")
    if args.digit is not None and not 0 <= args.digit < config.label_classes:
        raise TfvaeError(f"--digit must be a class of the run, 0 to "
                         f"{config.label_classes - 1}, not {args.digit}")
    if args.manifold and config.latent_dim != 2:
        raise TfvaeError(f"--manifold needs a 2-D latent and {args.run_dir} has "
                         f"{config.latent_dim}: train with --latent-dim 2")
    check_picture_sizes(args, config)


def check_picture_sizes(args, config):
    """Refuses pictures whose decoded images would not fit in PICTURE_VALUES: --samples and
    --grid count the images, and each of a large-image run's costs as many as a thousand
    MNIST digits."""
    height, width, channels = config.image_shape
    most = PICTURE_VALUES // (height * width * channels)
    asked = []
    if args.samples or args.digit is not None:
        num = args.samples or DEFAULT_SAMPLES
        if args.samples and config.conditional:  # whole rows of one image per class
            num = -(-num // config.label_classes) * config.label_classes
        asked.append((f"--samples {num}", num, f"--samples {most}"))
    if args.manifold:
        asked.append((f"--grid {args.grid}", args.grid**2, f"--grid {math.isqrt(most)}"))
    for flag, images, fewer in asked:
        if images > most:
            raise TfvaeError(f"{flag} draws {images} images of {height}x{width} in one picture,"
                             f" over the {most} that fit tfvae's 1 GiB for a picture: pass "
                             f"{fewer} or fewer")


# In an --out that is no run directory, the names of the pictures tfvae drew there: those it
# may draw again; any other file of those names is the user's.
DRAWN_FILE = ".tfvae_drawn.json"


def check_replaces_nothing(args, config, out):
    """Refuses to replace a file in an --out that is no run directory, unless tfvae drew it
    there; notes there the names this command draws."""
    names = [name for flag, name in (
        (args.samples, rundir.SAMPLES_FILE), (args.manifold, rundir.MANIFOLD_FILE),
        (args.reconstruct, rundir.RECONSTRUCTIONS_FILE), (args.scatter, rundir.SCATTER_FILE),
        (args.transition, rundir.TRANSITION_FILE),
        (args.transition and config.conditional, rundir.TRANSITION_CLASS_FILE),
        (args.digit is not None, rundir.DIGIT_PATTERN.format(args.digit))) if flag]
    if os.path.exists(os.path.join(out, rundir.CONFIG_FILE)):
        return  # a run's pictures are tfvae's to redraw
    drawn = drawn_here(out)
    for name in names:
        if os.path.lexists(os.path.join(out, name)) and name not in drawn:
            raise TfvaeError(f"{os.path.join(out, name)!r} exists and {out} is not a run "
                             "directory, so it is not tfvae's to replace: move it away, or "
                             "choose another --out")
    write_json(os.path.join(out, DRAWN_FILE), sorted(drawn | set(names)))


def drawn_here(out):
    """The names DRAWN_FILE lists in `out` (none if it is missing or damaged)."""
    try:
        with open(os.path.join(out, DRAWN_FILE), encoding="utf-8") as f:
            names = json.load(f)
    except (OSError, ValueError):
        return set()
    return {name for name in names if isinstance(name, str)} if isinstance(names, list) else set()


def transition_indices(indices, test_labels, labelled):
    """--indices checked against the test set, or the first test image of each class (of
    unlabelled data, the first few test images)."""
    if indices is None:
        if labelled:
            return figures.class_exemplars(test_labels)
        return figures.transition_indices(test_labels, labelled=False)
    bad = [i for i in indices if not 0 <= i < len(test_labels)]
    if bad:
        raise TfvaeError(f"--indices {bad[0]} is outside the run's test set of "
                         f"{len(test_labels)} images: use 0 to {len(test_labels) - 1}")
    return np.array(indices)


def main(argv=None, prog="python -m tfvae.generate"):
    args = parse_generate(argv, prog)
    shipped = pretrained.is_pretrained(args.run_dir)
    config = (pretrained.load_config if shipped else rundir.load_config)(args.run_dir)
    check_fits_run(args, config)
    seed = config.seed if args.seed is None else args.seed
    out = pretrained.output_dir(args.run_dir, args.out)
    rundir.ensure_writable(out)
    check_replaces_nothing(args, config, out)
    model = (pretrained.load_run if shipped else checkpoints.load_run)(args.run_dir).model
    if not all(np.isfinite(value).all() for value in model.get_weights()):
        raise TfvaeError(f"the newest checkpoint of {args.run_dir} holds non-finite weights "
                         "(its training diverged), so its pictures would be blank: retrain "
                         "with a lower --learning-rate and --overwrite")

    paths = []
    num_classes = config.label_classes
    names = figures.class_names(num_classes, config.dataset) if num_classes else None
    num = args.samples or DEFAULT_SAMPLES
    if args.samples:
        rows = -(-num // num_classes) if config.conditional else int(np.ceil(np.sqrt(num)))
        paths.append(os.path.join(out, rundir.SAMPLES_FILE))
        if config.conditional:  # whole rows, so that each column is one class
            labels = np.arange(rows * num_classes) % num_classes
            viz.save_labelled_grid(paths[-1], figures.prior_samples(model, len(labels), seed,
                                                                    labels),
                                   rows, col_labels=names,
                                   col_title="label y", row_title="one z per cell")
        else:
            viz.save_grid(paths[-1], figures.prior_samples(model, num, seed), rows)
    if args.digit is not None:
        paths.append(os.path.join(out, rundir.DIGIT_PATTERN.format(args.digit)))
        viz.save_grid(paths[-1], figures.prior_samples(model, num, seed, np.full(num, args.digit)),
                      int(np.ceil(np.sqrt(num))))
    if args.manifold:
        paths.append(os.path.join(out, rundir.MANIFOLD_FILE))
        figures.save_manifold(model, paths[-1], args.grid, args.digit or 0, names)
    # A pretrained run's transition walks through digits shipped with it: no data needed.
    offline = shipped and not (args.reconstruct or args.scatter or args.indices or args.data_dir)
    if offline and args.transition:
        test_x, test_labels, reference = pretrained.transition_digits(args.run_dir)
    elif args.reconstruct or args.transition or args.scatter:
        config = dataclasses.replace(
            config, data_dir=data.usable_data_dir(args.data_dir, config.data_dir))
        test_x, test_labels = data.load_test_set(config)
    if args.reconstruct:
        paths.append(os.path.join(out, rundir.RECONSTRUCTIONS_FILE))
        count = figures.NUM_RECONSTRUCTIONS
        figures.write_reconstructions(model, paths[-1], test_x[:count], test_labels[:count])
    if args.transition:
        index = transition_indices(args.indices, test_labels, labelled=names is not None)
        if not offline:
            reference = (figures.encode_means(model, test_x, test_labels), test_labels) \
                if names else None
        paths += figures.write_transitions(model, out, test_x[index], test_labels[index], seed,
                                           args.steps, args.interpolation, names, reference)
    if args.scatter:
        paths.append(figures.write_scatter(model, config.dataset, out, test_x, test_labels,
                                           labelled=names is not None))
    for path in paths:
        print(f"wrote {path}")
    return paths


if __name__ == "__main__":
    exit_on_error(main, INTERRUPTED)()
