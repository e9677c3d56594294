"""The one exception users see, and the command-line wrapper that turns it into one line."""

import functools
import sys


class TfvaeError(Exception):
    """A mistake the user can fix: the message names the problem and the fix."""


def first_line(error):
    """The first line of an exception's message (library errors can run to pages), or its type."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def exit_on_error(main):
    """Wraps a `main(argv)` so a TfvaeError prints one line and exits with status 2."""

    @functools.wraps(main)
    def wrapped(argv=None):
        try:
            return main(argv)
        except TfvaeError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted: rerun the same command to resume from the last checkpoint",
                  file=sys.stderr)
            sys.exit(130)

    return wrapped
