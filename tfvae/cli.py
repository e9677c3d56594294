"""The command lines, parsed before TensorFlow is imported: `tfvae train|generate|evaluate`.

`python -m tfvae.train` and `tfvae train` take the same flags from the same parsers built
here; this module imports only the config, so `--help` and a flag error answer at once.
"""

import argparse
import dataclasses
import functools
import importlib
import json
import sys
import typing

from tfvae import quiet, recipes
from tfvae.config import (
    CHOICES,
    TUPLE_KEYS,
    Config,
    RemovedModeError,
    check_at_least,
    check_at_most,
    check_seed,
    config_from_dict,
)
from tfvae.errors import RESUME_HINT, TfvaeError, exit_on_error, first_line
from tfvae.version import __version__

# The flags' defaults and bounds live here, not beside the code that uses them (figures,
# evaluate), so that --help needs no TensorFlow.
DEFAULT_SAMPLES = 64
MAX_SAMPLES = 10_000
GRID = 20  # the CVAE tutorial's 20x20 manifold
MAX_GRID = 100  # a 100x100 manifold is a 5600-pixel-wide PNG; larger ones help nobody
STEPS = 16  # frames from one digit to the next: at 10 fps a 1.6 s morph, smooth to the eye
MAX_STEPS = 1000  # frames per segment of a transition GIF
INTERPOLATIONS = ("linear", "slerp")  # tfvae.latent.INTERPOLATIONS's names
# 100 images x 50 samples = 5,000 latents decoded per chunk (16 MB of logits). On a 2-core
# CPU, chunks of 2,000-10,000 latents ran the 400-unit fully connected decoder fastest (~115k
# samples per CPU-second); 50,000 ran ~20% slower, out of cache. A batch of 100 updates the
# bar every few seconds at k = 5000.
EVAL_BATCH_SIZE = 100
EVAL_CHUNK = 50

TF_LOG_NOTE = ("TensorFlow's own log lines are hidden; set TFVAE_TF_LOG=1 to see them.")

