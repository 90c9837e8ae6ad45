"""A folder on disk (``STORAGE_URL=file:///path``): the embedded default."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from vid2mp3.errors import InvalidInput, NotFound
from vid2mp3.ports import MediaSource
from vid2mp3.storage.files import stream_file

CHUNK = 1024 * 1024


class LocalBlobStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not key or self.root.resolve() not in path.parents:
            raise InvalidInput(f"invalid storage key {key!r}")
        return path

    def _atomic_write(self, key: str) -> tuple[Path, BinaryIO, str]:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
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
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.unlink(missing_ok=True)
        try:
            # Same filesystem: a hard link costs nothing, however big the video.
            os.link(path, dest)
            return dest.stat().st_size
        except OSError:
            # Another filesystem, or one without hard links: copy the bytes instead.
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
