"""Keeps TensorFlow's C++ log lines off the terminal unless TFVAE_TF_LOG=1 asks for them."""

import os
import sys

# TensorFlow writes its start-up lines (absl's "All log messages before absl::InitializeLog()",
# oneDNN, cuda and CPU-feature notes) to file descriptor 2 while it is imported, whatever
# TF_CPP_MIN_LOG_LEVEL says (measured with TensorFlow 2.21); after that the level holds, and 3
# also hides the "failed call to cuInit" line of the first operation on a machine without GPU.
SHOW_LOG = os.environ.get("TFVAE_TF_LOG") == "1"


def hide_log_lines():
    """Sets TF_CPP_MIN_LOG_LEVEL=3 (errors are raised as Python exceptions all the same),
    unless the user set it or TFVAE_TF_LOG=1."""
    if not SHOW_LOG:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def import_tensorflow():
    """Imports TensorFlow with file descriptor 2 pointed at /dev/null, so its C++ start-up
    lines go nowhere; Python's own stderr (warnings, tracebacks, tfvae's lines) still shows."""
    if SHOW_LOG or "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no fd 2 (a daemon, some IDEs): import as is
        import tensorflow  # noqa: F401
        return
    python_stderr = sys.stderr
    try:
        if _writes_to_fd_2(python_stderr):
            sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1)
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        if sys.stderr is not python_stderr:
            sys.stderr.close()
            sys.stderr = python_stderr


def _writes_to_fd_2(stream):
    try:
        return stream.fileno() == 2
    except (AttributeError, OSError, ValueError):  # a notebook's or a test's capture
        return False
