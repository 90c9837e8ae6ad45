"""Portable SQL for each table. Values always travel as parameters, never inside the SQL."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, fields
from typing import Any

from vid2mp3.db.database import Transaction
from vid2mp3.deliveries import Delivery, LoggedEvent
from vid2mp3.events import Event
from vid2mp3.model import ConversionOptions, Job, JobState, User

_JOB_COLUMNS = tuple(f.name for f in fields(Job))
# Columns a caller may change through Jobs.update (never the id, owner or creation time).
_MUTABLE = frozenset(_JOB_COLUMNS) - {"id", "user_id", "created_at"}


class _Repository:
    def __init__(self, uow: Transaction) -> None:
        self._uow = uow

    def _execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        return self._uow.execute(sql, params)


class Users(_Repository):
    def add(self, user: User) -> bool:
        """Insert ``user``; False when the email is taken."""
        try:
            self._execute(
                "INSERT INTO users (id, email, password_hash, webhook_url, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (user.id, user.email, user.password_hash, user.webhook_url, user.created_at),
            )
        except Exception as exc:
            if self._uow.is_duplicate_key(exc):
                return False
            raise
        return True

    def _one(self, where: str, value: str) -> User | None:
        row = self._execute(
            "SELECT id, email, password_hash, created_at, webhook_url, session_generation "
            f"FROM users WHERE {where}",
            (value,),
        ).fetchone()
        return User(*row[:5], session_generation=int(row[5])) if row else None

    def by_email(self, email: str) -> User | None:
        return self._one("email = ?", email)

    def by_id(self, user_id: str) -> User | None:
        return self._one("id = ?", user_id)

    def set_webhook(self, user_id: str, url: str | None) -> None:
        """Set (or clear, with ``None``) the user's webhook URL."""
        self._execute("UPDATE users SET webhook_url = ? WHERE id = ?", (url, user_id))

    def session_generation(self, user_id: str) -> int | None:
        """The generation current session tokens must carry; ``None`` when the user is gone.
        One primary-key lookup: it runs on every request that carries a token."""
        row = self._execute(
            "SELECT session_generation FROM users WHERE id = ?", (user_id,)
        ).fetchone()
        return int(row[0]) if row else None

    def set_password(self, user_id: str, password_hash: str) -> int | None:
        """Store a new password hash and end every session issued before; returns the new
        session generation (``None`` when the user is gone)."""
        self._execute(
            "UPDATE users SET password_hash = ?, session_generation = session_generation + 1 "
            "WHERE id = ?",
            (password_hash, user_id),
        )
        return self.session_generation(user_id)

    def delete(self, user_id: str) -> None:
        self._execute("DELETE FROM users WHERE id = ?", (user_id,))


def _job_from_row(row: tuple[Any, ...]) -> Job:
    values = dict(zip(_JOB_COLUMNS, row, strict=True))
    values["state"] = JobState(values["state"])
    values["options"] = ConversionOptions.from_dict(json.loads(values["options"] or "{}"))
    if values["context_truncated"] is not None:
        values["context_truncated"] = bool(values["context_truncated"])
    return Job(**values)


def _column_value(name: str, value: Any) -> Any:
    if name == "options":
        return Job.options_json(value)
    if name == "state":
        return str(value)
    if name == "context_truncated" and value is not None:
        return int(value)
    return value


