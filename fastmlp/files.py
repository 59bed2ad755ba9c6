"""Files are written whole or not at all: into a temporary file beside the target, then renamed."""

import contextlib
import os
import pathlib
import tempfile


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the target's folder; on success rename it onto `path`.

    On any error the temporary file is removed and `path` is left as it was. The folder is created. A
    `path` that is a symbolic link is written through: its target is replaced, the link stays.
    """
    path = pathlib.Path(os.path.realpath(path)) if os.path.islink(path) else pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        yield pathlib.Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())       # mkstemp makes 0600; give the file the usual mode
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_csv(frame, path):
    """Write a pandas DataFrame to CSV atomically; returns the path."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)
    return path
