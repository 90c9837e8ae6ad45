"""Getting a video in: check what the client declares, create the job, say where to upload,
receive the bytes (local folder / GridFS), and verify and announce the upload (``complete``)."""

from __future__ import annotations

import logging
import re
import time
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from vid2mp3 import auth, bodies, events, jobs, media, users
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.errors import Conflict, InvalidInput, PayloadTooLarge, Unauthorized
from vid2mp3.model import ConversionOptions, Job, JobState
from vid2mp3.services import Services
from vid2mp3.speech import languages

log = logging.getLogger(__name__)

#: Extensions we accept; ffmpeg's probe decides in the end, this only turns away the obvious.
VIDEO_EXTENSIONS = frozenset(
    [
        "mp4",
        "m4v",
        "mov",
        "mkv",
        "webm",
        "avi",
        "flv",
        "ts",
        "mts",
        "m2ts",
        "mpg",
        "mpeg",
        "wmv",
        "asf",
        "ogv",
        "3gp",
        "3g2",
    ]
)
AUDIO_EXTENSIONS = frozenset(["mp3", "m4a", "aac", "wav", "ogg", "oga", "opus", "flac", "wma"])
_GENERIC_TYPES = frozenset(
    {"application/octet-stream", "application/mp4", "application/x-matroska", "application/ogg"}
)


# The widths of the jobs columns (infra/sql/001_initial.sql) that what the client declares
# goes into: a longer value would be a 400 on SQLite but a crash on MariaDB.
MAX_CONTENT_TYPE = 127  # jobs.content_type
# jobs.video_key is VARCHAR(255) and holds "videos/<job id>/<filename>"; a filename is also a
# file name on disk, where 255 bytes is the usual most.
MAX_FILENAME_CHARS = 255 - len("videos/") - 36 - 1
MAX_FILENAME_BYTES = 255
_EXTENSION = re.compile(r"\.[^.\s]{1,16}$")


def sanitize_filename(name: Any) -> str:
    """The last path part of ``name``, without control characters; a name longer than
    ``MAX_FILENAME_CHARS`` characters (or ``MAX_FILENAME_BYTES`` bytes) loses the end of its
    stem, never its extension."""
    if not isinstance(name, str):
        raise InvalidInput("filename must be a string")
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(
        c for c in unicodedata.normalize("NFC", base) if unicodedata.category(c)[0] != "C"
    )
    base = base.strip().strip(".")
    if not base:
        raise InvalidInput("filename is empty once path parts are removed")
    return _shortened(base)


def _shortened(name: str) -> str:
    def fits(text: str) -> bool:
        return len(text) <= MAX_FILENAME_CHARS and len(text.encode()) <= MAX_FILENAME_BYTES

    if fits(name):
        return name
    found = _EXTENSION.search(name)
    ext = found.group(0) if found else ""
    stem = name[: min(len(name) - len(ext), MAX_FILENAME_CHARS - len(ext))]
    while stem and not fits(stem + ext):
        stem = stem[:-1]
    stem = stem.rstrip(" .")
    if not stem:
        raise InvalidInput(f"filename must be at most {MAX_FILENAME_CHARS} characters")
    return stem + ext


def check_upload(filename: str, size: Any, content_type: Any, max_bytes: int) -> None:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext not in VIDEO_EXTENSIONS | AUDIO_EXTENSIONS:
        raise InvalidInput(
            f"'.{ext}' files are not accepted; upload a video such as .mp4, .mkv, .webm, .mov or .avi"
            if ext
            else "the filename needs an extension such as .mp4"
        )
    if isinstance(content_type, str) and len(content_type) > MAX_CONTENT_TYPE:
        raise InvalidInput(f"content_type must be at most {MAX_CONTENT_TYPE} characters")
    if not isinstance(content_type, str) or not (
        content_type.startswith(("video/", "audio/")) or content_type in _GENERIC_TYPES
    ):
        raise InvalidInput(f"content type {content_type!r} is not a video or audio type")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise InvalidInput("size must be the file's size in bytes (a positive integer)")
    if size > max_bytes:
        raise PayloadTooLarge(
            f"the file is {size} bytes; the limit is {max_bytes} bytes ({max_bytes / 2**30:.1f} GiB)"
        )


