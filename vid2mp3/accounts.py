"""An account's own calls: change its password, delete it with everything it owns.

Both ask for the password again, checked with the sign-in's throttling (a stolen session token
must not become a way to guess the password).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from typing import Any

from vid2mp3 import auth, passwords, users
from vid2mp3 import jobs as job_lifecycle
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from vid2mp3.model import Job, JobState, User
from vid2mp3.services import Services

log = logging.getLogger(__name__)

#: A job in these states has a worker that may still write to it: deleting it would leave
#: what the worker writes next behind (the rule of ``jobs.delete``).
_IN_FLIGHT = (JobState.UPLOADED, JobState.CONVERTING, JobState.CONVERTED)


def change_password(
    services: Services, user_id: str, current_password: Any, new_password: Any, *, client: str
) -> tuple[str, int]:
    """Replace the password of ``user_id`` and end every session issued before; returns a new
    session token ``(token, expires_at)``. Raises ``InvalidInput`` (a new password the policy
    refuses), ``Forbidden`` (wrong current password), ``TooManyRequests`` or ``Unauthorized``
    (the account is gone)."""
    if not isinstance(current_password, str) or not current_password:
        raise InvalidInput('send {"current_password": "...", "new_password": "..."}')
    user = _user(services, user_id)
    passwords.check(new_password, email=user.email)
    if new_password == current_password:
        raise InvalidInput("new_password is the current password; choose another one")
    _confirm(services, user, current_password, client=client)
    password_hash = auth.hash_password(new_password)
    generation = services.atomically(lambda uow: uow.users.set_password(user.id, password_hash))
    if generation is None:
        raise Unauthorized("this account no longer exists; sign up or sign in with another")
    log.info("password changed", extra={"user_id": user.id})
    changed = dataclasses.replace(user, password_hash=password_hash, session_generation=generation)
    return users.session_token(services, changed)


def delete(services: Services, user_id: str, password: Any, *, client: str) -> None:
    """Delete the account of a signed-in user who confirmed with ``password``
    (``delete_account``); raises ``InvalidInput`` (no password), ``Forbidden`` (wrong one),
    ``TooManyRequests``, ``Conflict`` or ``Unauthorized``."""
    if not isinstance(password, str) or not password:
        raise InvalidInput('send {"password": "..."} to confirm the deletion')
    user = _user(services, user_id)
    _confirm(services, user, password, client=client)
    delete_account(services, user)


def delete_with_credentials(services: Services, email: str, password: str, *, client: str) -> None:
    """Delete the account these credentials (HTTP Basic) sign in to (``delete_account``);
    raises ``Unauthorized``, ``TooManyRequests`` or ``Conflict``."""
    delete_account(services, users.verified(services, email, password, client=client))


def delete_account(services: Services, user: User) -> None:
    """Remove ``user``'s jobs (their files in every store, through ``jobs.delete``), the rows
    that name them, then the user: every token of the account is refused from then on.

    A job still being converted is a ``Conflict`` and nothing is deleted: its worker would
    write the MP3 back. A failure halfway (storage down: ``TransientError``) leaves the
    account in place with fewer jobs, so the same call finishes the work later.
    """

    def forget_user(uow: UnitOfWork) -> bool:
        # A job created while we deleted (an upload-init that authenticated just before):
        # go round again rather than leave it behind without its owner.
        if uow.jobs.list_for_user(user.id, limit=1):
            return False
        uow.users.delete(user.id)
        return True

    while True:
        owned = job_lifecycle.list_for(services, user.id)
        busy = [job for job in owned if job.state in _IN_FLIGHT]
        if busy:
            raise Conflict(
                f"your job {busy[0].id} ({busy[0].filename}) is {busy[0].state}; delete your "
                "account once it has finished"
            )
        for job in owned:
            _delete_job(services, job)
        if not owned and services.atomically(forget_user):
            break
    log.info("account deleted", extra={"user_id": user.id})


def _delete_job(services: Services, job: Job) -> None:
    # NotFound: deleted meanwhile (DELETE /jobs/<id>, or the same call running twice).
    with contextlib.suppress(NotFound):
        job_lifecycle.delete(services, job.id, job.user_id)

    # Rows jobs.delete keeps for the operator (sent events, the event log, notification
    # records) name the account's files; with the account they go too.
    def forget(uow: UnitOfWork) -> None:
        uow.notifications.forget_job(job.id)
        uow.outbox.forget_sent(job.id)
        uow.event_log.forget_subject(job.id)

    services.atomically(forget)


def _user(services: Services, user_id: str) -> User:
    with services.uow() as uow:
        user = uow.users.by_id(user_id)
    if user is None:
        raise Unauthorized("this account no longer exists; sign up or sign in with another")
    return user


def _confirm(services: Services, user: User, password: str, *, client: str) -> None:
    """Check ``password`` as a sign-in would (throttled); the caller is signed in already, so a
    wrong one is ``Forbidden``, not a reason to sign in again."""
    try:
        users.verified(services, user.email, password, client=client)
    except Unauthorized:
        raise Forbidden("the password is wrong") from None
