"""The course notebooks' helpers: a quiet start, where the data comes from, each model trained
once per course, a run's facts printed from its Config, and `python -m tfvae.notebook` to run
them."""

import argparse
import collections
import contextlib
import dataclasses
import glob
import json
import os
import subprocess
import sys

from tfvae.errors import TfvaeError, exit_on_error, first_line

COURSE_FILE = "course.json"  # beside a run's own files: which notebook trained it
UNSET_HINT = "or leave TFVAE_DATA_DIR unset to use tensorflow-datasets"

TrainedRun = collections.namedtuple("TrainedRun", "path config model record")


@contextlib.contextmanager
def _stderr_to_devnull():
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_tensorflow():
    """Imports TensorFlow and finds its devices with the C++ start-up log (oneDNN notice, CUDA
    probes) sent to /dev/null: a kernel forwards that file descriptor into the notebook, and
    TF_CPP_MIN_LOG_LEVEL does not silence what is logged before absl is initialised. Python
    warnings and errors after this call show as usual, and tfvae's own errors as one line
    (`one_line_errors`). Returns the tensorflow module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # also its later C++ notices
    with _stderr_to_devnull():
        import tensorflow as tf

        tf.config.list_logical_devices()  # the CUDA probe happens here
    one_line_errors()
    return tf


def one_line_errors():
    """In IPython, shows a TfvaeError as its one line ("error: ..."), without the traceback: the
    message already names the problem and the fix. Elsewhere it does nothing."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return

    def show(shell, kind, error, traceback, tb_offset=None):
        print(f"error: {error}", file=sys.stderr)

    shell.set_custom_exc((TfvaeError,), show)


def data_dir(override=None):
    """The folder of IDX files the notebooks read (`override`, else $TFVAE_DATA_DIR), as an
    absolute path, or None for tensorflow-datasets; prints which it is.

    Raises TfvaeError, in one line naming the fix, if the folder does not exist or (a relative
    $TFVAE_DATA_DIR in a kernel started elsewhere) cannot be told apart from the kernel's folder.

    Args:
      override: a notebook's DATA_DIR parameter; None defers to $TFVAE_DATA_DIR.
    """
    chosen = override or os.environ.get("TFVAE_DATA_DIR")
    if not chosen:
        print("data: tensorflow-datasets (it downloads MNIST once and caches it)")
        return None
    if not os.path.isdir(chosen):
        where = "" if os.path.isabs(chosen) else f" (relative to {os.getcwd()}, this folder)"
        raise TfvaeError(f"data directory {chosen}{where} does not exist: point TFVAE_DATA_DIR at "
                         f"the folder holding mnist/ (an absolute path), {UNSET_HINT}")
    path = os.path.abspath(chosen)
    print(f"data: IDX files under {path}")
    return path


def same_config(stored, wanted):
    """Whether the run `stored` describes is the one `wanted` asks for, compared as the data
    resolves both: image size, channels and classes filled in (a stored config has them, a new
    one may say None), and the data's folder left out (the same files from anywhere).

    The one comparison the course makes; a config with "auto" values compares after
    `Config.resolved()` too.

    Args:
      stored: the Config in a run directory's config.json.
      wanted: the Config a notebook builds.
    """
    from tfvae import rundir

    def as_trained(config):
        return dataclasses.replace(rundir.with_data_shape(config.resolved()), data_dir=None)

    return as_trained(stored) == as_trained(wanted)


def trained_run(config, run_dir, notebook):
    """The finished run of `config` in `run_dir`: reused when one is there, else trained (or
    resumed) now, with a line per epoch. Prints which, and which notebook trained it.

    Args:
      config: the Config to train.
      run_dir: the run directory, shared by the notebooks that need the same model.
      notebook: the calling notebook's number ("02"), recorded when it trains the run.
    Returns:
      TrainedRun(path, config, model, record): the stored config, the model with its last
      checkpoint, and the last epoch's metrics.
    """
    from tfvae import checkpoints, files, rundir
    from tfvae.train import train_and_evaluate

    stored = _stored_config(run_dir)
    matches = stored is not None and same_config(stored, config)
    metrics = rundir.read_metrics(run_dir) if matches else []
    if matches and metrics and metrics[-1]["epoch"] == config.epochs:
        print(f"reusing {run_dir} (trained by notebook {_trainer(run_dir)}): same config")
    else:
        verb = "resuming" if metrics else "training"
        print(f"{verb} {run_dir}: {config.epochs} epochs, a line per epoch")
        train_and_evaluate(config, run_dir, overwrite=not matches, progress=False)
        files.write_json(os.path.join(run_dir, COURSE_FILE), {"notebook": notebook})
    run = checkpoints.load_run(run_dir)
    return TrainedRun(run_dir, run.config, run.model, rundir.read_metrics(run_dir)[-1])