class Jobs(_Repository):
    _select = f"SELECT {', '.join(_JOB_COLUMNS)} FROM jobs"

    def add(self, job: Job) -> None:
        placeholders = ", ".join("?" for _ in _JOB_COLUMNS)
        self._execute(
            f"INSERT INTO jobs ({', '.join(_JOB_COLUMNS)}) VALUES ({placeholders})",
            tuple(_column_value(n, getattr(job, n)) for n in _JOB_COLUMNS),
        )

    def get(self, job_id: str) -> Job | None:
        row = self._execute(f"{self._select} WHERE id = ?", (job_id,)).fetchone()
        return _job_from_row(row) if row else None

    def list_for_user(self, user_id: str, limit: int = 100) -> list[Job]:
        rows = self._execute(
            f"{self._select} WHERE user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
            (user_id, limit),
        ).fetchall()
        return [_job_from_row(r) for r in rows]

    def update(self, job_id: str, *, only_in: tuple[JobState, ...] = (), **changes: Any) -> bool:
        """Set ``changes`` on the job; when ``only_in`` is given, only if its state is one of
        them (a compare-and-set). Returns whether a row changed."""
        unknown = set(changes) - _MUTABLE
        if unknown:
            raise ValueError(f"not updatable job columns: {sorted(unknown)}")
        changes["updated_at"] = time.time()
        assignments = ", ".join(f"{name} = ?" for name in changes)
        params = [_column_value(n, v) for n, v in changes.items()]
        sql = f"UPDATE jobs SET {assignments} WHERE id = ?"
        params.append(job_id)
        if only_in:
            sql += f" AND state IN ({', '.join('?' for _ in only_in)})"
            params.extend(str(s) for s in only_in)
        return self._execute(sql, tuple(params)).rowcount == 1

    def delete(self, job_id: str) -> None:
        self._execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def start_converting(self, job_id: str) -> bool:
        """Move the job to ``converting`` (from ``uploaded``, or again after a takeover) and
        count the attempt. Returns whether the job was in one of those states."""
        cur = self._execute(
            "UPDATE jobs SET state = ?, attempts = attempts + 1, progress = 0, updated_at = ? "
            "WHERE id = ? AND state IN (?, ?)",
            (
                str(JobState.CONVERTING),
                time.time(),
                job_id,
                str(JobState.UPLOADED),
                str(JobState.CONVERTING),
            ),
        )
        return cur.rowcount == 1


class ProcessedEvents(_Repository):
    """Event ids a consumer has handled: the idempotency key of at-least-once delivery."""

    def seen(self, consumer: str, event_id: str) -> bool:
        row = self._execute(
            "SELECT 1 FROM processed_events WHERE consumer = ? AND event_id = ?",
            (consumer, event_id),
        ).fetchone()
        return row is not None

    def record(self, consumer: str, event_id: str) -> None:
        try:
            self._execute(
                "INSERT INTO processed_events (consumer, event_id, processed_at) VALUES (?, ?, ?)",
                (consumer, event_id, time.time()),
            )
        except Exception as exc:
            if not self._uow.is_duplicate_key(exc):
                raise


class Outbox(_Repository):
    """Events written in the same transaction as the state change they announce.

    A publisher claims rows before it publishes them (``claim``), so publishers running at the
    same time never send one row twice, and marks each sent after the broker's confirm. A claim
    whose publisher died runs out (``claimed_until``) and the row is claimed again: an event is
    published once in the normal case and at least once whatever happens.
    """

    def add(self, event: Event, job_id: str) -> None:
        self._execute(
            "INSERT INTO outbox (id, job_id, payload, created_at) VALUES (?, ?, ?, ?)",
            (event.id, job_id, event.to_json(), time.time()),
        )

    def claim(
        self, *, lease_seconds: float, job_id: str | None = None, limit: int = 100
    ) -> list[Event]:
        """Take up to ``limit`` unsent, unclaimed rows (of ``job_id``, or of every job) for
        ``lease_seconds``, oldest first; rows another transaction is claiming are skipped."""
        now = time.time()
        where = "sent_at IS NULL AND (claimed_until IS NULL OR claimed_until < ?)"
        params: list[Any] = [now]
        if job_id is not None:
            where += " AND job_id = ?"
            params.append(job_id)
        rows = self._execute(
            f"SELECT id, payload FROM outbox WHERE {where} ORDER BY created_at, id LIMIT ?"
            + self._uow.skip_locked,
            (*params, limit),
        ).fetchall()
        if rows:
            marks = ", ".join("?" for _ in rows)
            self._execute(
                f"UPDATE outbox SET claimed_until = ? WHERE id IN ({marks})",
                (now + lease_seconds, *(r[0] for r in rows)),
            )
        return [Event.from_json(r[1]) for r in rows]

    def pending(self, job_id: str) -> list[Event]:
        """The job's unsent events (claimed or not), oldest first."""
        rows = self._execute(
            "SELECT payload FROM outbox WHERE job_id = ? AND sent_at IS NULL ORDER BY created_at",
            (job_id,),
        ).fetchall()
        return [Event.from_json(r[0]) for r in rows]

    def mark_sent(self, event_id: str) -> None:
        self._execute(
            "UPDATE outbox SET sent_at = ?, claimed_until = NULL WHERE id = ?",
            (time.time(), event_id),
        )

    def release(self, event_id: str) -> None:
        """Give a claimed row back unsent (its publish failed), for the relay to retry."""
        self._execute(
            "UPDATE outbox SET claimed_until = NULL WHERE id = ? AND sent_at IS NULL",
            (event_id,),
        )

    def forget_job(self, job_id: str) -> None:
        """Drop the job's unsent events (the job is being deleted)."""
        self._execute("DELETE FROM outbox WHERE job_id = ? AND sent_at IS NULL", (job_id,))

    def forget_sent(self, job_id: str) -> None:
        """Drop the job's sent events too (its account is deleted: they name its file)."""
        self._execute("DELETE FROM outbox WHERE job_id = ?", (job_id,))


