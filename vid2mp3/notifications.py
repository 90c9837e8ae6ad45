"""The notify step: one email and one webhook call per job per kind, whatever the redeliveries.

Each message has its own row in ``notifications`` keyed by (job, kind), claimed before sending
and marked sent after: the email under the kind (``ready``, ``summary``, ``failed``), the
webhook under ``webhook:<kind>``. A message that was sent is never sent again; one that failed
for a reason that may pass (SMTP down, webhook answering 503) is released and the event is
handed back to the broker (``TransientError``) to be delivered again; one that can never
succeed (recipient refused for good, webhook answering 404) is logged and released, and the
event is done. Claims and marks run in retried transactions (``Services.atomically``), so a
deadlock under load neither answers 500 nor leaves a row ``sending`` after its message went.

If the process dies between sending and marking, nobody can know whether the message left, so
the stale claim is reconciled rather than resent blindly: the redelivery sends the *same*
message again, with the same ``Message-ID`` (derived from the job and kind) and, for webhooks,
the same ``ce-id``, so mail systems and receivers recognise it as the one they may already have.

Emails go out for ``ready``, ``failed``, and ``summary`` when a summary was made; a webhook
gets every event, including a summary that was skipped or failed, because that event is the
one that says the job is complete.

What a message says comes from the job's row, never from the event's text: the event only
says which message is due, and the row must back it (a failure notice only for a job that
failed, with the reason the job recorded). A replayed or stale event cannot put words in an
email or a webhook, nor announce a failure of a job that completed.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import formatdate
from typing import Any

from vid2mp3 import display, events, webhooks
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.errors import InvalidInput, PermanentError, TransientError
from vid2mp3.model import Job, JobState, SummaryStatus, User
from vid2mp3.services import Services

log = logging.getLogger(__name__)

#: Event type → notification kind (also the template name).
KINDS = {
    events.AUDIO_CONVERTED: "ready",
    events.AUDIO_SUMMARIZED: "summary",
    events.JOB_FAILED: "failed",
}
SUBJECTS = {
    "ready": "Your MP3 is ready: {name}",
    "summary": "Summary of {name}",
    "failed": "We could not convert {name}",
}
WEBHOOK_PREFIX = "webhook:"
# A claim older than this is from a sender that died; another delivery may take over.
STALE_CLAIM_SECONDS = 600


@functools.cache
def _templates() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("vid2mp3", "templates"),
        # Every .html template is escaped; a file may be named "<script>.mp4".
        autoescape=jinja2.select_autoescape(["html"], default_for_string=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(kind: str, job: Job, user: User, services: Services) -> EmailMessage:
    """The email for ``kind`` with text and HTML alternatives (HTML autoescaped)."""
    config = services.config
    context = {
        "job": job,
        "name": job.filename,
        "mp3_name": job.mp3_filename,
        "duration": display.duration(job.mp3_duration),
        "size": display.size(job.mp3_size),
        "reason": job.error or "",
        "summary": job.summary if job.summary_status == SummaryStatus.DONE else None,
        # The ready email promises a summary only when one is on its way.
        "summary_coming": job.summary_status == SummaryStatus.PENDING
        and bool(config.openai_base_url or config.openai_api_key),
        "job_url": f"{config.public_url}/#/jobs/{job.id}",
        "download_url": f"{config.public_url}/function/jobs/{job.id}/download",
    }
    env = _templates()
    message = EmailMessage()
    message["Subject"] = SUBJECTS[kind].format(name=job.filename)
    message["From"] = config.mail_from
    message["To"] = user.email
    message["Date"] = formatdate(localtime=False)
    # Stable per (job, kind): a resend after a crash is recognisably the same message.
    message["Message-ID"] = f"<{job.id}.{kind}@vid2mp3.local>"
    message["X-Vid2mp3-Job"] = job.id
    message.set_content(env.get_template(f"{kind}.txt").render(context))
    message.add_alternative(env.get_template(f"{kind}.html").render(context), subtype="html")
    return message


def handle(services: Services, event: events.Event) -> str:
    """Send what ``event`` calls for, once per (job, kind); raises ``TransientError`` when a
    message should be tried again (the others already sent stay sent)."""
    kind = KINDS.get(event.type)
    if kind is None:
        return "not a notification event"
    job_id = str(event.data["job_id"])
    where = {"job_id": job_id, "event_id": event.id, "kind": kind}
    with services.uow() as uow:
        job = uow.jobs.get(job_id)
        user = uow.users.by_id(job.user_id) if job else None
    if job is None or user is None:
        log.warning("notification for unknown job ignored", extra=where)
        return "unknown job"
    told = as_recorded(event, job)
    if told is None:
        log.warning(
            "notification not backed by the job's record; nothing sent",
            extra={**where, "state": str(job.state)},
        )
        return f"the job is {job.state}; nothing to send for {event.type}"

    sends: dict[str, Callable[[], None]] = {}
    if kind != "summary" or job.summary_status == SummaryStatus.DONE:
        sends[kind] = lambda: services.mailer.send(render(kind, job, user, services))
    if user.webhook_url:
        url = user.webhook_url
        sends[WEBHOOK_PREFIX + kind] = lambda: webhooks.deliver(services.config, user.id, url, told)
    if not sends:
        return "nothing to send"

    outcomes: list[str] = []
    retry: TransientError | None = None
    for channel, send in sends.items():
        try:
            outcomes.append(f"{channel}: {_send_once(services, job_id, channel, send, where)}")
        except TransientError as exc:
            outcomes.append(f"{channel}: will retry")
            retry = retry or exc
    if retry is not None:
        raise TransientError(f"{retry.message} ({'; '.join(outcomes)})")
    return "; ".join(outcomes)


def as_recorded(event: events.Event, job: Job) -> events.Event | None:
    """``event`` with its data taken from ``job``'s row (same id and type, so a receiver can
    tell a resend), or ``None`` when the row does not back it."""
    owner = {"job_id": job.id, "user_id": job.user_id}
    data: dict[str, Any]
    if event.type == events.AUDIO_CONVERTED:
        if job.mp3_key is None or job.state not in (JobState.CONVERTED, JobState.COMPLETED):
            return None
        data = {
            **owner,
            "filename": job.filename,
            "mp3_key": job.mp3_key,
            "mp3_size": job.mp3_size or 0,
            "duration": job.mp3_duration or 0.0,
            "bitrate": job.mp3_bitrate or 0,
        }
    elif event.type == events.AUDIO_SUMMARIZED:
        if job.state is not JobState.COMPLETED or job.summary_status in (None, "pending"):
            return None
        data = {**owner, "summary_status": job.summary_status, "reason": job.summary_reason}
        if job.summary_status == SummaryStatus.DONE:
            data.update(
                summary=job.summary,
                category=job.category,
                context_truncated=bool(job.context_truncated),
            )
    elif event.type == events.JOB_FAILED:
        if job.state is not JobState.FAILED:
            return None
        # The stage is the publisher's word (the event is signed); the reason is the row's.
        stage = event.data.get("stage")
        data = {**owner, "filename": job.filename, "stage": stage, "reason": job.error or ""}
    else:
        return None
    # The platform's signature stays inside: a webhook is signed with the user's own secret.
    told = dataclasses.replace(event, data=data, signature="")
    try:
        events.validate(told)
    except InvalidInput as exc:
        # A row that cannot make a valid event is ours to fix, not the caller's: say so loudly.
        log.error(
            "job row does not make a valid event", extra={"job_id": job.id, "reason": exc.message}
        )
        return None
    return told


def _send_once(
    services: Services,
    job_id: str,
    channel: str,
    send: Callable[[], None],
    where: dict[str, str | None],
) -> str:
    """Run ``send`` unless ``channel`` was already sent for the job; record that it was."""
    where = {**where, "channel": channel}

    def claim(uow: UnitOfWork) -> str | None:
        if uow.notifications.status(job_id, channel) == "sent":
            return "already sent"
        if not uow.notifications.claim(job_id, channel, stale_after=STALE_CLAIM_SECONDS):
            return "held"
        return None

    claimed = services.atomically(claim)
    if claimed == "already sent":
        return claimed
    if claimed == "held":
        raise TransientError(f"another worker is sending the {channel} notification")
    try:
        send()
    except PermanentError as exc:
        _release(services, job_id, channel)
        log.error(
            "notification refused for good; not retried", extra={**where, "reason": exc.message}
        )
        return "refused"
    except Exception as exc:
        _release(services, job_id, channel)
        log.warning(
            "sending failed; the event will be redelivered", extra={**where, "reason": str(exc)}
        )
        if isinstance(exc, TransientError):
            raise
        raise TransientError(f"could not send the {channel} notification: {exc}") from exc
    services.atomically(lambda uow: uow.notifications.mark_sent(job_id, channel))
    log.info("notification sent", extra=where)
    return "sent"


def _release(services: Services, job_id: str, channel: str) -> None:
    services.atomically(lambda uow: uow.notifications.release(job_id, channel))
