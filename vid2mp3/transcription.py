"""The transcribe step: what is said in the job's MP3, stored as a transcript; never fails the MP3.

The step runs through the handler skeleton (``vid2mp3.steps``): one worker at a time holds the
job's ``transcribe`` lease, so a duplicate or concurrent ``audio.converted`` never transcribes
twice. The MP3 is copied from the blob store to a temporary file, transcribed by the
``Transcriber`` that ``TRANSCRIBER`` names (``bootstrap.make_transcriber``), and the transcript
is stored as JSON (``speech.formats.to_json``) under ``Job.transcript_key`` before the job
records ``transcript_status``, ``language`` and ``transcript_reason`` and ``audio.transcribed``
is announced, in one settle. Audio the transcriber cannot read, a model that is missing or an
AI service that gave up end the transcript ``failed`` with the reason; transcription turned
off ends it ``skipped``. Either way ``audio.transcribed`` goes out, so ``summarize`` completes
the job with its MP3. The job stays ``converted`` throughout.
"""

from __future__ import annotations

import io
import logging
import shutil
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from vid2mp3 import events, jobs, steps
from vid2mp3.errors import (
    InvalidInput,
    NotFound,
    PermanentError,
    ServiceFault,
    SpeechModelUnavailable,
)
from vid2mp3.model import Job, JobState, TranscriptStatus
from vid2mp3.services import Services
from vid2mp3.speech import formats
from vid2mp3.speech.transcript import Transcript

log = logging.getLogger(__name__)

CONSUMER = "transcribe"
# Shown to users as is; the parenthesis tells an operator what to set.
TURNED_OFF = (
    "transcription is turned off on this server (its operator can enable it with "
    "TRANSCRIBER=local and the speech extra, or TRANSCRIBER=openai)"
)
_COPY_CHUNK = 1024 * 1024
_MODEL_CHARS = 100  # the width of jobs.transcribe_model


def _waits(job: Job) -> bool:
    return job.state is JobState.CONVERTED and job.transcript_status is None


STEP = steps.Step(CONSUMER, waits=_waits)


@dataclass(frozen=True)
class _Outcome:
    status: TranscriptStatus
    language: str | None = None
    reason: str | None = None
    model: str | None = None


def handle_audio_converted(services: Services, event: events.Event) -> str:
    """Transcribe the job's MP3, store the transcript, emit ``audio.transcribed``. Idempotent,
    and the transcriber runs once per job whatever the deliveries (``vid2mp3.steps``)."""
    return steps.run(services, event, STEP, _transcribe_step)


def transcribed_event(services: Services, job: Job, outcome: _Outcome) -> events.Event:
    return events.Event(
        type=events.AUDIO_TRANSCRIBED,
        subject=job.id,
        source=services.config.event_source,
        data={
            "job_id": job.id,
            "user_id": job.user_id,
            "transcript_status": str(outcome.status),
            "language": outcome.language,
            "reason": outcome.reason,
        },
    )


def failed_result(services: Services, job: Job, reason: str) -> steps.Result:
    """The job's transcript ``failed`` with ``reason``, announced (also the dead-letter
    policy's settle)."""
    return _result(services, job, _Outcome(TranscriptStatus.FAILED, reason=reason))


def _result(services: Services, job: Job, outcome: _Outcome) -> steps.Result:
    changes: dict[str, object] = {
        "transcript_status": str(outcome.status),
        "language": outcome.language,
        "transcript_reason": outcome.reason,
    }
    if outcome.model:
        changes["transcribe_model"] = outcome.model[:_MODEL_CHARS]
    return steps.Result(
        outcome=f"transcript {outcome.status}",
        only_in=(JobState.CONVERTED,),
        changes=changes,
        announce=transcribed_event(services, job, outcome),
    )


def _transcribe_step(task: steps.Work) -> steps.Result:
    services, job = task.services, task.job
    outcome = _transcribe(task)
    log.info(
        "transcription finished",
        extra={"job_id": job.id, "transcript_status": str(outcome.status)},
    )
    return _result(services, job, outcome)


