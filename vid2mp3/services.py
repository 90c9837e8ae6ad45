"""The dependencies a handler needs, bundled; built by ``vid2mp3.bootstrap`` only."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from vid2mp3 import event_signatures, events
from vid2mp3.config import Config
from vid2mp3.db.database import Database
from vid2mp3.db.unit_of_work import UnitOfWork, transaction
from vid2mp3.errors import TransientError
from vid2mp3.ports import BlobStore, DirectTransfer, EventSink, Mailer, Summarizer, SummaryArchive
from vid2mp3.speech.port import Transcriber

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long a publisher holds the outbox rows it claimed; a publish takes milliseconds, so a
#: claim this old belongs to a publisher that died.
OUTBOX_CLAIM_SECONDS = 30.0


@dataclass
class Services:
    config: Config
    db: Database
    store: BlobStore
    sink: EventSink
    mailer_factory: Callable[[], Mailer]
    summarizer_factory: Callable[[], Summarizer | None]
    #: The transcriber ``TRANSCRIBER`` names; ``None`` when transcription is off.
    transcriber_factory: Callable[[], Transcriber | None] = lambda: None
    #: Presigned browser uploads/downloads, when the store offers them (S3).
    direct: DirectTransfer | None = None
    #: A document archive of summaries beside the files, when the store keeps one (GridFS).
    archive: SummaryArchive | None = None
    _cache: dict[str, Any] = field(default_factory=dict)

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.db)

    def atomically(self, work: Callable[[UnitOfWork], T]) -> T:
        """Run ``work(uow)`` in one transaction and commit it; deadlocks and lock-wait
        timeouts run it again (``vid2mp3.db.unit_of_work.transaction``)."""
        return transaction(self.db, work)

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

    @property
    def transcriber(self) -> Transcriber | None:
        if "transcriber" not in self._cache:
            self._cache["transcriber"] = self.transcriber_factory()
        return self._cache["transcriber"]

    def publish(self, event: events.Event) -> None:
        """Check, sign and publish ``event`` now; raises ``TransientError`` when the broker
        is down. Every publish goes through here, so every event a function gets is signed."""
        events.validate(event)
        self.sink.publish(event_signatures.sign(event, self.config))

    def publish_outbox(self, job_id: str | None = None, *, limit: int = 100) -> int:
        """Publish unsent outbox events (of ``job_id``, or of every job); returns how many went.

        Rows are claimed first, so publishers running at the same time never send one twice,
        and each is marked sent after the broker confirmed it. A broker that is down is not an
        error here: the rows are handed back and the relay publishes them once it is up (the
        event is durable from the moment its transaction committed).
        """
        claimed = self.atomically(
            lambda uow: uow.outbox.claim(
                lease_seconds=OUTBOX_CLAIM_SECONDS, job_id=job_id, limit=limit
            )
        )
        sent = 0
        for position, event in enumerate(claimed):
            where = {"event_id": event.id, "event_type": event.type, "job_id": event.subject}
            try:
                self.publish(event)
            except TransientError as exc:
                self._release(e.id for e in claimed[position:])
                log.warning(
                    "event kept in the outbox; the relay will publish it",
                    extra={**where, "reason": exc.message},
                )
                break
            self.atomically(lambda uow, event_id=event.id: uow.outbox.mark_sent(event_id))
            sent += 1
            log.info("event published", extra=where)
        return sent

    def _release(self, event_ids: Iterable[str]) -> None:
        unsent = list(event_ids)

        def release(uow: UnitOfWork) -> None:
            for event_id in unsent:
                uow.outbox.release(event_id)

        self.atomically(release)
