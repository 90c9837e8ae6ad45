"""The summarize step: what is said in the MP3, summarized; never fails the MP3 itself."""

from __future__ import annotations

import logging
from typing import Any

from vid2mp3 import events
from vid2mp3.model import JobState, SummaryStatus
from vid2mp3.services import Services

log = logging.getLogger(__name__)

CONSUMER = "summarize"
NOT_CONFIGURED = "no AI endpoint is configured (set OPENAI_BASE_URL and/or OPENAI_API_KEY)"


def handle_audio_converted(services: Services, event: events.Event) -> str:
    """Summarize the job's audio, finish the job, emit ``audio.summarized``. Idempotent."""
    job_id = str(event.data["job_id"])
    services.publish_pending(job_id)
    with services.uow() as uow:
        job = uow.jobs.get(job_id)
        if (
            uow.processed.seen(CONSUMER, event.id)
            or job is None
            or (job.state is not JobState.CONVERTED or job.summary_status != SummaryStatus.PENDING)
        ):
            uow.processed.record(CONSUMER, event.id)
            uow.commit()
            return "nothing to do"
    outcome = _summarize(services, job_id)
    summarized = events.Event(
        type=events.AUDIO_SUMMARIZED,
        subject=job_id,
        source=services.config.event_source,
        data={"job_id": job_id, "user_id": job.user_id, **outcome},
    )
    events.validate(summarized)
    with services.uow() as uow:
        changed = uow.jobs.update(
            job_id,
            only_in=(JobState.CONVERTED,),
            state=JobState.COMPLETED,
            summary_status=outcome["summary_status"],
            summary=outcome.get("summary"),
            category=outcome.get("category"),
            context_truncated=outcome.get("context_truncated"),
            summary_reason=outcome.get("reason"),
        )
        if changed:
            uow.outbox.add(summarized, job_id)
        uow.processed.record(CONSUMER, event.id)
        uow.commit()
    log.info(
        "summary finished",
        extra={"job_id": job_id, "event_id": event.id, "summary_status": outcome["summary_status"]},
    )
    services.publish_pending(job_id)
    return str(outcome["summary_status"])


def _summarize(services: Services, job_id: str) -> dict[str, Any]:
    if services.summarizer is None:
        return {"summary_status": str(SummaryStatus.SKIPPED), "reason": NOT_CONFIGURED}
    raise NotImplementedError("AI summaries arrive with the summarize issue")
