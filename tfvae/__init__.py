"""tfvae: variational autoencoders on MNIST-like data with TensorFlow 2 and Keras 3."""

import os
import signal
import sys

from tfvae import quiet
from tfvae.errors import quiet_interrupt
from tfvae.version import __version__ as __version__

COMMANDS = ("train", "generate", "evaluate")
MODELS = ("ConvVAE", "MlpVAE")


def _starting_command():
    """What Python is starting: 'train', 'generate' or 'evaluate' for `python -m tfvae.X`,
    'cli' for `python -m tfvae.cli` or the `tfvae` console script, else None (an import)."""
    if os.path.basename(sys.argv[0]) == "tfvae":
        return "cli"
    if sys.argv[:1] != ["-m"]:  # runpy's argv[0] while it imports a -m module's package
        return None
    orig_argv = getattr(sys, "orig_argv", [])
    for flag, following in zip(orig_argv, orig_argv[1:] + [""]):
        if flag.startswith("-m"):
            module = flag[2:] or following
            command = module[len("tfvae."):] if module.startswith("tfvae.") else None
            return command if command in (*COMMANDS, "cli") else None
    return None


quiet.hide_log_lines()
_command = _starting_command()
if _command is not None and signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    # Ctrl-C while TensorFlow imports (seconds) exits with one line, not an import traceback;
    # `exit_on_error` restores the usual handler.
    signal.signal(signal.SIGINT, quiet_interrupt)
if _command in COMMANDS:
    # The command's module imports TensorFlow at its top: its flags are parsed first, so that
    # --help and flag errors answer without it. The models are imported after parsing.
    from tfvae import cli

    cli.parse_early(_command)
elif _command is None:
    # keras-hub's convention: `import tfvae` registers tfvae's classes, so that
    # keras.models.load_model finds them.
    quiet.import_tensorflow()
    from tfvae import models  # noqa: F401


def __getattr__(name):
    """`from tfvae import ConvVAE, MlpVAE`, also in a command that has not imported them."""
    if name in MODELS:
        from tfvae import models

        return getattr(models, name)
    raise AttributeError(f"module 'tfvae' has no attribute {name!r}")
