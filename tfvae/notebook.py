"""Helpers for the companion notebooks: a quiet TensorFlow start-up, and a run's facts printed
from its Config rather than written by hand."""

import contextlib
import os


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
    warnings and errors after this call show as usual. Returns the tensorflow module."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # also its later C++ notices
    with _stderr_to_devnull():
        import tensorflow as tf

        tf.config.list_logical_devices()  # the CUDA probe happens here
    return tf


def describe(config):
    """The facts of a run as its code will use them: model, data, objective, step, devices."""
    import tensorflow as tf

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
