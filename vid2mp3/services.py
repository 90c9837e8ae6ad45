"""The dependencies a handler needs, bundled; built by ``vid2mp3.bootstrap`` only."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vid2mp3 import events
from vid2mp3.config import Config
from vid2mp3.db.database import Database
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.ports import BlobStore, EventSink, Mailer, Summarizer

log = logging.getLogger(__name__)


@dataclass
class Services:
    config: Config
    db: Database
    store: BlobStore
    sink: EventSink
    mailer_factory: Callable[[], Mailer]
    summarizer_factory: Callable[[], Summarizer | None]
    _cache: dict[str, Any] = field(default_factory=dict)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.db)

    @property
    def mailer(self) -> Mailer:
        if "mailer" not in self._cache:
            self._cache["mailer"] = self.mailer_factory()
        return self._cache["mailer"]

    @property
    def summarizer(self) -> Summarizer | None:
        if "summarizer" not in self._cache:
            self._cache["summarizer"] = self.summarizer_factory()
        return self._cache["summarizer"]

    def publish_pending(self, job_id: str) -> None:
        """Publish the job's outbox events that are not yet marked sent.

        Called after every commit that added events, and at the start of every handler, so an
        event committed by a process that died before publishing still goes out (at least once).
        """
        with self.uow() as uow:
            pending = uow.outbox.pending(job_id)
        for event in pending:
            events.validate(event)
            self.sink.publish(event)
            with self.uow() as uow:
                uow.outbox.mark_sent(event.id)
                uow.commit()
            log.info(
                "event published",
                extra={"event_id": event.id, "event_type": event.type, "job_id": job_id},
            )
