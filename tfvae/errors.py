"""The one exception users see, and the command-line wrapper that turns it into one line."""

import functools
import os
import re
import signal
import sys


class TfvaeError(Exception):
    """A mistake the user can fix: the message names the problem and the fix."""


class DataError(TfvaeError):
    """Missing, corrupt or mismatched data, with what to do about it."""


# Lines of a TensorFlow error raised in a compiled function that say where, not what.
GRAPH_CONTEXT = ("Graph execution error", "Detected at node", "<stack traces unavailable>", "[[")


def first_line(error):
    """The first line of an exception's message that says what went wrong (library errors
    can run to pages; TensorFlow's from a compiled function start by saying where), or its
    type."""
    lines = [line.strip() for line in str(error).splitlines()]
    said = [line for line in lines if line and not line.startswith(GRAPH_CONTEXT)]
    if not said:
        return type(error).__name__
    # tf.data names the pipeline first: "Error in user-defined function passed to MapDataset:1
    # transformation with iterator: Iterator::Root::...::ParallelMapV2: /x.png; No such file".
    return re.sub(r"^Error in user-defined function .*? with iterator: \S+: ", "", said[0])


RESUME_HINT = "interrupted: rerun the same command to resume from the last checkpoint"


def exit_on_error(main, interrupted=RESUME_HINT):
    """Wraps a `main(argv)` so a TfvaeError prints one line and exits with status 2.

    Ctrl-C prints `interrupted` on a line of its own (not glued to a progress bar) and exits
    with status 130.
    """

    @functools.wraps(main)
    def wrapped(argv=None):
        if signal.getsignal(signal.SIGINT) is quiet_interrupt:  # set in tfvae/__init__.py
            signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            return main(argv)
        except TfvaeError as error:
            _end_progress_line()
            # One line even when a path in it holds a newline.
            print("error: " + str(error).replace("\n", "\\n"), file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            # What the interrupt left half done (an image being written, say) is collected on
            # the way out, and its __del__ may complain with a traceback: the process is ending.
            sys.unraisablehook = lambda unraisable: None
            _end_progress_line()
            print(interrupted, file=sys.stderr)
            sys.exit(130)

    return wrapped


def _end_progress_line():
    """Ends a progress bar's unfinished line on a terminal, so a message starts on its own."""
    if sys.stdout.isatty():
        sys.stdout.write("\n")
    sys.stdout.flush()


def quiet_interrupt(signum, frame):
    """A SIGINT handler for start-up, before `main` runs: exit 130 with one line."""
    sys.stderr.write("interrupted\n")
    os._exit(130)