@dataclass(frozen=True)
class Lease:
    """A worker's hold on one step of one job."""

    job_id: str
    step: str
    holder: str
    takeovers: int
    #: True when the previous holder's lease ran out (it died): a takeover.
    took_over: bool = False


@dataclass(frozen=True)
class Abandoned:
    """A step whose worker died or handed it back, waiting to be announced again."""

    job_id: str
    step: str
    takeovers: int
    event: Event


class Leases(_Repository):
    """Who does a job's long or paid step right now (``step_leases``).

    ``take`` succeeds when nobody holds the step, when its holder handed it back (``release``),
    or when the holder's lease ran out (a takeover, counted in ``takeovers``). The holder renews
    it while working and ``drop``s it when the step's result is committed.
    """

    def take(
        self, job_id: str, step: str, *, holder: str, lease_seconds: float, event: Event
    ) -> Lease | None:
        now = time.time()
        until = now + lease_seconds
        try:
            self._execute(
                "INSERT INTO step_leases (job_id, step, holder, lease_until, is_free, takeovers, "
                "announced_at, payload) VALUES (?, ?, ?, ?, 0, 0, ?, ?)",
                (job_id, step, holder, until, now, event.to_json()),
            )
            return Lease(job_id, step, holder, 0)
        except Exception as exc:
            if not self._uow.is_duplicate_key(exc):
                raise
        row = self._execute(
            "SELECT is_free, lease_until, takeovers FROM step_leases WHERE job_id = ? AND step = ?"
            + self._uow.skip_locked,
            (job_id, step),
        ).fetchone()
        if row is None:
            return None
        free, expired = bool(row[0]), float(row[1]) < now
        if not (free or expired):
            return None
        took_over = not free
        takeovers = int(row[2]) + (1 if took_over else 0)
        cur = self._execute(
            "UPDATE step_leases SET holder = ?, lease_until = ?, is_free = 0, takeovers = ?, "
            "payload = ? WHERE job_id = ? AND step = ? AND (is_free = 1 OR lease_until < ?)",
            (holder, until, takeovers, event.to_json(), job_id, step, now),
        )
        if cur.rowcount != 1:
            return None
        return Lease(job_id, step, holder, takeovers, took_over=took_over)

    def renew(self, lease: Lease, lease_seconds: float) -> bool:
        """Extend ``lease``; False when it is no longer this holder's (it was taken over)."""
        cur = self._execute(
            "UPDATE step_leases SET lease_until = ? "
            "WHERE job_id = ? AND step = ? AND holder = ? AND is_free = 0",
            (time.time() + lease_seconds, lease.job_id, lease.step, lease.holder),
        )
        return cur.rowcount == 1

    def release(self, lease: Lease) -> None:
        """Hand the step back unfinished: the next delivery takes it without a takeover."""
        now = time.time()
        self._execute(
            "UPDATE step_leases SET is_free = 1, lease_until = ?, announced_at = ? "
            "WHERE job_id = ? AND step = ? AND holder = ?",
            (now, now, lease.job_id, lease.step, lease.holder),
        )

    def held(self, job_id: str, step: str) -> bool:
        """True while a live worker holds ``step`` of the job."""
        row = self._execute(
            "SELECT 1 FROM step_leases WHERE job_id = ? AND step = ? AND is_free = 0 "
            "AND lease_until > ?",
            (job_id, step, time.time()),
        ).fetchone()
        return row is not None

    def drop(self, job_id: str, step: str | None = None) -> None:
        """Forget the lease of ``step`` (every step when ``None``): the step is settled."""
        if step is None:
            self._execute("DELETE FROM step_leases WHERE job_id = ?", (job_id,))
        else:
            self._execute("DELETE FROM step_leases WHERE job_id = ? AND step = ?", (job_id, step))

    def abandoned(self, *, wait_seconds: float, limit: int = 100) -> list[Abandoned]:
        """Claim steps whose holder died (lease ran out), or that were handed back and not
        picked up within ``wait_seconds``, for announcing again. A dead holder counts as a
        takeover; each returned step is reserved for ``wait_seconds`` so it is announced once
        per period."""
        now = time.time()
        rows = self._execute(
            "SELECT job_id, step, is_free, takeovers, payload FROM step_leases "
            "WHERE (is_free = 0 AND lease_until < ?) OR (is_free = 1 AND announced_at < ?) "
            "ORDER BY lease_until LIMIT ?" + self._uow.skip_locked,
            (now, now - wait_seconds, limit),
        ).fetchall()
        found = []
        for job_id, step, free, takeovers, payload in rows:
            takeovers = int(takeovers) + (0 if free else 1)
            self._execute(
                "UPDATE step_leases SET is_free = 1, takeovers = ?, announced_at = ?, "
                "lease_until = ? WHERE job_id = ? AND step = ?",
                (takeovers, now, now, job_id, step),
            )
            found.append(Abandoned(job_id, step, takeovers, Event.from_json(payload)))
        return found


