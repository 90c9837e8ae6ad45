"""The one skeleton of an event handler that does a step of a job (convert, summarize).

Every such handler is at-least-once safe the same way, so it is written once, here:

1. **seen or claim** (one transaction): an event id this step already handled is a duplicate;
   an unknown job, or one that no longer waits for the step, is recorded as handled; else the
   step's lease is taken. A live lease means another worker is on it: the event is answered as
   done, because if that worker dies its lease runs out and the relay announces the step again
   (``vid2mp3.runtime.relay``), which also counts the takeover. Past ``MAX_TAKEOVERS`` the job fails with
   a reason that says the service kept stopping, not the file.
2. **work**, outside any transaction, with a heartbeat renewing the lease.
3. **settle** (one transaction): the job moves to the step's result only if it is still in the
   states the step expects, the announcement goes into the outbox, the lease is dropped and the
   event id recorded; then the outbox is published.

A ``PermanentError`` from the work fails the job with its message. Anything else (a transient
error, a shutdown, a bug) hands the lease back and propagates, so the broker delivers again and
another attempt starts afresh; the broker's dead-letter rule settles a step that keeps failing.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from vid2mp3 import events, jobs, shutdown
from vid2mp3.config import Config
from vid2mp3.db.repositories import Lease
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.errors import PermanentError
from vid2mp3.model import Job, JobState
from vid2mp3.services import Services

log = logging.getLogger(__name__)

#: The reason a job fails with when its workers kept dying (never the file's fault).
KEPT_STOPPING = (
    "the service kept stopping while working on this file ({count} times); this is a problem "
    "on our side, not with your file; please try again later"
)


#: What ``_claim`` answers when the job failed for its takeovers (its failure is announced).
_GAVE_UP = "failed: the service kept stopping"


def _nothing(uow: UnitOfWork, job: Job) -> None:
    return None


@dataclass(frozen=True)
class Step:
    """What the skeleton needs to know about one step.

    Args:
        name: the consumer name (``processed_events``) and the lease's step name.
        waits: true while ``job`` still needs this step (false: a late duplicate).
        begin: extra changes when a worker starts the step, in the claiming transaction
            (convert moves the job to ``converting``).
    """

    name: str
    waits: Callable[[Job], bool]
    begin: Callable[[UnitOfWork, Job], object] = _nothing


@dataclass(frozen=True)
class Result:
    """What a finished step changes: ``changes`` on the job if it is still in ``only_in``,
    and ``announce`` (validated) into the outbox when it did."""

    outcome: str
    only_in: tuple[JobState, ...]
    changes: Mapping[str, Any] = field(default_factory=dict)
    announce: events.Event | None = None


@dataclass
class Work:
    """A claimed step, handed to the work function."""

    services: Services
    job: Job
    event: events.Event
    lease: Lease

    def renew(self, **job_changes: Any) -> bool:
        """Extend the lease (and set ``job_changes``, e.g. progress, while the job is still in
        its current state); False when the step was taken over by another worker."""
        seconds = self.services.config.job_lease_seconds
        state = self.job.state

        def renew(uow: UnitOfWork) -> bool:
            held = uow.leases.renew(self.lease, seconds)
            if held and job_changes:
                uow.jobs.update(self.job.id, only_in=(state,), **job_changes)
            return held

        return self.services.atomically(renew)


def run(services: Services, event: events.Event, step: Step, work: Callable[[Work], Result]) -> str:
    """Handle ``event`` for ``step`` with ``work``; returns what happened (log and response)."""
    shutdown.check()
    job_id = str(event.data["job_id"])
    holder = f"{step.name}:{uuid.uuid4()}"
    claimed = services.atomically(lambda uow: _claim(services, uow, event, step, job_id, holder))
    if claimed == _GAVE_UP:
        services.publish_outbox(job_id)  # the failure it announced
    if isinstance(claimed, str):
        return claimed
    job, lease = claimed
    where = {"job_id": job_id, "event_id": event.id, "step": step.name}
    log.info("step started", extra={**where, "takeover": lease.took_over})
    task = Work(services, job, event, lease)
    try:
        with _heartbeat(task):
            result = work(task)
    except PermanentError as exc:
        reason = exc.message
        services.atomically(lambda uow: _fail(uow, services, job_id, step, event, reason))
        services.publish_outbox(job_id)
        return "failed"
    except BaseException as exc:
        _hand_back(services, lease, where, exc)
        raise
    services.atomically(lambda uow: _settle(uow, job_id, step, event, result))
    log.info("step finished", extra={**where, "outcome": result.outcome})
    services.publish_outbox(job_id)
    return result.outcome


def kept_stopping(config: Config, takeovers: int) -> str | None:
    """The reason a job fails with after ``takeovers`` worker deaths, or ``None`` while it is
    within ``MAX_TAKEOVERS`` (the one rule; the claim here and the relay both apply it)."""
    if takeovers <= config.max_takeovers:
        return None
    return KEPT_STOPPING.format(count=takeovers)


def _claim(
    services: Services,
    uow: UnitOfWork,
    event: events.Event,
    step: Step,
    job_id: str,
    holder: str,
) -> tuple[Job, Lease] | str:
    if uow.processed.seen(step.name, event.id):
        return "duplicate event"
    job = uow.jobs.get(job_id)
    if job is None:
        uow.processed.record(step.name, event.id)
        log.warning("event for unknown job ignored", extra={"job_id": job_id})
        return "unknown job"
    if not step.waits(job):
        uow.processed.record(step.name, event.id)
        return f"nothing to do (the job is {job.state})"
    lease = uow.leases.take(
        job_id,
        step.name,
        holder=holder,
        lease_seconds=services.config.job_lease_seconds,
        event=event,
    )
    if lease is None:
        # Not recorded as handled: if the worker on it dies, this event is announced again.
        return "another worker is on it"
    reason = kept_stopping(services.config, lease.takeovers)
    if reason is not None:
        jobs.mark_failed(uow, services.config, job, stage=step.name, reason=reason)
        uow.processed.record(step.name, event.id)
        return _GAVE_UP
    step.begin(uow, job)
    return uow.jobs.get(job_id) or job, lease


def apply(uow: UnitOfWork, job_id: str, step_name: str, result: Result) -> bool:
    """Inside ``uow``: the job's transition of ``result`` (only from ``result.only_in``), its
    announcement into the outbox when the job moved, and the step's lease dropped; returns
    whether the job moved. A step's settle, and a dead-letter policy settling for it."""
    changed = bool(result.changes) and uow.jobs.update(
        job_id, only_in=result.only_in, **result.changes
    )
    if changed and result.announce is not None:
        events.validate(result.announce)
        uow.outbox.add(result.announce, job_id)
    uow.leases.drop(job_id, step_name)
    return changed