# python -m tfvae.train --help lists the Config's flags in these groups, in this order: the
# tutorial's first, research last.
TRAIN_GROUPS = {
    "model": ("latent_dim", "model", "conditional", "hidden_units", "conv_filters",
              "likelihood"),
    "data": ("dataset", "binarize", "data_dir", "train_size", "image_size", "channels",
             "test_fraction"),
    "training": ("epochs", "batch_size", "learning_rate", "lr_schedule", "weight_decay", "seed",
                 "objective", "k", "kl", "kl_warmup_epochs", "beta"),
    "evaluation and pictures": ("test_size", "eval_batch_size"),
    "research": ("prior_components", "posterior_flow_steps", "top_latent_dim",
                 "autoregressive_local_units", "autoregressive_local_knots"),
    "performance and scale-out": ("steps_per_call", "jit_compile", "mixed_precision",
                                  "checkpoint_every", "strategy"),
}


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line naming the flag, with exit status 2."""

    def error(self, message):
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _flag(name):
    return "--" + name.replace("_", "-")


def add_config_flags(parser, groups=None):
    """Adds a --flag for each Config field, with its help and default.

    Args:
      parser: an argparse parser.
      groups: {title: field names}: the flags go into argument groups of those titles, in that
        order; None adds them all to `parser` in the Config's order.
    """
    fields = {f.name: f for f in dataclasses.fields(Config) if f.metadata["flag"]}
    if groups is None:
        groups = {None: tuple(fields)}
    for title, names in groups.items():
        group = parser if title is None else parser.add_argument_group(title)
        for name in names:
            _add_config_flag(group, fields[name])


def _add_config_flag(parser, field):
    flag = _flag(field.name)
    help_text = field.metadata["help"]
    if field.default is not None and not isinstance(field.default, tuple):
        help_text += f" (default: {field.default})"
    if field.type in (bool, typing.Optional[bool]):
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None,
                            help=help_text)
    elif field.type is tuple:
        parser.add_argument(flag, type=int, nargs="+", default=None, metavar="N",
                            help=f"{help_text} (default: {' '.join(map(str, field.default))})")
    elif field.name == "image_size":
        parser.add_argument(flag, type=int, nargs=2, default=None, metavar=("H", "W"),
                            help=help_text)
    else:
        kind = typing.get_args(field.type)[0] if typing.get_args(field.type) else field.type
        parser.add_argument(flag, type=kind, default=None, choices=CHOICES.get(field.name),
                            help=help_text)


def config_from_args(args, base=None):
    """Returns `base` (default Config()) with every flag the user gave applied."""
    base = base or Config()
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config)
                 if getattr(args, f.name, None) is not None}
    for name in TUPLE_KEYS:
        if isinstance(overrides.get(name), list):
            overrides[name] = tuple(overrides[name])
    return dataclasses.replace(base, **overrides)


def config_file(path):
    """The Config saved in a JSON file such as a run's config.json (--config FILE)."""
    try:
        with open(path, encoding="utf-8") as f:
            values = json.load(f)
        return config_from_dict(values)
    except RemovedModeError as error:
        raise TfvaeError(f"--config {path}: {error}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, TfvaeError) as error:
        reason = error.strerror if isinstance(error, OSError) else first_line(error)
        raise TfvaeError(f"--config {path} cannot be read ({reason}): pass a config.json "
                         "of a run, or a JSON object of config keys") from None


def train_parser(prog="python -m tfvae.train"):
    """The flags of `python -m tfvae.train` (and `tfvae train`)."""
    parser = ArgumentParser(
        prog=prog, usage="%(prog)s [--recipe NAME | --config FILE] [--out DIR] [--FLAG VALUE ...]",
        description="Trains a VAE: `python -m tfvae.train --latent-dim 2` is TensorFlow's CVAE "
        "tutorial; rerunning the same command resumes.", epilog=TF_LOG_NOTE)
    run = parser.add_argument_group("recipe and run directory")
    start = run.add_mutually_exclusive_group()
    start.add_argument("--recipe", metavar="NAME",
                       help="start from a named recipe (flags given override it); --recipe "
                       "list prints them: " + ", ".join(recipes.names()))
    start.add_argument("--config", metavar="FILE",
                       help="start from a config.json (any run's; flags given override it)")
    run.add_argument("--out", help="run directory (default: runs/DATASET-MODEL-zLATENT)")
    run.add_argument("--overwrite", action="store_true",
                     help="start afresh in --out even if it holds a run")
    add_config_flags(parser, TRAIN_GROUPS)
    return parser


def parse_train(argv=None, prog="python -m tfvae.train"):
    """(config, args) of a `python -m tfvae.train` command line; exits after --recipe list.

    The config is unresolved: training resolves its "auto" values.
    """
    args = train_parser(prog).parse_args(argv)
    if args.recipe == "list":
        width = max(map(len, recipes.names()))
        for name in recipes.names():
            print(f"{name:<{width}}  {recipes.read(name)[0]}")
        sys.exit(0)
    base = None
    if args.recipe is not None:
        base = recipes.config(args.recipe)
    elif args.config is not None:
        base = config_file(args.config)
    return config_from_args(args, base), args


def generate_parser(prog="python -m tfvae.generate"):
    """The flags of `python -m tfvae.generate` (and `tfvae generate`)."""
    parser = ArgumentParser(prog=prog, description="Pictures of a trained run: samples, a "
                            "chosen digit, reconstructions, the manifold, transitions and the "
                            "latent scatter, written into the run directory.",
                            epilog=TF_LOG_NOTE)
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the --out directory of a training run, "
                        "or pretrained:NAME, a run shipped with tfvae (a wrong NAME lists them)")
    pictures = parser.add_argument_group("pictures")
    pictures.add_argument("--samples", type=int, metavar="N",
                          help=f"write samples.png, N samples from the prior (conditional runs: "
                               f"rounded up to whole rows, one column per class; also sets the "
                               f"count for --digit, default {DEFAULT_SAMPLES}; at most "
                               f"{MAX_SAMPLES})")
    pictures.add_argument("--digit", type=int, metavar="D",
                          help="conditional runs: write digit_D.png, samples of class D, 0-9 on "
                               "MNIST (also the class of a conditional run's --manifold, "
                               "default 0)")
    pictures.add_argument("--reconstruct", action="store_true",
                          help="write reconstructions.png: test images above their "
                               "reconstructions")
    pictures.add_argument("--manifold", action="store_true",
                          help="2-D latent: write manifold.png, images decoded over a grid of "
                               "standard-normal quantiles")
    pictures.add_argument("--transition", action="store_true",
                          help="write transition.gif, a walk through test digits' latent means "
                               "(conditional runs: also transition_class.gif)")
    pictures.add_argument("--scatter", action="store_true",
                          help="write scatter.png, test-set latent means coloured by class")
    settings = parser.add_argument_group("picture settings")
    settings.add_argument("--grid", type=int, default=GRID,
                          help=f"manifold size, 2 to {MAX_GRID} (default {GRID})")
    settings.add_argument("--indices", type=int, nargs="+", metavar="I",
                          help="test images for --transition (default: the first of each class)")
    settings.add_argument("--interpolation", choices=INTERPOLATIONS, default="linear",
                          help="path between two latents (default linear)")
    settings.add_argument("--steps", type=int, default=STEPS,
                          help=f"frames from one digit to the next, 1 to {MAX_STEPS} "
                               f"(default {STEPS})")
    settings.add_argument("--seed", type=int, help="seed for sampling (default: the run's seed)")
    add_data_and_output(parser, "the files")
    return parser


def add_data_and_output(parser, what):
    """generate's and evaluate's --data-dir and --out, `what` naming what --out receives."""
    group = parser.add_argument_group("data and output")
    group.add_argument("--data-dir", default=None,
                       help="directory of the IDX files (default: the run's if it still "
                            "exists, then $TFVAE_DATA_DIR, then tensorflow-datasets)")
    group.add_argument("--out", help=f"directory for {what} (default: RUN_DIR; needed for "
                       "pretrained:NAME)")


