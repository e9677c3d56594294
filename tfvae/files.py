"""Atomic file writes: a kill at any moment leaves the old file or the new one, never a torn one.

A failed write (full disk, file-size limit, a directory in the way) becomes one TfvaeError that
names the path and the OS's reason; the file that was there before is left as it was.
"""

import contextlib
import json
import os
import tempfile

from tfvae.errors import TfvaeError

TEMP_PREFIX = ".tfvae-tmp."  # hidden temporary files; tfvae removes leftovers of killed runs


@contextlib.contextmanager
def atomic_path(path):
    """Yields a temporary path beside `path`; renames it onto `path` only if the block succeeds."""
    directory, name = os.path.split(os.path.abspath(path))
    suffix = os.path.splitext(name)[1]  # writers such as imageio pick the format from it
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{name}.", suffix=suffix, dir=directory)
        os.close(fd)
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        os.replace(tmp, path)
    except OSError as error:
        raise write_error(path, error) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def write_error(path, error):
    """The one-line TfvaeError for an OSError met while writing `path`."""
    reason = error.strerror or type(error).__name__
    return TfvaeError(f"could not write {path}: {reason}; nothing already there was changed: "
                      "free space or fix the path, then rerun the same command")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path, text):
    """Writes `text` to `path` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)


def write_json(path, obj):
    """Writes `obj` as indented, key-sorted JSON to `path` atomically.

    Refuses NaN and infinities (which JSON cannot hold), leaving the file that was there.
    """
    try:
        text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)
    except ValueError:
        raise TfvaeError(f"refusing to write non-finite numbers to {path}; the file that was "
                         "there is kept") from None
    write_text(path, text + "\n")


def append_line(path, line):
    """Appends one line, written whole and synced; a failed append is cut back off."""
    data = (line + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as error:
        raise write_error(path, error) from None
    try:
        size = os.fstat(fd).st_size
        try:
            if os.write(fd, data) != len(data):
                raise OSError(28, "No space left on device")
            os.fsync(fd)
        except OSError as error:
            os.ftruncate(fd, size)
            raise write_error(path, error) from None
    finally:
        os.close(fd)
