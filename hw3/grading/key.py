"""The course key: the secret from which the grader draws every student's inputs (`exercises.base.seed_of`).

Kept in a file only the instructor can read (mode 0600). The same key gives the same inputs on a regrade;
without it a student cannot predict them. `hw3 grade` reads --key-file, else $HW3_GRADING_KEY (a file
path), else `.hw3-grading-key` in the current folder, created on first use.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from hw3.errors import HW3Error

DEFAULT_KEY_FILE = Path(".hw3-grading-key")
KEY_BYTES = 32


class KeyFileError(HW3Error):
    """The key file cannot be used; one line naming the fix."""


def key_path(explicit: Path | None) -> Path:
    """Where the course key lives: the explicit path, $HW3_GRADING_KEY, or ./.hw3-grading-key."""
    if explicit is not None:
        return Path(explicit)
    env = os.environ.get("HW3_GRADING_KEY")
    return Path(env) if env else DEFAULT_KEY_FILE


def load_key(path: Path, create: bool = True) -> bytes:
    """The key stored at `path` (hex), created with mode 0600 when missing and `create`."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise KeyFileError(f"the key file {path} is not a regular file: pass --key-file with the course's key file")
    if not path.exists():
        if not create:
            raise KeyFileError(f"no course key at {path}: pass --key-file with the course's key file")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(KEY_BYTES) + "\n")
    try:
        text = path.read_text().strip()
        key = bytes.fromhex(text)
    except (OSError, ValueError):
        raise KeyFileError(f"{path} does not hold a course key (hex): restore it or pass --key-file") from None
    if len(key) < 16:
        raise KeyFileError(f"the course key in {path} is too short: use at least 16 random bytes (32 hex digits)")
    return key
