"""A folder on disk (``STORAGE_URL=file:///path``): the embedded default.

What it creates is private (folders 0700, files 0600, ``vid2mp3.private_files``). A partial
write, such as an upload refused past its limit, lives in a temporary file beside its key and
is removed when the write fails, so a reader never sees it and it never stays on disk.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from vid2mp3 import private_files
from vid2mp3.errors import InvalidInput, NotFound
from vid2mp3.ports import MediaSource
from vid2mp3.storage.files import stream_file

CHUNK = 1024 * 1024


class LocalBlobStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        private_files.make_dirs(self.root)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not key or self.root.resolve() not in path.parents:
            raise InvalidInput(f"invalid storage key {key!r}")
        return path

    def _atomic_write(self, key: str) -> tuple[Path, BinaryIO, str]:
        path = self._path(key)
        private_files.make_dirs(path.parent)
        # mkstemp's file is 0600.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".part-")
        return path, os.fdopen(fd, "wb"), tmp

    def put_stream(
        self, key: str, stream: BinaryIO, *, content_type: str, metadata: Mapping[str, str]
    ) -> int:
        path, out, tmp = self._atomic_write(key)
        try:
            with out:
                shutil.copyfileobj(stream, out, CHUNK)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
        return path.stat().st_size

    def put_file(
        self, key: str, path: str, *, content_type: str, metadata: Mapping[str, str]
    ) -> int:
        dest = self._path(key)
        private_files.make_dirs(dest.parent)
        dest.unlink(missing_ok=True)
        # A link shares the file's mode: only a private file is linked, as its mode must not be
        # changed (it may be the user's own video, from ``vid2mp3 convert``).
        if private_files.is_private(path):
            try:
                # Same filesystem: a hard link costs nothing, however big the video.
                os.link(path, dest)
                return dest.stat().st_size
            except OSError:
                pass  # another filesystem, or one without hard links
        # Copied, the bytes land in a 0600 file of our own.
        return stream_file(self, key, path, content_type=content_type, metadata=metadata)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            f = self._path(key).open("rb")
        except FileNotFoundError:
            raise NotFound(f"no stored object {key!r}") from None
        with f:
            yield f

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    @contextmanager
    def media_source(self, key: str) -> Iterator[MediaSource]:
        path = self._path(key)
        if not path.exists():
            raise NotFound(f"no stored object {key!r}")
        yield MediaSource(str(path))
