"""The convert step: the stored video becomes a stored MP3, exactly once per job."""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path

from vid2mp3 import events, jobs, media
from vid2mp3.errors import NotFound, PermanentError, TransientError
from vid2mp3.model import FINAL_STATES, Job, JobState, SummaryStatus
from vid2mp3.services import Services

log = logging.getLogger(__name__)

CONSUMER = "convert"


class _Progress:
    """Writes progress (0 to 99 while running) and renews the job's lease, at most once a second."""

    def __init__(self, services: Services, job_id: str) -> None:
        self.services = services
        self.job_id = job_id
        self.last_write = 0.0
        self.last_percent = -1
        self.lock = threading.Lock()

    def __call__(self, fraction: float) -> None:
        percent = min(99, int(fraction * 100))
        now = time.monotonic()
        with self.lock:
            if percent == self.last_percent and now - self.last_write < 5:
                return
            if now - self.last_write < 1 and percent < 99:
                return
            self.last_write, self.last_percent = now, percent
        self.renew(percent)

    def renew(self, percent: int | None = None) -> None:
        lease = self.services.config.job_lease_seconds
        changes: dict[str, object] = {"lease_until": time.time() + lease}
        if percent is not None:
            changes["progress"] = percent
        with self.services.uow() as uow:
            uow.jobs.update(self.job_id, only_in=(JobState.CONVERTING,), **changes)
            uow.commit()


def _heartbeat(progress: _Progress, stop: threading.Event) -> None:
    # Keeps the lease alive while ffmpeg is silent (probing, storing the MP3).
    interval = max(1.0, progress.services.config.job_lease_seconds / 4)
    while not stop.wait(interval):
        try:
            progress.renew()
        except Exception:
            log.exception("lease renewal failed", extra={"job_id": progress.job_id})


def handle_video_uploaded(services: Services, event: events.Event) -> str:
    """Convert the job's video; returns what happened (for the log and the response).

    Idempotent on the event id and on the job's state: a duplicate of a handled event, or a late
    one after the job moved on, changes nothing. A job another live worker holds raises
    ``TransientError`` so the broker tries again after the lease has had a chance to expire.
    """
    job_id = str(event.data["job_id"])
    services.publish_pending(job_id)
    with services.uow() as uow:
        if uow.processed.seen(CONSUMER, event.id):
            return "duplicate event"
        job = uow.jobs.get(job_id)
        if job is None:
            uow.processed.record(CONSUMER, event.id)
            uow.commit()
            log.warning(
                "event for unknown job ignored", extra={"job_id": job_id, "event_id": event.id}
            )
            return "unknown job"
        if job.state in (JobState.CONVERTED, *FINAL_STATES):
            uow.processed.record(CONSUMER, event.id)
            uow.commit()
            return f"already {job.state}"
        if not uow.jobs.claim(job_id, lease_seconds=services.config.job_lease_seconds):
            raise TransientError(f"job {job_id} is being converted by another worker")
        uow.commit()
    log.info("conversion started", extra={"job_id": job_id, "event_id": event.id})
    try:
        job = _convert(services, job)
    except PermanentError as exc:
        jobs.fail(
            services,
            job_id,
            stage="convert",
            reason=exc.message,
            consumer=CONSUMER,
            event_id=event.id,
        )
        return "failed"
    _finish(services, job, event.id)
    return "converted"


def _convert(services: Services, job: Job) -> Job:
    ffmpeg = media.find_ffmpeg(services.config.ffmpeg_binary)
    progress = _Progress(services, job.id)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(progress, stop), daemon=True)
    beat.start()
    mp3_key = f"mp3/{job.id}/{job.mp3_filename}"
    try:
        with (
            tempfile.TemporaryDirectory(prefix="vid2mp3-") as tmp,
            services.store.media_source(job.video_key) as source,
        ):
            probed = media.probe(source.location, network=source.network, ffmpeg=ffmpeg)
            out = str(Path(tmp) / "audio.mp3")
            result = media.extract_audio(
                source.location,
                out,
                title=job.filename.rsplit(".", 1)[0],
                bitrate=job.options.bitrate,
                quality=job.options.quality,
                copy_mp3=True,
                network=source.network,
                on_progress=progress,
                probed=probed,
                ffmpeg=ffmpeg,
            )
            size = services.store.put_file(
                mp3_key,
                out,
                content_type="audio/mpeg",
                metadata={
                    "file_type": "mp3",
                    "user_id": job.user_id,
                    "job_id": job.id,
                    "converted_from": job.video_key,
                    "status": "converted",
                },
            )
    except NotFound as exc:
        raise PermanentError(f"the uploaded video is missing from storage ({exc.message})") from exc
    finally:
        stop.set()
    return Job(
        **{
            **job.__dict__,
            "mp3_key": mp3_key,
            "mp3_size": size,
            "mp3_duration": round(result.duration, 3),
            "mp3_bitrate": result.bitrate,
        }
    )


def _finish(services: Services, job: Job, event_id: str) -> None:
    assert job.mp3_key and job.mp3_size and job.mp3_duration is not None
    event = jobs.job_event(
        services,
        job,
        events.AUDIO_CONVERTED,
        mp3_key=job.mp3_key,
        mp3_size=job.mp3_size,
        duration=job.mp3_duration,
        bitrate=job.mp3_bitrate or 0,
    )
    with services.uow() as uow:
        changed = uow.jobs.update(
            job.id,
            only_in=(JobState.CONVERTING,),
            state=JobState.CONVERTED,
            progress=100,
            lease_until=None,
            error=None,
            mp3_key=job.mp3_key,
            mp3_size=job.mp3_size,
            mp3_duration=job.mp3_duration,
            mp3_bitrate=job.mp3_bitrate,
            summary_status=str(SummaryStatus.PENDING),
        )
        if changed:
            uow.outbox.add(event, job.id)
        uow.processed.record(CONSUMER, event_id)
        uow.commit()
    log.info(
        "conversion finished",
        extra={
            "job_id": job.id,
            "event_id": event_id,
            "mp3_size": job.mp3_size,
            "duration": job.mp3_duration,
        },
    )
    services.publish_pending(job.id)
