"""A job's life on the HTTP side: create, receive the upload, complete, read, download, fail."""

from __future__ import annotations

import logging
import re
import time
import unicodedata
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

from vid2mp3 import auth, events
from vid2mp3.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TransientError,
    Unauthorized,
)
from vid2mp3.model import FINAL_STATES, ConversionOptions, Job, JobState
from vid2mp3.ports import BlobStore, iter_chunks
from vid2mp3.services import Services

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
_BITRATE = re.compile(r"^(32|40|48|56|64|80|96|112|128|160|192|224|256|320)k$")


def sanitize_filename(name: Any) -> str:
    """The last path part of ``name``, without control characters, at most 255 bytes."""
    if not isinstance(name, str):
        raise InvalidInput("filename must be a string")
    base = re.split(r"[/\\]", name)[-1]
    base = "".join(
        c for c in unicodedata.normalize("NFC", base) if unicodedata.category(c)[0] != "C"
    )
    base = base.strip().strip(".")
    while len(base.encode()) > 255:
        base = base[:-1]
    if not base:
        raise InvalidInput("filename is empty once path parts are removed")
    return base


def check_upload(filename: str, size: Any, content_type: Any, max_bytes: int) -> None:
    ext = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if ext not in VIDEO_EXTENSIONS | AUDIO_EXTENSIONS:
        raise InvalidInput(
            f"'.{ext}' files are not accepted; upload a video such as .mp4, .mkv, .webm, .mov or .avi"
            if ext
            else "the filename needs an extension such as .mp4"
        )
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
    if raw is None:
        return ConversionOptions()
    if not isinstance(raw, Mapping):
        raise InvalidInput("options must be an object")
    bitrate, quality = raw.get("bitrate"), raw.get("quality")
    if bitrate is not None and quality is not None:
        raise InvalidInput("give either bitrate (CBR) or quality (VBR), not both")
    if bitrate is not None and (not isinstance(bitrate, str) or not _BITRATE.match(bitrate)):
        raise InvalidInput("bitrate must be an MP3 bitrate such as '128k', '192k' or '320k'")
    if quality is not None and (
        not isinstance(quality, int) or isinstance(quality, bool) or not 0 <= quality <= 9
    ):
        raise InvalidInput("quality must be a whole number from 0 (best) to 9 (smallest)")
    return ConversionOptions(bitrate=bitrate, quality=quality)


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
    target = services.store.upload_target(
        job.video_key, size=size, content_type=content_type, expires_in=ttl
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
    with services.uow() as uow:
        uow.jobs.add(job)
        uow.commit()
    log.info("job created", extra={"job_id": job_id, "size": size})
    return job, upload


def owned(services: Services, job_id: str, user_id: str) -> Job:
    """The job if ``user_id`` owns it; another user's job is ``NotFound``, never forbidden."""
    with services.uow() as uow:
        job = uow.jobs.get(job_id)
    if job is None or job.user_id != user_id:
        raise NotFound(f"no job {job_id}")
    return job


def list_for(services: Services, user_id: str) -> list[Job]:
    with services.uow() as uow:
        return uow.jobs.list_for_user(user_id)


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
    return str(claims["sub"])


def receive(
    services: Services, job_id: str, user_id: str, body: BinaryIO, content_length: int | None
) -> Job:
    """Stream an uploaded body into storage (the GridFS / local path of ``PUT .../upload``)."""
    job = owned(services, job_id, user_id)
    if job.state is not JobState.AWAITING_UPLOAD:
        raise Conflict(f"job {job_id} is {job.state}; it no longer accepts an upload")
    if content_length is not None and content_length != job.size:
        raise InvalidInput(
            f"Content-Length {content_length} differs from the declared size {job.size}"
        )
    stored = services.store.put_stream(
        job.video_key,
        body,
        content_type=job.content_type,
        metadata={"file_type": "video", "user_id": user_id, "job_id": job_id, "status": "uploaded"},
    )
    if stored != job.size:
        services.store.delete(job.video_key)
        raise InvalidInput(f"received {stored} bytes but {job.size} were declared; upload again")
    log.info("upload stored", extra={"job_id": job_id, "size": stored})
    return job


def job_event(services: Services, job: Job, event_type: str, **data: Any) -> events.Event:
    """A validated event about ``job``, with its id, owner and filename filled in."""
    event = events.Event(
        type=event_type,
        subject=job.id,
        source=services.config.event_source,
        data={"job_id": job.id, "user_id": job.user_id, "filename": job.filename, **data},
    )
    events.validate(event)
    return event


def complete(services: Services, job_id: str, user_id: str) -> Job:
    """Verify the stored video and announce it (``video.uploaded``). Calling it again is
    harmless: a job past ``awaiting_upload`` is returned as it is."""
    job = owned(services, job_id, user_id)
    if job.state is JobState.AWAITING_UPLOAD:
        # S3: a multipart upload is finished server-side from the parts S3 holds.
        finish_upload = getattr(services.store, "finish_upload", None)
        if finish_upload is not None:
            finish_upload(job.video_key, size=job.size)
        stored = services.store.size(job.video_key)
        if stored is None:
            raise Conflict("nothing has been uploaded for this job yet")
        if stored != job.size:
            raise Conflict(f"the stored upload is {stored} bytes but {job.size} were declared")
        event = job_event(
            services,
            job,
            events.VIDEO_UPLOADED,
            video_key=job.video_key,
            size=job.size,
            content_type=job.content_type,
            options=job.options.to_dict(),
        )
        with services.uow() as uow:
            if uow.jobs.update(
                job.id, only_in=(JobState.AWAITING_UPLOAD,), state=JobState.UPLOADED
            ):
                uow.outbox.add(event, job.id)
            uow.commit()
    services.publish_pending(job.id)
    return owned(services, job_id, user_id)


def fail(
    services: Services,
    job_id: str,
    *,
    stage: str,
    reason: str,
    consumer: str = "",
    event_id: str = "",
) -> bool:
    """End the job ``failed`` with a reason its owner can read, and announce it (``job.failed``).
    A job already completed or failed is left alone. Returns whether this call failed it."""
    with services.uow() as uow:
        job = uow.jobs.get(job_id)
        if job is None or job.state in FINAL_STATES:
            if consumer:
                uow.processed.record(consumer, event_id)
                uow.commit()
            return False
        event = job_event(services, job, events.JOB_FAILED, stage=stage, reason=reason)
        uow.jobs.update(job.id, state=JobState.FAILED, error=reason, lease_until=None)
        uow.outbox.add(event, job.id)
        if consumer:
            uow.processed.record(consumer, event_id)
        uow.commit()
    log.warning("job failed", extra={"job_id": job_id, "stage": stage, "reason": reason})
    services.publish_pending(job_id)
    return True


def dead_lettered(services: Services, event: events.Event, function: str) -> str:
    """``event`` ran out of delivery attempts at ``function``; settle its job so nothing hangs.

    convert: the job fails (unless a live worker still holds it). summarize: the MP3 exists, so
    the job completes with ``summary_status=failed``. notify: the job is fine; only an email was
    lost, which is logged. Returns what was done.
    """
    job_id = str(event.data.get("job_id") or event.subject)
    with services.uow() as uow:
        job = uow.jobs.get(job_id)
    where = {"job_id": job_id, "event_id": event.id, "function": function}
    if job is None or (job.state in FINAL_STATES and function != "notify"):
        return "nothing to do"
    if function == "notify":
        log.error("notification lost after repeated failures", extra=where)
        return "notification lost"
    if function == "summarize":
        with services.uow() as uow:
            uow.jobs.update(
                job_id,
                only_in=(JobState.CONVERTED,),
                state=JobState.COMPLETED,
                summary_status="failed",
                summary_reason="the summary step kept failing",
            )
            uow.commit()
        return "completed without summary"
    if job.state is JobState.CONVERTING and (job.lease_until or 0) > time.time():
        # Its worker may still finish, or may have died with the lease still running: ask the
        # broker to come back after the lease, when the answer is certain.
        raise TransientError(f"job {job_id} is still held by a converting worker; retry later")
    fail(
        services,
        job_id,
        stage="delivery",
        reason=f"the {function} step kept failing (gave up after repeated attempts); "
        "please upload the file again later",
    )
    return "failed"


def delete(services: Services, job_id: str, user_id: str) -> None:
    """Remove a job and everything stored for it. A job in flight (uploaded or converting) is
    refused: its worker would write the MP3 back after we deleted it."""
    job = owned(services, job_id, user_id)
    if job.state in (JobState.UPLOADED, JobState.CONVERTING, JobState.CONVERTED):
        raise Conflict(f"the job is {job.state}; delete it once it has finished")
    for key in (job.video_key, job.mp3_key, f"transcripts/{job.id}.txt"):
        if key:
            services.store.delete(key)
    with services.uow() as uow:
        uow.jobs.delete(job.id)
        uow.commit()
    log.info("job deleted", extra={"job_id": job_id})


@dataclass(frozen=True)
class Download:
    """The MP3 of a job: a presigned ``url``, or ``chunks()`` to stream with ``headers``."""

    url: str | None
    headers: dict[str, str]
    _store: BlobStore
    _key: str

    def chunks(self) -> Iterator[bytes]:
        with self._store.open(self._key) as f:
            yield from iter_chunks(f)


def download(services: Services, job_id: str, user_id: str) -> Download:
    job = owned(services, job_id, user_id)
    if not job.mp3_key or job.state not in (JobState.CONVERTED, JobState.COMPLETED):
        raise Conflict(f"the MP3 is not ready yet (the job is {job.state})")
    url = services.store.download_url(
        job.mp3_key, filename=job.mp3_filename, expires_in=services.config.upload_token_ttl
    )
    quoted = urllib.parse.quote(job.mp3_filename)
    headers = {
        "Content-Type": "audio/mpeg",
        "Content-Length": str(job.mp3_size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quoted}",
    }
    return Download(url=url, headers=headers, _store=services.store, _key=job.mp3_key)
