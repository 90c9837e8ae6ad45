"""A job's life once it exists: read it, fail it, delete it, download its MP3."""

from __future__ import annotations

import logging
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vid2mp3 import events
from vid2mp3.config import Config
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.errors import Conflict, NotFound
from vid2mp3.model import FINAL_STATES, Job, JobState
from vid2mp3.ports import BlobStore, iter_chunks
from vid2mp3.services import Services

log = logging.getLogger(__name__)


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


def job_event(config: Config, job: Job, event_type: str, **data: Any) -> events.Event:
    """A validated event about ``job``, with its id, owner and filename filled in."""
    event = events.Event(
        type=event_type,
        subject=job.id,
        source=config.event_source,
        data={"job_id": job.id, "user_id": job.user_id, "filename": job.filename, **data},
    )
    events.validate(event)
    return event


def mark_failed(
    uow: UnitOfWork, config: Config, job: Job, *, stage: str, reason: str, announce: bool = True
) -> bool:
    """Inside ``uow``: end ``job`` ``failed`` with ``reason`` and (``announce``) put
    ``job.failed`` into the outbox. A job already completed or failed is left alone; returns
    whether this call failed it."""
    if not uow.jobs.update(
        job.id,
        only_in=tuple(s for s in JobState if s not in FINAL_STATES),
        state=JobState.FAILED,
        error=reason,
    ):
        return False
    uow.leases.drop(job.id)
    if announce:
        uow.outbox.add(
            job_event(config, job, events.JOB_FAILED, stage=stage, reason=reason), job.id
        )
    log.warning("job failed", extra={"job_id": job.id, "stage": stage, "reason": reason})
    return True


def fail(
    services: Services, job_id: str, *, stage: str, reason: str, announce: bool = True
) -> bool:
    """End the job ``failed`` with a reason its owner can read and, when ``announce``, tell them
    (``job.failed``: the failure email). Returns whether this call failed it."""

    def failed(uow: UnitOfWork) -> bool:
        job = uow.jobs.get(job_id)
        if job is None:
            return False
        return mark_failed(uow, services.config, job, stage=stage, reason=reason, announce=announce)

    changed = services.atomically(failed)
    if changed and announce:
        services.publish_outbox(job_id)
    return changed


def delete(services: Services, job_id: str, user_id: str) -> None:
    """Remove a job and everything stored for it. A job in flight (uploaded or converting) is
    refused: its worker would write the MP3 back after we deleted it."""
    job = owned(services, job_id, user_id)
    if job.state in (JobState.UPLOADED, JobState.CONVERTING, JobState.CONVERTED):
        raise Conflict(f"the job is {job.state}; delete it once it has finished")
    for key in (job.video_key, job.mp3_key, job.transcript_key, job.legacy_transcript_key):
        if key:
            services.store.delete(key)
    if services.direct is not None:
        # S3 also holds what the keys above miss: other versions (a plain delete only hides
        # them) and open multipart uploads, whose part URLs would otherwise still work.
        for prefix in job.storage_prefixes:
            services.direct.delete_prefix(prefix)
    if services.archive is not None:
        # The summary document names the file and says what it held: it goes with the job.
        services.archive.forget_summary(job.id)

    def forget(uow: UnitOfWork) -> None:
        uow.jobs.delete(job.id)
        uow.leases.drop(job.id)
        uow.outbox.forget_job(job.id)

    services.atomically(forget)
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
    url = (
        services.direct.download_url(
            job.mp3_key, filename=job.mp3_filename, expires_in=services.config.upload_token_ttl
        )
        if services.direct is not None
        else None
    )
    quoted = urllib.parse.quote(job.mp3_filename)
    headers = {
        "Content-Type": "audio/mpeg",
        "Content-Length": str(job.mp3_size),
        "Content-Disposition": f"attachment; filename*=UTF-8''{quoted}",
    }
    return Download(url=url, headers=headers, _store=services.store, _key=job.mp3_key)