def parse_options(raw: Any) -> ConversionOptions:
    """The conversion options of an upload; the bitrate and quality rules are the media
    layer's (``vid2mp3.media.encoding``), the one place they are written."""
    if raw is None:
        return ConversionOptions()
    if not isinstance(raw, Mapping):
        raise InvalidInput("options must be an object")
    bitrate, quality = raw.get("bitrate"), raw.get("quality")
    if bitrate is not None and quality is not None:
        raise InvalidInput("give either bitrate (CBR) or quality (VBR), not both")
    return ConversionOptions(
        bitrate=None if bitrate is None else media.parse_bitrate(bitrate),
        quality=None if quality is None else media.check_quality(quality),
        language=languages.check(raw.get("language")),
    )


@dataclass(frozen=True)
class Upload:
    """Where and how the client sends the video bytes."""

    method: str
    url: str
    headers: dict[str, str]
    expires_at: float
    parts: tuple[str, ...] = ()
    part_size: int = 0
    complete_url: str = ""

    def public(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "url": self.url,
            "headers": self.headers,
            "expires_at": int(self.expires_at),
        }
        if self.parts:
            out["parts"] = list(self.parts)
            out["part_size"] = self.part_size
            out["complete"] = {"method": "POST", "url": self.complete_url}
        return out


def create(
    services: Services,
    user_id: str,
    *,
    filename: Any,
    size: Any,
    content_type: Any,
    options: Any = None,
) -> tuple[Job, Upload]:
    """Check the declared file, create the job, say where to upload (``upload-init``)."""
    name = sanitize_filename(filename)
    check_upload(name, size, content_type, services.config.max_upload_bytes)
    opts = parse_options(options)
    now = time.time()
    job_id = str(uuid.uuid4())
    job = Job(
        id=job_id,
        user_id=user_id,
        filename=name,
        content_type=content_type,
        size=size,
        video_key=f"videos/{job_id}/{name}",
        state=JobState.AWAITING_UPLOAD,
        created_at=now,
        updated_at=now,
        options=opts,
    )
    ttl = services.config.upload_token_ttl
    target = (
        services.direct.upload_target(
            job.video_key,
            size=size,
            content_type=content_type,
            # Presigned URLs cannot be revoked, so theirs is the shorter UPLOAD_URL_TTL.
            expires_in=services.config.upload_url_ttl,
        )
        if services.direct is not None
        else None
    )
    if target is not None:
        upload = Upload(
            method=target.method,
            url=target.url,
            headers=dict(target.headers),
            expires_at=target.expires_at,
            parts=target.parts,
            part_size=target.part_size,
            complete_url=f"{services.config.public_url}/function/jobs/{job_id}/complete",
        )
    else:
        token, expires_at = auth.issue_token(
            services.config.jwt_secret,
            subject=user_id,
            ttl=ttl,
            scope=auth.UPLOAD_SCOPE,
            job=job_id,
        )
        upload = Upload(
            method="PUT",
            url=f"{services.config.public_url}/function/jobs/{job_id}/upload",
            headers={"Authorization": f"Bearer {token}", "Content-Type": content_type},
            expires_at=expires_at,
        )
    services.atomically(lambda uow: uow.jobs.add(job))
    log.info("job created", extra={"job_id": job_id, "size": size})
    return job, upload


def uploader(services: Services, job_id: str, authorization: str | None) -> str:
    """The user allowed to upload to ``job_id``: an upload token for this job, or the owner's
    session token. Raises ``Unauthorized``."""
    token = auth.bearer_token(authorization)
    secret = services.config.jwt_secret
    try:
        claims = auth.verify_token(secret, token, scope=auth.UPLOAD_SCOPE)
        if claims.get("job") != job_id:
            raise Unauthorized("this upload token is for another job")
    except Unauthorized as upload_error:
        try:
            claims = auth.verify_token(secret, token)
        except Unauthorized:
            raise upload_error from None
    # The check every door makes: the account still exists (and a session is current).
    return str(users.current(services, claims)["sub"])


