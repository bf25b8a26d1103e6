"""Atomic file writes: a temporary file beside the target, fsynced, then renamed over it.

Until the rename the target keeps its previous content, so a kill or a full disk never leaves it half written.
Only regular files (or nothing) are replaced: a directory, FIFO, device or symlink at the target is refused.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import HW3Error

# fsync errors that only mean "this file system does not do fsync" (some FUSE mounts).
_FSYNC_UNSUPPORTED = (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP)


def reason(exc: OSError) -> str:
    """The short reason of an OSError ('No space left on device'), never 'None'."""
    return exc.strerror or str(exc) or type(exc).__name__


def check_target(path: Path) -> None:
    """HW3Error unless `path` is absent or a regular file (not a symlink, directory, FIFO or device)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise HW3Error(f"cannot inspect {path} ({reason(exc)}): choose another output path") from None
    if not stat.S_ISREG(mode):
        kind = "a symlink" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise HW3Error(f"refusing to write {path}: it is {kind}; remove it or choose another output path")


def _fsync(fd: int) -> None:
    """fsync that tolerates file systems without fsync, but not write errors (ENOSPC, EIO)."""
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _FSYNC_UNSUPPORTED:
            raise


def _fsync_dir(folder: Path) -> None:
    """Best effort: make a rename durable; silently skipped where directories cannot be fsynced."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _default_mode() -> int:
    """The mode a normally created file gets (0o666 minus the umask); mkstemp would give 0o600."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def write_bytes_atomic(path: str | Path, data: bytes, durable: bool = True) -> None:
    """Write `data` to `path` atomically (temp file in the same folder, fsync, rename); one-line HW3Error on failure.

    The temporary file is named `.NAME.*.tmp`; it is removed on any failure. Refuses a `path` that is a
    directory, FIFO, symlink or other non-regular file. durable=False skips both fsyncs (for caches whose
    entries are checksummed: a power cut may lose them but never leaves a half-written file in place).
    """
    path = Path(path)
    check_target(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise HW3Error(f"cannot write to {path.parent} ({reason(exc)}): choose a writable folder") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                _fsync(f.fileno())
        with contextlib.suppress(OSError):
            os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        kept = f"; the previous {path.name} is kept" if path.exists() else ""
        raise HW3Error(f"cannot write {path} ({reason(exc)}): free disk space or choose another folder{kept}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def write_text_atomic(path: str | Path, text: str) -> None:
    """`write_bytes_atomic` of `text` encoded as UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` for a writer that needs a file name (SQLite, matplotlib), renamed over
    `path` when the block succeeds and removed when it fails; it gets the mode a new file would (the umask).
    Refuses a `path` that is not a regular file, like `write_bytes_atomic`."""
    path = Path(path)
    check_target(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    temp = Path(name)
    try:
        temp.chmod(_default_mode())
        yield temp
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