class Notifications(_Repository):
    """One row per (job, kind): claimed before sending, marked sent after."""

    def claim(self, job_id: str, kind: str, *, stale_after: float) -> bool:
        """True when the caller may send: nobody has, and nobody is sending right now."""
        now = time.time()
        try:
            self._execute(
                "INSERT INTO notifications (job_id, kind, status, claimed_at) VALUES (?, ?, ?, ?)",
                (job_id, kind, "sending", now),
            )
            return True
        except Exception as exc:
            if not self._uow.is_duplicate_key(exc):
                raise
        # A claim whose sender died long ago may be taken over.
        cur = self._execute(
            "UPDATE notifications SET claimed_at = ? "
            "WHERE job_id = ? AND kind = ? AND status = ? AND claimed_at < ?",
            (now, job_id, kind, "sending", now - stale_after),
        )
        return cur.rowcount == 1

    def status(self, job_id: str, kind: str) -> str | None:
        row = self._execute(
            "SELECT status FROM notifications WHERE job_id = ? AND kind = ?", (job_id, kind)
        ).fetchone()
        return row[0] if row else None

    def mark_sent(self, job_id: str, kind: str) -> None:
        self._execute(
            "UPDATE notifications SET status = ?, sent_at = ? WHERE job_id = ? AND kind = ?",
            ("sent", time.time(), job_id, kind),
        )

    def release(self, job_id: str, kind: str) -> None:
        self._execute(
            "DELETE FROM notifications WHERE job_id = ? AND kind = ? AND status = ?",
            (job_id, kind, "sending"),
        )

    def forget_job(self, job_id: str) -> None:
        """Drop every notification row of the job (its account is deleted)."""
        self._execute("DELETE FROM notifications WHERE job_id = ?", (job_id,))


class EventLog(_Repository):
    """Every event the dispatcher carried and every delivery attempt (``vid2mp3 events``)."""

    def record(self, event: Event, delivery: Delivery) -> None:
        """Keep ``event`` (once) and append ``delivery`` to its history."""
        try:
            self._execute(
                "INSERT INTO event_log (id, type, subject, payload, first_seen) "
                "VALUES (?, ?, ?, ?, ?)",
                (event.id, event.type, event.subject, event.to_json(), delivery.delivered_at),
            )
        except Exception as exc:
            if not self._uow.is_duplicate_key(exc):
                raise
        self._execute(
            "INSERT INTO event_deliveries (id, event_id, target, attempt, status, outcome, "
            "duration, delivered_at, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(uuid.uuid4()),
                event.id,
                delivery.target,
                delivery.attempt,
                delivery.status,
                delivery.outcome,
                delivery.duration,
                delivery.delivered_at,
                delivery.detail[:2000],
            ),
        )

    def recent(self, limit: int = 100) -> list[LoggedEvent]:
        """The latest ``limit`` events, newest first, each with its deliveries."""
        rows = self._execute(
            "SELECT id, payload, first_seen FROM event_log ORDER BY first_seen DESC, id LIMIT ?",
            (limit,),
        ).fetchall()
        return [self._logged(r[1], r[2], self._deliveries(r[0])) for r in rows]

    def get(self, event_id: str) -> LoggedEvent | None:
        row = self._execute(
            "SELECT payload, first_seen FROM event_log WHERE id = ?", (event_id,)
        ).fetchone()
        return self._logged(row[0], row[1], self._deliveries(event_id)) if row else None

    def _deliveries(self, event_id: str) -> tuple[Delivery, ...]:
        rows = self._execute(
            "SELECT event_id, target, attempt, status, outcome, duration, delivered_at, detail "
            "FROM event_deliveries WHERE event_id = ? ORDER BY delivered_at, attempt",
            (event_id,),
        ).fetchall()
        return tuple(
            Delivery(r[0], r[1], int(r[2]), int(r[3]), r[4], float(r[5]), float(r[6]), r[7] or "")
            for r in rows
        )

    @staticmethod
    def _logged(payload: str, first_seen: float, deliveries: tuple[Delivery, ...]) -> LoggedEvent:
        return LoggedEvent(Event.from_json(payload), float(first_seen), deliveries)

    def forget_subject(self, subject: str) -> None:
        """Drop the events about ``subject`` (a job of a deleted account: they carry its user
        id and filename) and their deliveries."""
        self._execute(
            "DELETE FROM event_deliveries WHERE event_id IN "
            "(SELECT id FROM event_log WHERE subject = ?)",
            (subject,),
        )
        self._execute("DELETE FROM event_log WHERE subject = ?", (subject,))


