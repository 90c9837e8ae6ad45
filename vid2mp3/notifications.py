"""The notify step: one email per job per kind, rendered from templates."""

from __future__ import annotations

import functools
import logging
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from vid2mp3 import display, events
from vid2mp3.errors import TransientError
from vid2mp3.model import Job, User
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
# A claim older than this is from a sender that died; another delivery may take over.
STALE_CLAIM_SECONDS = 600


@functools.cache
def _templates() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("vid2mp3", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(kind: str, job: Job, user: User, services: Services, reason: str = "") -> EmailMessage:
    """The email for ``kind`` with text and HTML alternatives (HTML autoescaped)."""
    context = {
        "job": job,
        "name": job.filename,
        "mp3_name": job.mp3_filename,
        "duration": display.duration(job.mp3_duration),
        "size": display.size(job.mp3_size),
        "reason": reason or job.error or "",
        "job_url": f"{services.config.public_url}/#/jobs/{job.id}",
        "download_url": f"{services.config.public_url}/function/jobs/{job.id}/download",
    }
    env = _templates()
    message = EmailMessage()
    message["Subject"] = SUBJECTS[kind].format(name=job.filename)
    message["From"] = services.config.mail_from
    message["To"] = user.email
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="vid2mp3.local")
    message["X-Vid2mp3-Job"] = job.id
    message.set_content(env.get_template(f"{kind}.txt").render(context))
    message.add_alternative(env.get_template(f"{kind}.html").render(context), subtype="html")
    return message


def handle(services: Services, event: events.Event) -> str:
    """Send the notification ``event`` calls for, once per (job, kind) whatever redeliveries."""
    kind = KINDS.get(event.type)
    job_id = str(event.data["job_id"])
    where = {"job_id": job_id, "event_id": event.id, "kind": kind}
    if kind is None:
        return "not a notification event"
    if kind == "summary" and event.data.get("summary_status") != "done":
        return "no summary to send"
    with services.uow() as uow:
        job = uow.jobs.get(job_id)
        user = uow.users.by_id(job.user_id) if job else None
        if job is None or user is None:
            log.warning("notification for unknown job ignored", extra=where)
            return "unknown job"
        if uow.notifications.status(job_id, kind) == "sent":
            return "already sent"
        if not uow.notifications.claim(job_id, kind, stale_after=STALE_CLAIM_SECONDS):
            raise TransientError("another worker is sending this notification")
        uow.commit()
    try:
        services.mailer.send(render(kind, job, user, services, str(event.data.get("reason", ""))))
    except Exception as exc:
        with services.uow() as uow:
            uow.notifications.release(job_id, kind)
            uow.commit()
        log.warning(
            "sending failed; the event will be redelivered", extra={**where, "reason": str(exc)}
        )
        raise TransientError(f"could not send the email: {exc}") from exc
    with services.uow() as uow:
        uow.notifications.mark_sent(job_id, kind)
        uow.commit()
    log.info("notification sent", extra=where)
    return "sent"
