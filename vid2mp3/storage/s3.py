"""S3 or MinIO (``STORAGE_URL=s3://bucket?endpoint=http://host:port&region=us-east-1``) via boto3.

The URL's query may carry:

``endpoint``
    the S3 API endpoint (MinIO, moto ...); omitted, boto3 talks to AWS.
``region``
    the signing region (default ``us-east-1``).
``public_endpoint``
    the endpoint clients reach, when it differs from the one the functions use (say
    ``http://minio:9000`` inside the cluster, ``https://files.example.com`` outside). Presigned
    upload and download URLs are signed for it; the converter's source URL is not.
``addressing``
    ``path`` (default when ``endpoint`` is set, which is what MinIO wants) or ``virtual``.

Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` /
``AWS_SESSION_TOKEN``, profiles, instance roles), or from files named by ``<KEY>_FILE``, e.g.
``AWS_ACCESS_KEY_ID_FILE`` (secrets mounted as files by Kubernetes and OpenFaaS).

The video never passes through a function: ``upload_target`` hands out a presigned PUT (below
``multipart_threshold``) or presigned multipart part URLs, and ``finish_upload`` completes a
multipart upload server-side from ``ListParts``, so the client only calls
``POST /jobs/<id>/complete``. Downloads are presigned GETs. ffmpeg reads the source over HTTP(S)
from a presigned GET and seeks with range requests, so even an MP4 with its index at the end is
read without a full download and no temp file is ever used. The MP3 goes up as a streaming
multipart upload holding one part in memory at a time.

A presigned URL cannot be revoked: the PUT still works after ``complete`` and after the job is
deleted, until it expires (``UPLOAD_URL_TTL``). So ``complete`` records the object it checked
(``stored_object``: ETag, and VersionId on a versioned bucket) and the converter reads only that
(``pinned_source``: the presigned GET signs ``If-Match``, which ffmpeg sends with every range
request, and carries ``versionId``); a replaced object fails the job as the owner's doing.
Deleting a job removes every version under its prefixes and aborts its multipart uploads
(``delete_prefix``), which also kills the part URLs handed out for them.

Object metadata values are percent-encoded (S3 sends metadata as HTTP headers, which only carry
ASCII) and decoded by ``metadata()``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, BinaryIO

from vid2mp3.config import read_secret
from vid2mp3.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    NotFound,
    SourceChanged,
    TransientError,
    Vid2mp3Error,
)
from vid2mp3.ports import MediaSource, StoredObject, UploadTarget
from vid2mp3.storage.files import stream_file

log = logging.getLogger(__name__)

MIB = 1024 * 1024
DEFAULT_REGION = "us-east-1"
DEFAULT_MULTIPART_THRESHOLD = 64 * MIB
# S3's floor for every part but the last is 5 MiB and its ceiling is 10,000 parts per upload.
MIN_PART_SIZE = 5 * MIB
MAX_PARTS = 10_000
# SigV4 presigned URLs live at most 7 days.
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
# Well past the longest upload-token lifetime a deployment would configure.
ABANDONED_UPLOAD_DAYS = 2
# Every printable ASCII character except the escape itself and the quotes, so typical values
# (ids, keys with slashes) stay readable in the S3 console.
_METADATA_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in '%"\\')
_MISSING = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
_PRECONDITION_FAILED = frozenset({"412", "PreconditionFailed"})
# S3-compatible servers without object versions answer ListObjectVersions with one of these.
_NO_VERSIONS = frozenset({"NotImplemented", "501", "MethodNotAllowed"})
CHANGED_AFTER_CHECK = "the upload changed after it was checked; upload it again"
_NO_BUCKET = frozenset({"404", "NoSuchBucket", "NotFound"})
_RETRYABLE = frozenset(
    {"SlowDown", "RequestTimeout", "ServiceUnavailable", "InternalError", "Throttling"}
)


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _status(exc: Any) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


@contextmanager
def _reachable() -> Iterator[None]:
    """Turn "S3 is down or overloaded" (after botocore's own retries) into ``TransientError``
    so event handlers retry; other errors are left alone for the caller to judge."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    try:
        yield
    except (ConnectionError, HTTPClientError) as exc:
        raise TransientError(f"S3 storage is unreachable: {exc}") from exc
    except ClientError as exc:
        if _status(exc) >= 500 or _code(exc) in _RETRYABLE:
            raise TransientError(f"S3 storage is unavailable: {_code(exc)}") from exc
        raise


def _encode_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    return {k: urllib.parse.quote(str(v), safe=_METADATA_SAFE) for k, v in metadata.items()}


def _content_disposition(filename: str) -> str:
    fallback = filename.encode("ascii", "replace").decode().replace('"', "'").replace("\\", "_")
    quoted = urllib.parse.quote(filename, safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quoted}"


def _read_part(stream: BinaryIO, size: int) -> bytearray:
    """Up to ``size`` bytes; short only at EOF (a socket stream returns what has arrived).

    Filled in place: collecting the pieces and joining them would hold the part twice.
    """
    part = bytearray(size)
    filled = 0
    with memoryview(part) as view:
        while filled < size:
            piece = stream.read(size - filled)
            if not piece:
                break
            view[filled : filled + len(piece)] = piece
            filled += len(piece)
    del part[filled:]
    return part


_client_lock = threading.Lock()


@functools.cache
def _botocore_session() -> Any:
    # Parsing the S3 service model costs ~0.4 s per new session; one session per process keeps
    # it once. Clients made from it are thread-safe, making them is not (hence the lock).
    import botocore.session

    return botocore.session.get_session()


def _make_client(**options: Any) -> Any:
    with _client_lock:
        return _botocore_session().create_client("s3", **options)


class S3BlobStore:
    """Blobs in one S3 bucket: a ``BlobStore``, and the only ``DirectTransfer`` (presigned
    uploads and downloads that bypass the functions).

    Parameters:
        bucket: the bucket name; created on start when missing (``create_bucket``).
        endpoint_url: the S3 API the functions talk to; ``None`` for AWS.
        public_endpoint_url: the endpoint presigned client URLs are signed for (default:
            ``endpoint_url``).
        region: the signing region.
        access_key_id, secret_access_key, session_token: explicit credentials; ``None`` uses
            botocore's chain (profiles, instance roles ...).
        addressing: ``"path"`` or ``"virtual"``; default ``"path"`` with an ``endpoint_url``.
        multipart_threshold: declared uploads of this size or more get presigned multipart
            part URLs instead of one presigned PUT.
        part_size: part size of the streaming uploads we make ourselves (``put_stream``); one
            part is the most ``put_stream`` holds in memory.
        client_part_size: smallest part size handed to clients for multipart uploads (grown
            when a file would need more than 10,000 parts).
        source_url_ttl: lifetime in seconds of the URL ffmpeg reads a source from; long
            enough for the slowest conversion.
        create_bucket: check for the bucket and create it if missing, now.

    Raises ``ConfigError`` for bad settings or a bucket we may not use, ``TransientError``
    when the endpoint is unreachable.
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str = DEFAULT_REGION,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        addressing: str | None = None,
        multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
        part_size: int = 8 * MIB,
        client_part_size: int = 16 * MIB,
        source_url_ttl: int = 6 * 3600,
        create_bucket: bool = True,
    ) -> None:
        try:
            from botocore.config import Config as BotoConfig
        except ImportError as exc:
            raise ConfigError(
                f"STORAGE_URL=s3://{bucket} needs boto3: pip install 'vid2mp3[s3]'"
            ) from exc
        if not bucket:
            raise ConfigError("STORAGE_URL=s3://BUCKET needs a bucket name")
        if min(part_size, client_part_size) < MIN_PART_SIZE:
            raise ConfigError(f"S3 part sizes must be at least {MIN_PART_SIZE} bytes (5 MiB)")
        if multipart_threshold <= 0:
            raise ConfigError("MULTIPART_THRESHOLD must be greater than zero")
        addressing = addressing or ("path" if endpoint_url else "auto")
        if addressing not in ("path", "virtual", "auto"):
            raise ConfigError(f"STORAGE_URL addressing={addressing!r}: use 'path' or 'virtual'")
        self.bucket = bucket
        self.multipart_threshold = multipart_threshold
        self.part_size = part_size
        self.client_part_size = client_part_size
        self.source_url_ttl = min(source_url_ttl, MAX_PRESIGN_SECONDS)
        config = BotoConfig(
            signature_version="s3v4",
            s3={"addressing_style": addressing},
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=10,
            read_timeout=60,
            # MinIO and other S3-compatible servers do not all know the CRC trailers newer
            # botocore adds by default; plain requests work everywhere.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        client_options = {
            "region_name": region,
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "aws_session_token": session_token,
            "config": config,
        }
        self._client: Any = _make_client(endpoint_url=endpoint_url, **client_options)
        self._public: Any = (
            _make_client(endpoint_url=public_endpoint_url, **client_options)
            if public_endpoint_url and public_endpoint_url != endpoint_url
            else self._client
        )
        if create_bucket:
            self._ensure_bucket(region)

    @classmethod
    def from_url(
        cls, url: str, *, env: Mapping[str, str] | None = None, **options: Any
    ) -> S3BlobStore:
        """A store for ``s3://bucket?endpoint=...&region=...`` (see the module docstring).

        Credentials come from ``env`` (default: the process environment) or botocore's chain;
        ``options`` are further constructor arguments (``multipart_threshold=``, ...).
        """
        env = os.environ if env is None else env
        parts = urllib.parse.urlsplit(url)
        query = dict(urllib.parse.parse_qsl(parts.query))
        unknown = set(query) - {"endpoint", "region", "public_endpoint", "addressing"}
        if unknown:
            raise ConfigError(
                f"STORAGE_URL has unknown options {sorted(unknown)}; "
                "known: endpoint, region, public_endpoint, addressing"
            )
        return cls(
            parts.netloc,
            endpoint_url=query.get("endpoint") or None,
            public_endpoint_url=query.get("public_endpoint") or None,
            region=query.get("region") or env.get("AWS_REGION") or DEFAULT_REGION,
            # An unset key reads as ""; botocore would sign with that instead of using its chain.
            access_key_id=read_secret(env, "AWS_ACCESS_KEY_ID") or None,
            secret_access_key=read_secret(env, "AWS_SECRET_ACCESS_KEY") or None,
            session_token=read_secret(env, "AWS_SESSION_TOKEN") or None,
            addressing=query.get("addressing"),
            **options,
        )

    def _ensure_bucket(self, region: str) -> None:
        from botocore.exceptions import ClientError

        with _reachable():
            try:
                self._client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                if _code(exc) not in _NO_BUCKET:
                    raise ConfigError(
                        f"S3 bucket {self.bucket!r} cannot be used ({_code(exc)}); "
                        "check the credentials and the bucket policy"
                    ) from exc
            options: dict[str, Any] = {}
            if region != DEFAULT_REGION:
                options["CreateBucketConfiguration"] = {"LocationConstraint": region}
            try:
                self._client.create_bucket(Bucket=self.bucket, **options)
            except ClientError as exc:
                # Another function instance starting at the same time may have won the race.
                if _code(exc) == "BucketAlreadyOwnedByYou":
                    return
                if _code(exc) == "BucketAlreadyExists":
                    raise ConfigError(
                        f"S3 bucket name {self.bucket!r} is taken by another account"
                    ) from exc
                raise
            log.info("bucket created", extra={"bucket": self.bucket})
            self._expire_abandoned_uploads()

    def _expire_abandoned_uploads(self) -> None:
        """Have S3 drop multipart uploads nobody finished (a client that gave up after
        ``upload-init``); only on a bucket we created, whose rules are ours to set."""
        from botocore.exceptions import ClientError

        rule = {
            "ID": "vid2mp3-abandoned-uploads",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABANDONED_UPLOAD_DAYS},
        }
        try:
            self._client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": [rule]}
            )
        except ClientError as exc:
            # Some S3-compatible servers expire stale uploads on their own instead (MinIO).
            log.warning(
                "bucket lifecycle rule refused; abandoned multipart uploads stay until deleted",
                extra={"bucket": self.bucket, "error": _code(exc)},
            )

    def _check(self, key: str) -> str:
        if not key or not isinstance(key, str) or len(key.encode()) > 1024:
            raise InvalidInput(f"invalid storage key {key!r}")
        return key

    # --- bytes through us ---------------------------------------------------------------------

    def put_stream(
        self, key: str, stream: BinaryIO, *, content_type: str, metadata: Mapping[str, str]
    ) -> int:
        """Copy ``stream`` to ``key``: one PUT when it fits in a part, else a multipart upload
        sent part by part (aborted on failure). Holds at most one part in memory."""
        self._check(key)
        extra = {"ContentType": content_type, "Metadata": _encode_metadata(metadata)}
        part = _read_part(stream, self.part_size)
        with _reachable():
            if len(part) < self.part_size:
                self._client.put_object(Bucket=self.bucket, Key=key, Body=part, **extra)
                return len(part)
            started = self._client.create_multipart_upload(Bucket=self.bucket, Key=key, **extra)
            upload_id = started["UploadId"]
            try:
                total = self._send_parts(key, upload_id, stream, part)
            except BaseException:
                # A dangling multipart upload is billed storage nobody can see.
                with contextlib.suppress(Exception):
                    self._client.abort_multipart_upload(
                        Bucket=self.bucket, Key=key, UploadId=upload_id
                    )
                raise
        return total

    def _send_parts(self, key: str, upload_id: str, stream: BinaryIO, part: bytearray) -> int:
        sent: list[dict[str, Any]] = []
        total = 0
        while part:
            number = len(sent) + 1
            if number > MAX_PARTS:
                raise InvalidInput(
                    f"the object is larger than {MAX_PARTS} parts of {self.part_size} bytes"
                )
            answer = self._client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
            )
            sent.append({"PartNumber": number, "ETag": answer["ETag"]})
            total += len(part)
            # Free the sent part before reading the next, so only one is ever held; clear()
            # frees the buffer even though put_stream still refers to the first part.
            part.clear()
            part = _read_part(stream, self.part_size)
        self._client.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": sent}
        )
        return total

    # A file goes up as any stream does, holding one part at a time (storage/files.py).
    put_file = stream_file

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        from botocore.exceptions import ClientError

        self._check(key)
        with _reachable():
            try:
                answer = self._client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    raise NotFound(f"no stored object {key!r}") from None
                raise
            body = answer["Body"]
            try:
                yield body
            finally:
                body.close()

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        with _reachable():
            try:
                head: dict[str, Any] = self._client.head_object(
                    Bucket=self.bucket, Key=self._check(key)
                )
            except ClientError as exc:
                if _code(exc) in _MISSING:
                    return None
                raise
        return head

    def size(self, key: str) -> int | None:
        head = self._head(key)
        return None if head is None else int(head["ContentLength"])

    def stored_object(self, key: str) -> StoredObject | None:
        """Size, ETag and (versioned bucket) VersionId of ``key`` from one HEAD, so the size
        ``complete`` checks and the identity it records belong to the same object."""
        head = self._head(key)
        if head is None:
            return None
        return StoredObject(
            size=int(head["ContentLength"]),
            etag=str(head["ETag"]),
            version_id=head.get("VersionId") or None,
        )

    def metadata(self, key: str) -> dict[str, str] | None:
        """The metadata stored with ``key`` (plus ``content_type``), or ``None`` if missing.
        An object uploaded by a client through a presigned URL has only ``content_type``."""
        head = self._head(key)
        if head is None:
            return None
        decoded = {k: urllib.parse.unquote(v) for k, v in head.get("Metadata", {}).items()}
        return {**decoded, "content_type": head.get("ContentType", "")}

    def delete(self, key: str) -> None:
        """Remove ``key`` and any unfinished multipart upload to it (S3 deletes are
        idempotent: a missing key is not an error)."""
        self._check(key)
        with _reachable():
            self._client.delete_object(Bucket=self.bucket, Key=key)
            for upload in self._pending_uploads(key):
                self._abort(key, upload["UploadId"])

    def delete_prefix(self, prefix: str) -> None:
        """Abort every multipart upload under ``prefix`` (their part URLs then answer
        NoSuchUpload) and remove every object under it: each version and delete marker on a
        versioned bucket, where a plain delete would only hide the data."""
        self._check(prefix)
        with _reachable():
            pages = self._client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            for upload in (u for page in pages for u in page.get("Uploads", [])):
                self._abort(upload["Key"], upload["UploadId"])
            for key, version_id in self._everything_under(prefix):
                options = {"VersionId": version_id} if version_id else {}
                self._client.delete_object(Bucket=self.bucket, Key=key, **options)
        log.info("prefix deleted", extra={"prefix": prefix})

    def _everything_under(self, prefix: str) -> list[tuple[str, str | None]]:
        """(key, version id) of each version and delete marker under ``prefix``; (key, None)
        for each object where the server keeps no versions."""
        from botocore.exceptions import ClientError

        try:
            pages = self._client.get_paginator("list_object_versions").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            return [
                (entry["Key"], entry.get("VersionId"))
                for page in pages
                for entry in (*page.get("Versions", []), *page.get("DeleteMarkers", []))
            ]
        except ClientError as exc:
            if _code(exc) not in _NO_VERSIONS:
                raise
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        )
        return [(entry["Key"], None) for page in pages for entry in page.get("Contents", [])]

    # --- bytes around us ----------------------------------------------------------------------

    @contextmanager
    def media_source(self, key: str) -> Iterator[MediaSource]:
        """A presigned GET that ffmpeg reads over HTTP(S) (``network=True``).

        ffmpeg's http protocol seeks with range requests, so containers that need seeking (MP4
        with its moov at the end, MKV cues) work without downloading the file first; no temp
        file is used for any container. The URL is signed for the internal endpoint and lives
        ``source_url_ttl`` seconds.
        """
        if self.size(key) is None:
            raise NotFound(f"no stored object {key!r}")
        url = self._client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=self.source_url_ttl,
        )
        yield MediaSource(url, network=True)

    @contextmanager
    def pinned_source(self, key: str, expected: StoredObject) -> Iterator[MediaSource]:
        """A presigned GET of exactly ``expected``: its signed ``If-Match`` goes with every
        request ffmpeg makes (``MediaSource.headers``), and its ``versionId`` too when the
        bucket keeps versions (then a later PUT makes a new version and this one still reads).

        Raises ``SourceChanged`` when ``key`` holds another object: on entry, or in place of
        the error the block raised once a second look shows the object changed (ffmpeg only
        reports an anonymous 4xx, or a short read when the swap came mid-file). ``NotFound``
        when it is gone.
        """
        self._require(key, expected)
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key, "IfMatch": expected.etag}
        if expected.version_id:
            params["VersionId"] = expected.version_id
        url = self._client.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=self.source_url_ttl
        )
        try:
            yield MediaSource(url, network=True, headers={"If-Match": expected.etag})
        except SourceChanged:
            raise
        except Vid2mp3Error as exc:
            try:
                self._require(key, expected)
            except (SourceChanged, NotFound) as changed:
                raise changed from exc
            except Vid2mp3Error:
                pass  # S3 unreachable for the second look: the block's own error stands
            raise

    def _require(self, key: str, expected: StoredObject) -> None:
        from botocore.exceptions import ClientError

        options: dict[str, Any] = {"IfMatch": expected.etag}
        if expected.version_id:
            options["VersionId"] = expected.version_id
        with _reachable():
            try:
                self._client.head_object(Bucket=self.bucket, Key=self._check(key), **options)
            except ClientError as exc:
                if _code(exc) in _PRECONDITION_FAILED:
                    raise SourceChanged(CHANGED_AFTER_CHECK) from None
                if _code(exc) in _MISSING:
                    raise NotFound(f"no stored object {key!r}") from None
                raise

    def upload_target(
        self, key: str, *, size: int, content_type: str, expires_in: int
    ) -> UploadTarget:
        """A presigned PUT for ``size`` below ``multipart_threshold``; else a started multipart
        upload with one presigned PUT URL per part (``parts``, each ``part_size`` bytes but the
        last), finished by ``finish_upload``.

        The PUT signs ``Content-Type`` and ``Content-Length``: the client must send both as
        given in ``headers`` (HTTP libraries set Content-Length from the body), and S3 refuses
        a different type or size. Each part URL signs its exact length too.

        Always returns a target. Raises ``InvalidInput`` for an invalid key or size, and
        ``TransientError`` when S3 cannot start the multipart upload.
        """
        self._check(key)
        if size <= 0:
            raise InvalidInput("size must be the file's size in bytes (a positive integer)")
        expires_in = max(1, min(expires_in, MAX_PRESIGN_SECONDS))
        expires_at = time.time() + expires_in
        if size < self.multipart_threshold:
            url = self._public.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ContentType": content_type,
                    "ContentLength": size,
                },
                ExpiresIn=expires_in,
                HttpMethod="PUT",
            )
            headers = {"Content-Type": content_type, "Content-Length": str(size)}
            return UploadTarget(method="PUT", url=url, headers=headers, expires_at=expires_at)
        part_size = max(self.client_part_size, math.ceil(size / MAX_PARTS / MIB) * MIB)
        count = math.ceil(size / part_size)
        with _reachable():
            upload_id = self._client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ContentType=content_type
            )["UploadId"]
        urls = tuple(
            self._public.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "UploadId": upload_id,
                    "PartNumber": number,
                    "ContentLength": min(part_size, size - (number - 1) * part_size),
                },
                ExpiresIn=expires_in,
                HttpMethod="PUT",
            )
            for number in range(1, count + 1)
        )
        log.info("multipart upload started", extra={"key": key, "parts": count})
        return UploadTarget(
            method="PUT",
            url="",
            headers={},
            expires_at=expires_at,
            parts=urls,
            part_size=part_size,
            upload_id=upload_id,
        )

    def finish_upload(self, key: str, *, size: int) -> None:
        """Complete the client's multipart upload to ``key`` from the parts S3 holds (no client
        ETags needed). Nothing to do after a single PUT or when already completed, so calling
        it again is harmless.

        Raises ``Conflict`` when the parts uploaded so far do not add up to ``size``; the
        upload stays open so the client can send the missing parts and try again.
        """
        from botocore.exceptions import ClientError

        self._check(key)
        with _reachable():
            pending = sorted(self._pending_uploads(key), key=lambda u: u["Initiated"])
            if not pending:
                return
            # An older upload to the same key was abandoned (upload-init called again).
            for stale in pending[:-1]:
                self._abort(key, stale["UploadId"])
            upload_id = pending[-1]["UploadId"]
            parts = self._uploaded_parts(key, upload_id)
            received = sum(p["Size"] for p in parts)
            if received != size:
                raise Conflict(
                    f"the multipart upload holds {len(parts)} parts with {received} bytes but "
                    f"{size} were declared; upload the missing parts, then complete again"
                )
            try:
                self._client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={
                        "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]
                    },
                )
            except ClientError as exc:
                if _code(exc) in ("EntityTooSmall", "InvalidPart", "InvalidPartOrder"):
                    raise InvalidInput(
                        f"the uploaded parts cannot be joined ({_code(exc)}); every part but "
                        "the last must be part_size bytes"
                    ) from exc
                raise
        log.info("multipart upload completed", extra={"key": key, "parts": len(parts)})

    def _pending_uploads(self, key: str) -> list[dict[str, Any]]:
        answer = self._client.list_multipart_uploads(Bucket=self.bucket, Prefix=key)
        return [u for u in answer.get("Uploads", []) if u["Key"] == key]

    def _uploaded_parts(self, key: str, upload_id: str) -> list[dict[str, Any]]:
        pages = self._client.get_paginator("list_parts").paginate(
            Bucket=self.bucket, Key=key, UploadId=upload_id
        )
        return sorted(
            (part for page in pages for part in page.get("Parts", [])),
            key=lambda p: p["PartNumber"],
        )

    def _abort(self, key: str, upload_id: str) -> None:
        from botocore.exceptions import ClientError

        try:
            self._client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload":
                raise

    def download_url(self, key: str, *, filename: str, expires_in: int) -> str:
        """A presigned GET that makes browsers save the object as ``filename``.

        Signed locally without asking S3, so it never fails for a missing key: the URL then
        answers 404. Raises ``InvalidInput`` for an invalid key.
        """
        self._check(key)
        return str(
            self._public.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": key,
                    "ResponseContentDisposition": _content_disposition(filename),
                },
                ExpiresIn=max(1, min(expires_in, MAX_PRESIGN_SECONDS)),
            )
        )
