"""MongoDB GridFS (``STORAGE_URL=mongodb://host:port/db``) through pymongo's ``GridFSBucket``.

Our storage key is the GridFS filename. Writing a key again uploads a new revision and, once it
is complete, deletes the older ones, so a reader never sees a half-written object. Every file
document carries the caller's metadata (``file_type``, ``user_id``, ``job_id``,
``converted_from``, ``status``) plus ``content_type`` under ``metadata``.

Bytes move in chunks both ways (GridFS stores 255 KiB chunks; we copy 1 MiB at a time), so
memory stays flat whatever the size of the video. GridFS has no URLs: uploads and downloads go
through the ``jobs`` function, and ffmpeg reads a temporary copy (see ``media_source``).

Only the public pymongo/gridfs API is used, so the same code runs against a real ``mongod`` and
against mongomock's GridFS integration in tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

from vid2mp3 import private_files
from vid2mp3.errors import ConfigError, InvalidInput, NotFound, TransientError
from vid2mp3.ports import MediaSource, iter_chunks
from vid2mp3.storage.files import stream_file

if TYPE_CHECKING:
    from pymongo.database import Database

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
DEFAULT_BUCKET = "fs"
DEFAULT_DATABASE = "vid2mp3"
SUMMARIES = "summaries"
# A temp copy keeps the extension so ffmpeg's probe gets the same hint it would get locally.
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}$")
# Newest revision first; _id breaks ties between uploads in the same millisecond.
_NEWEST = [("uploadDate", -1), ("_id", -1)]


@contextmanager
def _reachable() -> Iterator[None]:
    """Turn "MongoDB is unreachable" into ``TransientError`` so event handlers retry."""
    from pymongo.errors import ConnectionFailure

    try:
        yield
    except ConnectionFailure as exc:
        raise TransientError(f"GridFS storage is unreachable: {exc}") from exc


class GridFSBlobStore:
    """Blobs in a GridFS bucket: a ``BlobStore``, and a ``SummaryArchive`` (the ``summaries``
    collection of the same database). No ``DirectTransfer``: GridFS has no URLs.

    Parameters:
        database: a pymongo ``Database`` (the client stays owned by the caller unless the store
            was made by ``from_url``, whose ``close()`` closes it).
        bucket: the GridFS bucket name (collections ``<bucket>.files`` and ``<bucket>.chunks``).
        temp_dir: where ``media_source`` writes its temporary copies (default: the system's).
    """

    def __init__(
        self, database: Database[Any], *, bucket: str = DEFAULT_BUCKET, temp_dir: str | None = None
    ) -> None:
        import gridfs

        self.database = database
        self.bucket_name = bucket
        self.temp_dir = temp_dir
        self._bucket = gridfs.GridFSBucket(database, bucket_name=bucket)
        self._files = database[f"{bucket}.files"]
        self._owned_client: Any = None

    @classmethod
    def from_url(cls, url: str, *, bucket: str = DEFAULT_BUCKET) -> GridFSBlobStore:
        """A store for ``mongodb://[user:pass@]host[:port]/db[?options]``; the database
        defaults to ``vid2mp3``. Does not connect yet: pymongo connects on first use."""
        try:
            import pymongo
        except ImportError as exc:
            raise ConfigError(
                f"STORAGE_URL={url.split('@')[-1]!r} needs pymongo: pip install 'vid2mp3[mongo]'"
            ) from exc
        try:
            client: Any = pymongo.MongoClient(url)
        except pymongo.errors.ConfigurationError as exc:
            raise ConfigError(f"STORAGE_URL is not a usable MongoDB URL: {exc}") from exc
        store = cls(client.get_default_database(DEFAULT_DATABASE), bucket=bucket)
        store._owned_client = client
        return store

    def close(self) -> None:
        if self._owned_client is not None:
            self._owned_client.close()

    def _check(self, key: str) -> str:
        if not key or not isinstance(key, str):
            raise InvalidInput(f"invalid storage key {key!r}")
        return key

    def _newest(self, key: str, **projection: int) -> dict[str, Any] | None:
        with _reachable():
            found: dict[str, Any] | None = self._files.find_one(
                {"filename": key}, projection=projection or None, sort=_NEWEST
            )
        return found

    def put_stream(
        self, key: str, stream: BinaryIO, *, content_type: str, metadata: Mapping[str, str]
    ) -> int:
        self._check(key)
        document = {**metadata, "content_type": content_type}
        with _reachable():
            grid_in = self._bucket.open_upload_stream(key, metadata=document)
            try:
                for chunk in iter_chunks(stream, CHUNK):
                    grid_in.write(chunk)
                grid_in.close()
            except BaseException:
                # Chunks written so far would stay orphaned (an upload refused past its limit
                # leaves nothing behind); a failing abort only leaves garbage, it must not hide
                # why the upload failed.
                with contextlib.suppress(Exception):
                    grid_in.abort()
                raise
            self._drop_revisions(key, keep=grid_in._id)
        return int(grid_in.length)

    def _drop_revisions(self, key: str, *, keep: Any) -> None:
        from gridfs.errors import NoFile

        for old in self._files.find({"filename": key, "_id": {"$ne": keep}}, projection={"_id": 1}):
            # Another writer may have removed the same revision already.
            with contextlib.suppress(NoFile):
                self._bucket.delete(old["_id"])

    # A file goes in as any stream does, chunk by chunk (storage/files.py).
    put_file = stream_file

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        from gridfs.errors import NoFile

        self._check(key)
        with _reachable():
            try:
                grid_out = self._bucket.open_download_stream_by_name(key)
            except NoFile:
                raise NotFound(f"no stored object {key!r}") from None
            try:
                yield grid_out  # type: ignore[misc]
            finally:
                grid_out.close()

    def size(self, key: str) -> int | None:
        found = self._newest(self._check(key), length=1)
        return None if found is None else int(found["length"])

    def metadata(self, key: str) -> dict[str, str] | None:
        """The metadata stored with ``key`` (plus ``content_type``), or ``None`` if missing."""
        found = self._newest(self._check(key), metadata=1)
        return None if found is None else dict(found.get("metadata") or {})

    def delete(self, key: str) -> None:
        self._check(key)
        with _reachable():
            self._drop_revisions(key, keep=None)

    @contextmanager
    def media_source(self, key: str) -> Iterator[MediaSource]:
        """A temporary local copy of ``key``, deleted when the block ends.

        GridFS has no URL ffmpeg could read, and piping to ffmpeg's stdin cannot seek: an MP4
        whose index (moov) sits at the end, which is what most phones and editors write, could
        not be read that way. A chunked copy to disk costs one file's worth of temp space and
        no memory, and works for every container.
        """
        suffix = _EXTENSION.search(key)
        with (
            self.open(key) as source,
            tempfile.TemporaryDirectory(prefix="vid2mp3-gridfs-", dir=self.temp_dir) as tmp,
        ):
            path = os.path.join(tmp, "source" + (suffix.group(0) if suffix else ""))
            with os.fdopen(private_files.create_file(path), "wb") as copy, _reachable():
                shutil.copyfileobj(source, copy, CHUNK)
            log.debug("gridfs object copied for ffmpeg", extra={"key": key})
            yield MediaSource(path)

    def record_summary(self, doc: Mapping[str, Any]) -> None:
        """Keep a summary document in the ``summaries`` collection. With a ``job_id`` it
        replaces that job's previous one, so a redelivered event stores it once."""
        document = dict(doc)
        summaries = self.database[SUMMARIES]
        with _reachable():
            if "job_id" in document:
                summaries.replace_one({"job_id": document["job_id"]}, document, upsert=True)
            else:
                summaries.insert_one(document)

    def forget_summary(self, job_id: str) -> None:
        with _reachable():
            self.database[SUMMARIES].delete_many({"job_id": job_id})
