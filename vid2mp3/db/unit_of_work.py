"""One transaction, the repositories that work inside it, and nothing committed by accident."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from vid2mp3.db.database import Database
from vid2mp3.db.repositories import (
    EventLog,
    Jobs,
    Notifications,
    Outbox,
    ProcessedEvents,
    Users,
)
from vid2mp3.deliveries import Delivery
from vid2mp3.events import Event

log = logging.getLogger(__name__)


class UnitOfWork:
    """``with UnitOfWork(db) as uow: ...; uow.commit()`` — rolls back unless committed."""

    def __init__(self, db: Database) -> None:
        self.db = db
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
        self.notifications = Notifications(self)
        self.event_log = EventLog(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            self._conn.rollback()

    def commit(self) -> None:
        self._conn.commit()
        self.committed = True

    def execute(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """Run portable SQL written with ``?`` placeholders; returns the cursor."""
        if self.db.placeholder != "?":
            sql = sql.replace("?", self.db.placeholder)
        cur = self._conn.cursor()
        cur.execute(sql, params)
        return cur

    def is_duplicate_key(self, exc: BaseException) -> bool:
        return self.db.is_duplicate_key(exc)


def record_delivery(db: Database, event: Event, delivery: Delivery) -> None:
    """Add one delivery attempt to the event log. Never raises: the log is for people, and a
    database hiccup must not hold up the delivery it describes."""
    try:
        with UnitOfWork(db) as uow:
            uow.event_log.record(event, delivery)
            uow.commit()
    except Exception:
        log.exception("event log write failed", extra={"event_id": event.id})
