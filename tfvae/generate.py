"""Pictures of a trained run: `python -m tfvae.generate RUN_DIR --transition --manifold --scatter`.

Loads config.json and the latest checkpoint of a `python -m tfvae.train` run and writes, into the
run directory (or --out): samples.png, digit_D.png, reconstructions.png, manifold.png,
transition.gif (and, for conditional runs, transition_class.gif) and scatter.png. The pictures
themselves are made by tfvae.figures.
"""

import dataclasses
import os

import numpy as np

from tfvae import data, figures, latent, pretrained, rundir, sources, viz
from tfvae.config import ArgumentParser, check_at_least, check_at_most, check_seed
from tfvae.errors import TfvaeError, exit_on_error

INTERRUPTED = "interrupted: the files already written are complete; rerun to write the rest"
MAX_STEPS = 1000  # frames per segment of a transition GIF


def parse_args(argv):
    parser = ArgumentParser(prog="python -m tfvae.generate", description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="the --out directory of a training run, or pretrained:NAME, a "
                             "run shipped with tfvae (a wrong NAME lists them)")
    parser.add_argument("--samples", type=int, metavar="N",
                        help=f"write samples.png, N samples from the prior (conditional runs: "
                             f"rounded up to whole rows, one column per class; also sets the "
                             f"count for --digit, default {figures.DEFAULT_SAMPLES}; at most "
                             f"{figures.MAX_SAMPLES})")
    parser.add_argument("--digit", type=int, metavar="D",
                        help="conditional runs: write digit_D.png, samples of class D, 0-9 on "
                             "MNIST (also the class of a conditional run's --manifold, "
                             "default 0)")
    parser.add_argument("--reconstruct", action="store_true",
                        help="write reconstructions.png: test images above their reconstructions")
    parser.add_argument("--manifold", action="store_true",
                        help="2-D latent: write manifold.png, images decoded over a grid of "
                             "standard-normal quantiles")
    parser.add_argument("--grid", type=int, default=figures.GRID,
                        help=f"manifold size, 2 to {figures.MAX_GRID} (default {figures.GRID})")
    parser.add_argument("--transition", action="store_true",
                        help="write transition.gif, a walk through test digits' latent means "
                             "(conditional runs: also transition_class.gif)")
    parser.add_argument("--indices", type=int, nargs="+", metavar="I",
                        help="test images for --transition (default: the first of each class)")
    parser.add_argument("--interpolation", choices=tuple(latent.INTERPOLATIONS), default="linear",
                        help="path between two latents (default linear)")
    parser.add_argument("--steps", type=int, default=figures.STEPS,
                        help=f"frames from one digit to the next, 1 to {MAX_STEPS} "
                             f"(default {figures.STEPS})")
    parser.add_argument("--scatter", action="store_true",
                        help="write scatter.png, test-set latent means coloured by class")
    parser.add_argument("--seed", type=int, help="seed for sampling (default: the run's seed)")
    parser.add_argument("--data-dir", default=None,
                        help="directory of the IDX files (default: the run's if it still "
                             "exists, then $TFVAE_DATA_DIR, then tensorflow-datasets)")
    parser.add_argument("--out", help="directory for the files (default: RUN_DIR; needed for "
                                      "pretrained:NAME)")
    args = parser.parse_args(argv)
    check_at_least("samples", args.samples)
    check_at_most("samples", args.samples, figures.MAX_SAMPLES)
    check_at_least("grid", args.grid, 2)
    check_at_most("grid", args.grid, figures.MAX_GRID)
    check_at_least("steps", args.steps)
    check_at_most("steps", args.steps, MAX_STEPS)
    check_seed("seed", args.seed)
    if not any([args.samples, args.digit is not None, args.reconstruct, args.manifold,
                args.transition, args.scatter]):
        raise TfvaeError("nothing to write: pass one or more of --samples N, --digit D, "
                         "--reconstruct, --manifold, --transition, --scatter")
    if args.indices is not None and len(args.indices) < 2:
        raise TfvaeError("--indices needs at least two test images to move between")
    return args


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


def main(argv=None):
    args = parse_args(argv)
    shipped = pretrained.is_pretrained(args.run_dir)
    config = (pretrained.load_config if shipped else rundir.load_config)(args.run_dir)
    check_fits_run(args, config)
    seed = config.seed if args.seed is None else args.seed
    out = pretrained.output_dir(args.run_dir, args.out)
    rundir.ensure_writable(out)
    model = (pretrained.load_run if shipped else rundir.load_run)(args.run_dir).model

    paths = []
    num_classes = config.label_classes
    names = figures.class_names(num_classes, config.dataset) if num_classes else None
    num = args.samples or figures.DEFAULT_SAMPLES
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
        test_x, test_labels = sources.load_test_set(config)
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
