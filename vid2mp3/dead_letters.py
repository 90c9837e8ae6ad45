"""What happens to a job when the broker gives up delivering an event to a function.

One policy per function (``POLICIES``), so nothing stays in progress forever:

- ``convert``: the job fails, with a reason that puts the fault on the service (a file the
  service could read but not convert fails earlier, with a reason about the file);
- ``transcribe``: the MP3 exists, so the transcript ends ``failed`` and ``audio.transcribed``
  is announced, for ``summarize`` to complete the job;
- ``summarize``: the MP3 exists, so the job completes with ``summary_status=failed``;
- ``notify``: the job is fine; only a message was lost, which is logged for an operator.

A step that a live worker still holds is left to it: if that worker dies, its lease runs out
and the relay announces the step again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from vid2mp3 import conversion, events, jobs, steps, summaries, transcription
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.model import FINAL_STATES, Job, JobState, SummaryStatus
from vid2mp3.services import Services

log = logging.getLogger(__name__)

CONVERT_GAVE_UP = (
    "the service could not convert this file after repeated attempts (a problem on our side, "
    "not with your file); please try again later"
)
SUMMARY_GAVE_UP = "the summary step kept failing"
TRANSCRIPT_GAVE_UP = "the transcription step kept failing"


def _convert(services: Services, job: Job) -> str:
    def settle(uow: UnitOfWork) -> str:
        if uow.leases.held(job.id, conversion.CONSUMER):
            return "left to the live worker converting it"
        failed = jobs.mark_failed(
            uow, services.config, job, stage="delivery", reason=CONVERT_GAVE_UP
        )
        return "failed" if failed else "nothing to do"

    outcome = services.atomically(settle)
    if outcome == "failed":
        services.publish_outbox(job.id)  # the job.failed it announced
    return outcome


def _transcribe(services: Services, job: Job) -> str:
    result = transcription.failed_result(services, job, TRANSCRIPT_GAVE_UP)

    def settle(uow: UnitOfWork) -> str:
        if uow.leases.held(job.id, transcription.CONSUMER):
            return "left to the live worker transcribing it"
        current = uow.jobs.get(job.id)
        if current is None or not transcription.STEP.waits(current):
            uow.leases.drop(job.id, transcription.CONSUMER)
            return "nothing to do"
        changed = steps.apply(uow, job.id, transcription.CONSUMER, result)
        return "transcript failed" if changed else "nothing to do"

    outcome = services.atomically(settle)
    if outcome == "transcript failed":
        services.publish_outbox(job.id)  # the audio.transcribed it announced
    return outcome


def _summarize(services: Services, job: Job) -> str:
    def settle(uow: UnitOfWork) -> str:
        if uow.leases.held(job.id, summaries.CONSUMER):
            return "left to the live worker summarizing it"
        changed = uow.jobs.update(
            job.id,
            only_in=(JobState.CONVERTED,),
            state=JobState.COMPLETED,
            summary_status=str(SummaryStatus.FAILED),
            summary_reason=SUMMARY_GAVE_UP,
        )
        uow.leases.drop(job.id, summaries.CONSUMER)
        return "completed without summary" if changed else "nothing to do"

    return services.atomically(settle)


def _notify(services: Services, job: Job) -> str:
    log.error("notification lost after repeated failures", extra={"job_id": job.id})
    return "notification lost"


#: Function that kept failing → how its job is settled.
POLICIES: dict[str, Callable[[Services, Job], str]] = {
    "convert": _convert,
    "transcribe": _transcribe,
    "summarize": _summarize,
    "notify": _notify,
}


def settle(services: Services, event: events.Event, function: str) -> str:
    """``event`` ran out of delivery attempts at ``function``; settle its job. Returns what
    was done. ``function`` must be a key of ``POLICIES``."""
    job_id = str(event.data.get("job_id") or event.subject)
    with services.uow() as uow:
        job = uow.jobs.get(job_id)
    if job is None or (job.state in FINAL_STATES and function != "notify"):
        return "nothing to do"
    outcome = POLICIES[function](services, job)
    log.info(
        "dead letter settled",
        extra={"job_id": job_id, "event_id": event.id, "function": function, "outcome": outcome},
    )
    return outcome
