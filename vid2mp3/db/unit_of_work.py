"""One transaction, the repositories that work inside it, and nothing committed by accident."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar

from vid2mp3.db.database import Database
from vid2mp3.db.repositories import (
    EventLog,
    Jobs,
    Leases,
    Notifications,
    Outbox,
    ProcessedEvents,
    Throttles,
    Users,
)
from vid2mp3.errors import TransientError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Runs of one transaction before a deadlock or lock-wait timeout is given up on.
TRANSACTION_ATTEMPTS = 5


class DatabaseBusy(TransientError):
    """The database rolled the transaction back (deadlock, lock wait); run it again."""


class UnitOfWork:
    """``with UnitOfWork(db) as uow: ...; uow.commit()`` — rolls back unless committed."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.skip_locked = db.skip_locked
        self._conn: Any = None
        self.committed = False

    def __enter__(self) -> UnitOfWork:
        self._conn = self.db.connection()
        self.db.begin(self._conn)
        self.committed = False
        self.users = Users(self)
        self.jobs = Jobs(self)
        self.processed = ProcessedEvents(self)
        self.outbox = Outbox(self)
        self.leases = Leases(self)
        self.notifications = Notifications(self)
        self.event_log = EventLog(self)
        self.throttles = Throttles(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            try:
                self._conn.rollback()
            except Exception:
                # The connection broke (that is often why we are here); the server rolls back,
                # and the pool checks a connection before lending it again.
                log.debug("rollback failed", exc_info=True)
        self.db.release(self._conn)

    def commit(self) -> None:
        try:
            self._conn.commit()
        except Exception as exc:
            raise self._translated(exc) from exc
        self.committed = True

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """Run portable SQL written with ``?`` placeholders; returns the cursor."""
        if self.db.placeholder != "?":
            sql = sql.replace("?", self.db.placeholder)
        cur = self._conn.cursor()
        try:
            cur.execute(sql, params)
        except Exception as exc:
            raise self._translated(exc) from exc
        return cur

    def _translated(self, exc: Exception) -> Exception:
        if self.db.is_busy(exc):
            return DatabaseBusy(f"the database is busy ({exc}); try again")
        return exc

    def is_duplicate_key(self, exc: BaseException) -> bool:
        return self.db.is_duplicate_key(exc)


def transaction(
    db: Database, work: Callable[[UnitOfWork], T], *, attempts: int = TRANSACTION_ATTEMPTS
) -> T:
    """Run ``work(uow)`` and commit; a deadlock or lock-wait timeout runs it again.

    ``work`` must only touch the database (it may run more than once). Returns what it
    returns; after ``attempts`` busy runs, raises ``DatabaseBusy`` (a ``TransientError``).
    """
    for attempt in range(1, attempts + 1):
        try:
            with UnitOfWork(db) as uow:
                result = work(uow)
                uow.commit()
                return result
        except DatabaseBusy as exc:
            if attempt == attempts:
                raise
            # Jitter so the two transactions that deadlocked do not collide again.
            pause = random.uniform(0.01, 0.05) * 2**attempt
            log.info("transaction retried", extra={"attempt": attempt, "reason": exc.message})
            time.sleep(pause)
    raise AssertionError("unreachable")
