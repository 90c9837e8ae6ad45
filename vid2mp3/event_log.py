"""Writing the event log: what every broker (memory bus, dispatcher) records of a delivery."""

from __future__ import annotations

import logging

from vid2mp3.db.database import Database
from vid2mp3.db.unit_of_work import transaction
from vid2mp3.deliveries import Delivery
from vid2mp3.events import Event

log = logging.getLogger(__name__)


def record_delivery(db: Database, event: Event, delivery: Delivery) -> None:
    """Add one delivery attempt to the event log. Never raises: the log is for people, and a
    database hiccup must not hold up the delivery it describes."""
    try:
        transaction(db, lambda uow: uow.event_log.record(event, delivery))
    except Exception:
        log.exception("event log write failed", extra={"event_id": event.id})
