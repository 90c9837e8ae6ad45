"""Portable SQL for each table. Values always travel as parameters, never inside the SQL."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import fields
from typing import TYPE_CHECKING, Any

from vid2mp3.deliveries import Delivery, LoggedEvent
from vid2mp3.events import Event
from vid2mp3.model import ConversionOptions, Job, JobState, User

if TYPE_CHECKING:
    from vid2mp3.db.unit_of_work import UnitOfWork

_JOB_COLUMNS = tuple(f.name for f in fields(Job))
# Columns a caller may change through Jobs.update (never the id, owner or creation time).
_MUTABLE = frozenset(_JOB_COLUMNS) - {"id", "user_id", "created_at"}


class _Repository:
    def __init__(self, uow: UnitOfWork) -> None:
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
            f"SELECT id, email, password_hash, created_at, webhook_url FROM users WHERE {where}",
            (value,),
        ).fetchone()
        return User(*row) if row else None

    def by_email(self, email: str) -> User | None:
        return self._one("email = ?", email)

    def by_id(self, user_id: str) -> User | None:
        return self._one("id = ?", user_id)

    def set_webhook(self, user_id: str, url: str | None) -> None:
        """Set (or clear, with ``None``) the user's webhook URL."""
        self._execute("UPDATE users SET webhook_url = ? WHERE id = ?", (url, user_id))


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

    def claim(self, job_id: str, *, lease_seconds: float) -> bool:
        """Take the job for conversion: from ``uploaded``, or from ``converting`` when the last
        worker's lease ran out (it died). Returns whether this caller now owns it."""
        now = time.time()
        cur = self._execute(
            "UPDATE jobs SET state = ?, lease_until = ?, attempts = attempts + 1, progress = 0, "
            "updated_at = ? WHERE id = ? AND (state = ? OR (state = ? AND lease_until < ?))",
            (
                str(JobState.CONVERTING),
                now + lease_seconds,
                now,
                job_id,
                str(JobState.UPLOADED),
                str(JobState.CONVERTING),
                now,
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
    """Events written in the same transaction as the state change they announce."""

    def add(self, event: Event, job_id: str) -> None:
        self._execute(
            "INSERT INTO outbox (id, job_id, payload, created_at) VALUES (?, ?, ?, ?)",
            (event.id, job_id, event.to_json(), time.time()),
        )

    def pending(self, job_id: str) -> list[Event]:
        rows = self._execute(
            "SELECT payload FROM outbox WHERE job_id = ? AND sent_at IS NULL ORDER BY created_at",
            (job_id,),
        ).fetchall()
        return [Event.from_json(r[0]) for r in rows]

    def mark_sent(self, event_id: str) -> None:
        self._execute("UPDATE outbox SET sent_at = ? WHERE id = ?", (time.time(), event_id))


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
