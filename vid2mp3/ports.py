"""The ports: small protocols each outside system sits behind.

Adapters are named by technology (``storage/local.py``, ``bus/memory.py`` ...) and chosen by URL
in ``vid2mp3.bootstrap``, the composition root; the platform code (``vid2mp3.local``) builds
through it too. A capability only some stores have is a port of its own (``DirectTransfer``,
``SummaryArchive``), carried in ``Services`` as ``None`` where the store lacks it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from vid2mp3.events import Event


@dataclass(frozen=True)
class MediaSource:
    """Where ffmpeg reads a stored blob from: a local path, or a URL when ``network`` is true
    (then with the HTTP ``headers`` every request must carry: a presigned URL's signed ones)."""

    location: str
    network: bool = False
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredObject:
    """An object as the store identifies it: what ``complete`` checked and the converter reads.

    Attributes:
        size: its size in bytes.
        etag: its entity tag (S3 quotes it: ``"9b2c..."``).
        version_id: its version on a versioned bucket, else None.
    """

    size: int
    etag: str
    version_id: str | None = None


@dataclass(frozen=True)
class UploadTarget:
    """How a client uploads straight to storage (presigned URLs), bypassing the functions."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    expires_at: float = 0.0
    # Multipart uploads: one presigned URL per part, in order; empty for a single PUT.
    parts: tuple[str, ...] = ()
    part_size: int = 0
    upload_id: str = ""


class BlobStore(Protocol):
    """Videos and MP3s. Every method streams: nothing holds a whole object in memory."""

    def put_stream(
        self, key: str, stream: BinaryIO, *, content_type: str, metadata: Mapping[str, str]
    ) -> int:
        """Copy ``stream`` to ``key`` in chunks; returns the number of bytes stored."""
        ...

    def put_file(
        self, key: str, path: str, *, content_type: str, metadata: Mapping[str, str]
    ) -> int:
        """Store a local file under ``key``; returns its size."""
        ...

    def open(self, key: str) -> AbstractContextManager[BinaryIO]:
        """A readable binary stream of ``key``; raises ``NotFound``."""
        ...

    def size(self, key: str) -> int | None:
        """Size in bytes of ``key``, or ``None`` when it does not exist."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key``; a missing key is not an error."""
        ...

    def media_source(self, key: str) -> AbstractContextManager[MediaSource]:
        """Somewhere ffmpeg can read ``key`` from, valid inside the ``with`` block."""
        ...


class DirectTransfer(Protocol):
    """A store browsers upload to and download from directly, through presigned URLs (S3)."""

    def upload_target(
        self, key: str, *, size: int, content_type: str, expires_in: int
    ) -> UploadTarget:
        """Presigned upload instructions for ``key`` (a PUT, or multipart part URLs)."""
        ...

    def finish_upload(self, key: str, *, size: int) -> None:
        """Complete what ``upload_target`` started (a multipart upload), if anything."""
        ...

    def stored_object(self, key: str) -> StoredObject | None:
        """Size, ETag and version of ``key`` from one look, or ``None`` when it is missing."""
        ...

    def pinned_source(
        self, key: str, expected: StoredObject
    ) -> AbstractContextManager[MediaSource]:
        """Like ``BlobStore.media_source``, for exactly the ``expected`` object: raises
        ``SourceChanged`` (on entry, or instead of the block's error) once ``key`` holds
        another object, never a reading or format error."""
        ...

    def delete_prefix(self, prefix: str) -> None:
        """Remove every object (every version) under ``prefix`` and abort the multipart
        uploads to it, so no presigned part URL handed out for it still works."""
        ...

    def download_url(self, key: str, *, filename: str, expires_in: int) -> str:
        """A presigned GET URL that downloads ``key`` as ``filename``."""
        ...


class SummaryArchive(Protocol):
    """A store that keeps documents beside the files (GridFS: the ``summaries`` collection)."""

    def record_summary(self, doc: Mapping[str, Any]) -> None:
        """Insert or replace the summary document of ``doc["job_id"]``."""
        ...

    def forget_summary(self, job_id: str) -> None:
        """Remove the summary document of ``job_id``, if there is one (the job is deleted)."""
        ...


class EventSink(Protocol):
    """Where emitted CloudEvents go: an in-process bus, AMQP, or an HTTP broker ingress."""

    def publish(self, event: Event) -> None:
        """Hand ``event`` to the broker; returns only once the broker has accepted it."""
        ...


class Mailer(Protocol):
    def send(self, message: EmailMessageLike) -> None:
        """Deliver the message or raise ``TransientError``."""
        ...


class EmailMessageLike(Protocol):
    def __getitem__(self, name: str) -> str | None: ...

    def as_bytes(self) -> bytes: ...


class Summarizer(Protocol):
    """An AI service that turns speech into text and answers a question about that text.

    Both calls retry the service's temporary failures (429, 5xx, timeouts) themselves and raise
    a ``Vid2mp3Error`` whose message a user can read once they give up. What to ask, and how to
    check the answer, is the caller's business (``vid2mp3.summaries``).
    """

    #: Model names, recorded with each summary.
    transcribe_model: str
    summary_model: str

    def transcribe(self, audio_path: str, *, language: str | None = None) -> str:
        """The words spoken in the audio file at ``audio_path`` (within the upload limit);
        ``language`` forces the language (ISO 639-1)."""
        ...

    def summarize(self, transcript: str, *, instructions: str) -> str:
        """The model's raw answer to ``instructions`` about ``transcript``."""
        ...


def iter_chunks(stream: BinaryIO, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
    """Read ``stream`` in chunks until EOF."""
    while chunk := stream.read(chunk_size):
        yield chunk