def _transcribe(task: steps.Work) -> _Outcome:
    services, job = task.services, task.job
    transcriber = services.transcriber
    if transcriber is None:
        return _Outcome(TranscriptStatus.SKIPPED, reason=TURNED_OFF)
    if not job.mp3_key:
        return _Outcome(TranscriptStatus.FAILED, reason="the job has no MP3 to transcribe")
    try:
        with tempfile.TemporaryDirectory(prefix="vid2mp3-transcribe-") as folder:
            mp3 = Path(folder) / "audio.mp3"
            _copy_to_file(services, job.mp3_key, mp3)
            transcript = transcriber.transcribe(
                mp3, language=job.options.language, progress=_Renewal(task)
            )
    except (PermanentError, SpeechModelUnavailable) as exc:
        # Bad audio, a missing model, an AI service that gave up: the MP3 stands without it.
        log.warning("transcription failed", extra={"job_id": job.id, "reason": exc.message})
        return _Outcome(TranscriptStatus.FAILED, reason=exc.message)
    except OSError as exc:
        raise ServiceFault(
            f"the service could not write its working files ({exc.strerror or exc}); "
            "it will try again"
        ) from exc
    _store(services, job, transcript)
    return _Outcome(TranscriptStatus.DONE, language=transcript.language, model=transcript.model)


def _copy_to_file(services: Services, key: str, path: Path) -> None:
    try:
        with services.store.open(key) as source, path.open("wb") as out:
            shutil.copyfileobj(source, out, _COPY_CHUNK)
    except NotFound:
        raise PermanentError("the MP3 is missing from storage") from None


def _store(services: Services, job: Job, transcript: Transcript) -> None:
    body = formats.to_json(transcript).encode("utf-8")
    services.store.put_stream(
        job.transcript_key,
        io.BytesIO(body),
        content_type=formats.MEDIA_TYPES["json"],
        metadata={
            "file_type": "transcript",
            "user_id": job.user_id,
            "job_id": job.id,
            "transcribed_from": job.mp3_key or "",
            "model": transcript.model,
        },
    )
    log.info(
        "transcript stored",
        extra={"job_id": job.id, "segments": len(transcript.segments), "bytes": len(body)},
    )


def read_transcript(services: Services, job: Job) -> Transcript | None:
    """The job's stored transcript, or ``None`` when there is none (yet)."""
    if services.store.size(job.transcript_key) is None:
        return None
    try:
        with services.store.open(job.transcript_key) as f:
            return formats.from_json(f.read())
    except NotFound:
        return None


def transcript_file(
    services: Services, job_id: str, user_id: str, fmt: str
) -> tuple[str, dict[str, str]]:
    """The owner's transcript of ``job_id`` in ``fmt`` (txt, srt, vtt, json) and its response
    headers. 400 for another format; 404 for another user's job or before it exists."""
    if fmt not in formats.FORMATS:
        raise InvalidInput(f"format must be one of {', '.join(formats.FORMATS)}, not {fmt!r}")
    job = jobs.owned(services, job_id, user_id)
    transcript = read_transcript(services, job) if job.transcript_status == "done" else None
    if transcript is None:
        status = job.transcript_status or "not made yet"
        raise NotFound(f"this job has no transcript (transcript {status})")
    body = formats.render(transcript, fmt)
    name = urllib.parse.quote(f"{job.mp3_filename.rsplit('.', 1)[0]}.{fmt}")
    headers = {
        "Content-Type": formats.MEDIA_TYPES[fmt],
        "Content-Disposition": f"attachment; filename*=UTF-8''{name}",
    }
    return body, headers


class _Renewal:
    """Transcription progress renews the lease at most every few seconds (the heartbeat does
    too; this also notices a takeover sooner). ``job.progress`` is the conversion's, so it is
    left alone."""

    def __init__(self, task: steps.Work) -> None:
        self.task = task
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        with self.lock:
            if now - self.last < 5:
                return
            self.last = now
        if not self.task.renew():
            log.warning(
                "transcription lease lost to another worker", extra={"job_id": self.task.job.id}
            )