class Throttles(_Repository):
    """Counters of failed attempts (``auth_throttle``), one row per (scope, subject).

    ``charge`` counts an attempt before it is judged; ``refund`` gives it back when it
    succeeded. The row lock ``charge``'s UPDATE takes serializes attempts on one bucket until
    the transaction ends, so attempts at the same time see each other's counts.
    """

    def charge(self, scope: str, subject: str, *, now: float, forget_before: float) -> int | None:
        """Count one failure unless the bucket is locked; returns the count, ``None`` when
        locked, or 0 when the bucket has no row yet (``create`` it in a transaction of its
        own, then charge again). A count whose last failure is older than ``forget_before``
        starts over."""
        # failures is assigned first: MySQL evaluates SET from left to right, so the CASE
        # must see last_failure before it is overwritten.
        cur = self._execute(
            "UPDATE auth_throttle SET "
            "failures = CASE WHEN last_failure < ? THEN 1 ELSE failures + 1 END, "
            "last_failure = ? WHERE scope = ? AND subject = ? AND locked_until <= ?",
            (forget_before, now, scope, subject, now),
        )
        if cur.rowcount == 1:
            row = self._execute(
                "SELECT failures FROM auth_throttle WHERE scope = ? AND subject = ?",
                (scope, subject),
            ).fetchone()
            return int(row[0])
        return None if self.locked_until(scope, subject) > now else 0

    def create(self, scope: str, subject: str, *, now: float) -> None:
        """Make the bucket's row (no failures) unless it exists. Alone in its transaction: on
        MariaDB, inserts of one key that wait for each other keep shared locks after the
        duplicate-key error, and two of them updating the row next would deadlock."""
        try:
            self._execute(
                "INSERT INTO auth_throttle (scope, subject, failures, locked_until, "
                "last_failure) VALUES (?, ?, 0, 0, ?)",
                (scope, subject, now),
            )
        except Exception as exc:
            if not self._uow.is_duplicate_key(exc):
                raise

    def locked_until(self, scope: str, subject: str) -> float:
        row = self._execute(
            "SELECT locked_until FROM auth_throttle WHERE scope = ? AND subject = ?",
            (scope, subject),
        ).fetchone()
        return float(row[0]) if row else 0.0

    def lock(self, scope: str, subject: str, until: float) -> None:
        self._execute(
            "UPDATE auth_throttle SET locked_until = ? WHERE scope = ? AND subject = ?",
            (until, scope, subject),
        )

    def refund(self, scope: str, subject: str, *, lock_set: float | None) -> None:
        """Give back one counted attempt that succeeded, and the lock it set (``lock_set``)
        unless a later attempt has set another since."""
        self._execute(
            "UPDATE auth_throttle SET failures = failures - 1, "
            "locked_until = CASE WHEN locked_until = ? THEN 0 ELSE locked_until END "
            "WHERE scope = ? AND subject = ? AND failures > 0",
            (-1.0 if lock_set is None else lock_set, scope, subject),
        )

    def clear(self, scope: str, subject: str) -> None:
        self._execute("DELETE FROM auth_throttle WHERE scope = ? AND subject = ?", (scope, subject))

    def prune(self, before: float) -> None:
        """Forget buckets whose last failure is older than ``before`` (unlocked by then)."""
        self._execute(
            "DELETE FROM auth_throttle WHERE last_failure < ? AND locked_until < ?",
            (before, before),
        )
