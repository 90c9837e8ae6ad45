"""State only its owner may read: the folders we create are 0700, the files 0600.

The embedded default keeps accounts, videos, MP3s and emails under ``VID2MP3_HOME`` on a
machine others may share. Modes are given where each file is created, rather than by a
process-wide umask, which would also change the files a user asks for (``vid2mp3 convert -o``)
and could race with other threads.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def make_dirs(path: str | Path) -> Path:
    """Create ``path`` and its missing parents, each 0700 (``Path.mkdir(parents=True)`` would
    give the parents the umask's mode, often 0755). Folders that exist are left as they are.
    """
    path = Path(path)
    missing: list[Path] = []
    here = path
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # another process or thread made it first
        os.chmod(folder, DIR_MODE)  # a umask can take bits away from mkdir's mode, never add
    return path


def create_file(path: str | Path) -> int:
    """A new file at ``path``, 0600, opened for writing; returns its descriptor. Raises
    ``FileExistsError`` when something is there already."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)


def touch(path: str | Path) -> None:
    """Create an empty 0600 file at ``path`` unless one is there (SQLite then gives its journal
    and WAL files the database's mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(create_file(path))


def is_private(path: str | Path) -> bool:
    """True when neither the group nor others may use the file at ``path``."""
    return os.stat(path).st_mode & 0o077 == 0