def parse_generate(argv=None, prog="python -m tfvae.generate"):
    """The checked arguments of a `python -m tfvae.generate` command line."""
    args = generate_parser(prog).parse_args(argv)
    check_at_least("samples", args.samples)
    check_at_most("samples", args.samples, MAX_SAMPLES)
    check_at_least("grid", args.grid, 2)
    check_at_most("grid", args.grid, MAX_GRID)
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


def evaluate_parser(prog="python -m tfvae.evaluate"):
    """The flags of `python -m tfvae.evaluate` (and `tfvae evaluate`)."""
    parser = ArgumentParser(prog=prog, description="Scores a trained run in nats: the test "
                            "ELBO and the importance-weighted bound L_k (Burda et al. 2015), "
                            "written to eval.json in the run directory.", epilog=TF_LOG_NOTE)
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="directory of a `python -m tfvae.train` run, or pretrained:NAME, "
                        "a run shipped with tfvae (a wrong NAME lists them)")
    evaluation = parser.add_argument_group("evaluation")
    evaluation.add_argument("--k", type=int, default=5000,
                            help="importance samples per image; 5000 as in Burda et al. (2015)")
    evaluation.add_argument("--subset", type=int, default=None,
                            help="score only the first N test images (default: all)")
    evaluation.add_argument("--seed", type=int, default=0, help="seeds the importance samples")
    add_data_and_output(parser, "eval.json and eval_images.npz")
    speed = parser.add_argument_group("performance")
    speed.add_argument("--batch-size", type=int, default=EVAL_BATCH_SIZE,
                       help=f"images per compiled call (default: {EVAL_BATCH_SIZE})")
    speed.add_argument("--chunk", type=int, default=EVAL_CHUNK,
                       help=f"samples decoded at once per image; bounds memory (default: "
                       f"{EVAL_CHUNK})")
    speed.add_argument("--mixed-precision", action="store_true",
                       help="decode in bfloat16 (float16 on a GPU), the likelihoods and the "
                       "bound in float32: +0.01 nats on the default conv run; 1.1-1.3x as fast "
                       "on CPUs with AVX512-BF16, 0.55x on one without (docs: Speed)")
    return parser


def parse_evaluate(argv=None, prog="python -m tfvae.evaluate"):
    """The checked arguments of a `python -m tfvae.evaluate` command line."""
    args = evaluate_parser(prog).parse_args(argv)
    for name in ("k", "batch_size", "chunk", "subset"):
        check_at_least(name.replace("_", "-"), getattr(args, name))
    check_seed("seed", args.seed)
    return args


# command: (what it does, in one line; its parser)
COMMANDS = {
    "train": ("train a VAE or resume one (--recipe list: recipes)", parse_train),
    "generate": ("draw a trained run's samples, manifold, transitions", parse_generate),
    "evaluate": ("score a trained run: test ELBO and NLL in nats", parse_evaluate),
}


def parse_early(command):
    """Parses a starting `python -m tfvae.COMMAND`'s flags before TensorFlow is imported.

    Exits with one line on a flag error, and after --help or --recipe list; then imports
    TensorFlow without its C++ start-up lines.
    """
    _parse_or_exit(COMMANDS[command][1], sys.argv[1:])
    quiet.import_tensorflow()


def _parse_or_exit(parse, argv):
    """Runs a command's parser, a bad value ending the process with one line (status 2).

    Not exit_on_error, which would end the start-up's one-line Ctrl-C (tfvae/__init__.py).
    """
    try:
        parse(argv)
    except TfvaeError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def console_parser():
    """`tfvae`'s own flags: the commands, --help and --version."""
    parser = ArgumentParser(prog="tfvae", description="Variational autoencoders on MNIST-like "
                            "data with TensorFlow 2 and Keras 3.",
                            epilog="`tfvae COMMAND --help` lists a command's flags. "
                            + TF_LOG_NOTE)
    parser.add_argument("--version", action="version", version=f"tfvae {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (summary, _) in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv=None):
    """The `tfvae` console script: `tfvae train|generate|evaluate ...`.

    Returns None, which the script's `sys.exit(main())` turns into status 0 (a command's own
    return value, such as train's last metrics, would be printed and exit with status 1).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        console_parser().parse_args(argv[:1])  # prints help, the version or an error; exits
    name, argv, prog = argv[0], argv[1:], f"tfvae {argv[0]}"
    _parse_or_exit(functools.partial(COMMANDS[name][1], prog=prog), argv)
    quiet.import_tensorflow()
    module = importlib.import_module(f"tfvae.{name}")
    interrupted = getattr(module, "INTERRUPTED", RESUME_HINT)
    exit_on_error(functools.partial(module.main, prog=prog), interrupted)(argv)


if __name__ == "__main__":
    main()