def _stored_config(run_dir):
    from tfvae import rundir

    if not os.path.isfile(os.path.join(run_dir, rundir.CONFIG_FILE)):
        return None
    return rundir.load_config(run_dir)


def _trainer(run_dir):
    try:
        with open(os.path.join(run_dir, COURSE_FILE), encoding="utf-8") as f:
            return json.load(f)["notebook"]
    except (OSError, ValueError, KeyError):
        return "unknown"


def describe(config):
    """The facts of a run as its code will use them: model, data, objective, step, devices
    ('auto' values as `Config.resolved` decides them)."""
    import tensorflow as tf

    config = config.resolved()
    devices = ", ".join(d.name for d in tf.config.list_logical_devices()) or "none"
    objective = config.objective + (f" (k={config.k})" if config.objective == "iwae" else "")
    lines = [
        f"model {config.model}, latent_dim {config.latent_dim}"
        + (", conditional on the label" if config.conditional else ""),
        f"data {config.dataset}, binarization {config.binarize}, likelihood {config.likelihood}",
        f"objective {objective}, KL {config.kl}, beta {config.beta}",
        f"batch {config.batch_size}, Adam learning rate {config.learning_rate}, "
        f"{config.epochs} epochs",
        f"XLA {'on' if config.xla else 'off'}, devices: {devices}",
    ]
    return "\n".join(lines)


def run_notebooks(paths, output_dir):
    """Executes notebooks in order, each in its own folder, writing the executed copies into
    `output_dir`; stops at the first failing cell with one line naming it.

    $TFVAE_DATA_DIR is made absolute first (a relative path means the folder the command was
    started in, not the notebook's), and checked.

    Args:
      paths: the .ipynb files, run in the order given.
      output_dir: where the executed notebooks go (created if missing).
    """
    chosen = os.environ.get("TFVAE_DATA_DIR")
    if chosen:
        if not os.path.isdir(chosen):
            raise TfvaeError(f"TFVAE_DATA_DIR={chosen} does not exist: point it at the folder "
                             f"holding mnist/, {UNSET_HINT}")
        os.environ["TFVAE_DATA_DIR"] = os.path.abspath(chosen)
    try:
        import nbclient
        import nbformat
    except ImportError:
        raise TfvaeError("running the notebooks needs nbclient, nbformat and ipykernel: "
                         "pip install -e '.[dev]'") from None
    os.makedirs(output_dir, exist_ok=True)
    for path in paths:
        print(f"running {path} ...", flush=True)
        notebook = nbformat.read(path, as_version=4)
        client = nbclient.NotebookClient(notebook, timeout=None, kernel_name="python3",
                                         resources={"metadata": {"path": os.path.dirname(
                                             os.path.abspath(path))}})
        try:
            # The kernel's own stderr is its start-up chatter; what the cells print is kept.
            client.execute(stderr=subprocess.DEVNULL)
        except nbclient.exceptions.CellExecutionError as error:
            raise TfvaeError(f"{path} stopped in a cell: {_cell_error(notebook, error)} (the "
                             f"executed copy is in {output_dir})") from None
        finally:
            nbformat.write(notebook, os.path.join(output_dir, os.path.basename(path)))
        print(f"  wrote {os.path.join(output_dir, os.path.basename(path))}", flush=True)


def _cell_error(notebook, error):
    """The failing cell's own error line: tfvae's message, or the exception's first line."""
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.get("name") == "stderr" and output.get("text", "").startswith("error: "):
                return output["text"].strip()[len("error: "):]
    return f"{error.ename}: {first_line(error.evalue)}"


def _glob_all(patterns):
    return [path for pattern in patterns for path in (sorted(glob.glob(pattern)) or [pattern])]


@exit_on_error
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tfvae.notebook",
        description="Run the course notebooks in order, with their defaults.")
    parser.add_argument("notebooks", nargs="+", help="notebook files (a glob is expanded)")
    parser.add_argument("--output-dir", default="runs/notebooks",
                        help="where the executed notebooks go (default: %(default)s)")
    args = parser.parse_args(argv)
    missing = [p for p in _glob_all(args.notebooks) if not os.path.isfile(p)]
    if missing:
        raise TfvaeError(f"no notebook {missing[0]}: run from the repository root, "
                         "python -m tfvae.notebook notebooks/0*.ipynb")
    run_notebooks(_glob_all(args.notebooks), args.output_dir)


if __name__ == "__main__":
    main()