def _settle(uow: UnitOfWork, job_id: str, step: Step, event: events.Event, result: Result) -> None:
    apply(uow, job_id, step.name, result)
    uow.processed.record(step.name, event.id)


def _fail(
    uow: UnitOfWork,
    services: Services,
    job_id: str,
    step: Step,
    event: events.Event,
    reason: str,
) -> None:
    job = uow.jobs.get(job_id)
    if job is not None:
        jobs.mark_failed(uow, services.config, job, stage=step.name, reason=reason)
    uow.leases.drop(job_id, step.name)  # also when the job is gone (mark_failed drops its own)
    uow.processed.record(step.name, event.id)


def _hand_back(services: Services, lease: Lease, where: dict[str, Any], exc: BaseException) -> None:
    """Release the lease so the next delivery starts the step afresh (never a takeover)."""
    try:
        services.atomically(lambda uow: uow.leases.release(lease))
    except Exception:
        # The lease then simply runs out, and the relay announces the step again.
        log.exception("could not hand the step back", extra=where)
    reason = getattr(exc, "message", None) or repr(exc)
    log.warning("step handed back", extra={**where, "reason": reason})


@contextlib.contextmanager
def _heartbeat(task: Work) -> Iterator[None]:
    """Renew ``task``'s lease in a thread while the block runs (every lease/4), so the lease
    stays alive while the work is silent (probing, storing, waiting on an API); stopped before
    the block's outcome is settled."""
    stop = threading.Event()
    interval = max(0.5, task.services.config.job_lease_seconds / 4)
    where = {"job_id": task.job.id, "step": task.lease.step}

    def beat() -> None:
        while not stop.wait(interval):
            try:
                if not task.renew():
                    log.warning("lease lost to another worker", extra=where)
                    return
            except Exception:
                log.exception("lease renewal failed", extra=where)

    thread = threading.Thread(target=beat, name=f"heartbeat-{task.job.id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
