"""The convert step: the stored video becomes a stored MP3, exactly once per job."""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path

from vid2mp3 import events, jobs, media, steps
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.errors import NotFound, PermanentError, ServiceFault
from vid2mp3.model import Job, JobState, SummaryStatus
from vid2mp3.ports import MediaSource, StoredObject
from vid2mp3.services import Services

log = logging.getLogger(__name__)

CONSUMER = "convert"


def _waits(job: Job) -> bool:
    return job.state in (JobState.UPLOADED, JobState.CONVERTING)


def _begin(uow: UnitOfWork, job: Job) -> None:
    uow.jobs.start_converting(job.id)


STEP = steps.Step(CONSUMER, waits=_waits, begin=_begin)


class _Progress:
    """Writes progress (0 to 99 while running) with the lease renewal, at most once a second."""

    def __init__(self, task: steps.Work) -> None:
        self.task = task
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
        self.task.renew(progress=percent)


def handle_video_uploaded(services: Services, event: events.Event) -> str:
    """Convert the job's video; returns what happened (for the log and the response).

    Idempotent on the event id and on the job's state (``vid2mp3.steps``): a duplicate of a
    handled event, or a late one after the job moved on, changes nothing, and a job another
    live worker converts is left to it.
    """
    return steps.run(services, event, STEP, _convert)


def _source(services: Services, job: Job) -> AbstractContextManager[MediaSource]:
    """Where ffmpeg reads the job's video: on S3 exactly the object ``complete`` checked (a
    presigned PUT still works after it, so the key alone could name a replacement)."""
    if services.direct is not None and job.video_etag:
        checked = StoredObject(job.size, job.video_etag, job.video_version)
        return services.direct.pinned_source(job.video_key, checked)
    # Jobs completed before versions were recorded, and stores the bytes pass through.
    return services.store.media_source(job.video_key)


def _convert(task: steps.Work) -> steps.Result:
    services, job = task.services, task.job
    ffmpeg = media.find_ffmpeg(services.config.ffmpeg_binary)
    mp3_key = f"mp3/{job.id}/{job.mp3_filename}"
    try:
        with (
            tempfile.TemporaryDirectory(prefix="vid2mp3-") as tmp,
            _source(services, job) as source,
        ):
            probed = media.probe(
                source.location, network=source.network, ffmpeg=ffmpeg, headers=source.headers
            )
            out = str(Path(tmp) / "audio.mp3")
            result = media.extract_audio(
                source.location,
                out,
                title=job.filename.rsplit(".", 1)[0],
                bitrate=job.options.bitrate,
                quality=job.options.quality,
                default_bitrate=services.config.default_bitrate,
                copy_mp3=True,
                network=source.network,
                on_progress=_Progress(task),
                probed=probed,
                ffmpeg=ffmpeg,
                headers=source.headers,
                max_duration=services.config.max_duration_seconds,
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
    except OSError as exc:
        # Our temp folder or disk, never the user's file: retried, and no path is shown.
        raise ServiceFault(
            f"the service could not write its working files ({exc.strerror or exc}); "
            "it will try again"
        ) from exc
    duration = round(result.duration, 3)
    announce = jobs.job_event(
        services.config,
        job,
        events.AUDIO_CONVERTED,
        mp3_key=mp3_key,
        mp3_size=size,
        duration=duration,
        bitrate=result.bitrate or 0,
    )
    log.info(
        "conversion finished",
        extra={"job_id": job.id, "mp3_size": size, "duration": duration},
    )
    return steps.Result(
        outcome="converted",
        only_in=(JobState.CONVERTING,),
        changes={
            "state": JobState.CONVERTED,
            "progress": 100,
            "error": None,
            "mp3_key": mp3_key,
            "mp3_size": size,
            "mp3_duration": duration,
            "mp3_bitrate": result.bitrate,
            "summary_status": str(SummaryStatus.PENDING),
        },
        announce=announce,
    )