def receive(
    services: Services, job_id: str, user_id: str, body: BinaryIO, content_length: int | None
) -> Job:
    """Stream an uploaded body into storage (the GridFS / local path of ``PUT .../upload``).

    The body may be neither longer than the job's declared size nor than ``MAX_UPLOAD_BYTES``
    (``PayloadTooLarge``), whatever its transfer encoding: a ``Content-Length`` above either is
    refused before reading, and a chunked body is cut off one byte past the limit, its partial
    copy removed by the store.
    """
    job = jobs.owned(services, job_id, user_id)
    if job.state is not JobState.AWAITING_UPLOAD:
        raise Conflict(f"job {job_id} is {job.state}; it no longer accepts an upload")
    limit, too_large = _upload_limit(services, job)
    bodies.check_length(content_length, limit, too_large)
    if content_length is not None and content_length != job.size:
        raise InvalidInput(
            f"Content-Length {content_length} differs from the declared size {job.size}"
        )
    stored = services.store.put_stream(
        job.video_key,
        bodies.BoundedReader(body, limit, too_large),
        content_type=job.content_type,
        metadata={"file_type": "video", "user_id": user_id, "job_id": job_id, "status": "uploaded"},
    )
    if stored != job.size:
        services.store.delete(job.video_key)
        raise InvalidInput(f"received {stored} bytes but {job.size} were declared; upload again")
    log.info("upload stored", extra={"job_id": job_id, "size": stored})
    return job


def _upload_limit(services: Services, job: Job) -> tuple[int, str]:
    """The most bytes an upload to ``job`` may have, and the 413 that says so."""
    most = services.config.max_upload_bytes
    if job.size > most:
        # MAX_UPLOAD_BYTES was lowered after this job was created.
        return most, f"the upload is over the limit of {most} bytes (MAX_UPLOAD_BYTES)"
    return job.size, (
        f"the upload is larger than the {job.size} bytes declared for this job; "
        "send exactly the declared size"
    )


def complete(services: Services, job_id: str, user_id: str) -> Job:
    """Verify the stored video and announce it (``video.uploaded``). Calling it again is
    harmless: a job past ``awaiting_upload`` is returned as it is.

    The announcement is durable once its transaction commits: when the broker is down the
    call still succeeds and the relay publishes the event once the broker is back.
    """
    job = jobs.owned(services, job_id, user_id)
    if job.state is JobState.AWAITING_UPLOAD:
        checked: dict[str, str | None] = {}
        if services.direct is not None:
            # S3: a multipart upload is finished server-side from the parts S3 holds.
            services.direct.finish_upload(job.video_key, size=job.size)
            # The presigned PUT outlives this call, so the object checked here is recorded
            # (one HEAD: size and identity agree) and the converter reads only that one.
            found = services.direct.stored_object(job.video_key)
            stored = None if found is None else found.size
            if found is not None:
                checked = {"video_etag": found.etag, "video_version": found.version_id}
        else:
            stored = services.store.size(job.video_key)
        if stored is None:
            raise Conflict("nothing has been uploaded for this job yet")
        if stored != job.size:
            raise Conflict(f"the stored upload is {stored} bytes but {job.size} were declared")
        event = jobs.job_event(
            services.config,
            job,
            events.VIDEO_UPLOADED,
            video_key=job.video_key,
            size=job.size,
            content_type=job.content_type,
            options=job.options.to_dict(),
        )

        def announce(uow: UnitOfWork) -> None:
            if uow.jobs.update(
                job.id, only_in=(JobState.AWAITING_UPLOAD,), state=JobState.UPLOADED, **checked
            ):
                uow.outbox.add(event, job.id)

        services.atomically(announce)
        services.publish_outbox(job.id)
    return jobs.owned(services, job_id, user_id)
