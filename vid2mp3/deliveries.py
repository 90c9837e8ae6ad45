"""The delivery rule every broker we run follows (the memory bus and the local dispatcher),
and what the event log holds: each event a broker carried, and each attempt to deliver it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from vid2mp3.events import Event

#: The function answered 2xx.
DELIVERED = "delivered"
#: 5xx, 429, timeout or no connection: the broker tries again later.
RETRY = "retry"
#: A 4xx: retrying cannot help; the event goes to the dead-letter queue.
REJECTED = "rejected"
#: The last allowed attempt failed: the event went to the dead-letter queue.
DEAD_LETTERED = "dead-lettered"


def is_retryable(status: int) -> bool:
    """Whether a delivery that ended with HTTP ``status`` (0: no answer) may be tried again."""
    return status == 0 or status == 429 or status >= 500


def outcome_of(status: int, attempt: int, max_attempts: int) -> str:
    """What a broker does after attempt ``attempt`` of ``max_attempts`` answered ``status``."""
    if 200 <= status < 300:
        return DELIVERED
    if not is_retryable(status):
        return REJECTED
    return RETRY if attempt < max_attempts else DEAD_LETTERED


def retry_delay(attempt: int, base_delay: float) -> float:
    """Seconds to wait after failed attempt ``attempt`` (exponential backoff)."""
    return base_delay * 2 ** (attempt - 1)


@dataclass(frozen=True)
class Decision:
    """What a broker does after one delivery attempt."""

    outcome: str
    #: Seconds before the next attempt (``RETRY`` only).
    delay: float = 0.0
    #: Hand the event to the dead-letter function now.
    dead_letter: bool = False


def decide(
    status: int, attempt: int, max_attempts: int, base_delay: float, *, to_dead_letter: bool
) -> Decision:
    """The one delivery rule: what to do after attempt ``attempt`` of ``max_attempts`` answered
    ``status`` (0: no answer). A function's event that is refused (4xx) or runs out of attempts
    goes to the dead-letter function; a delivery *to* the dead-letter function
    (``to_dead_letter``) is retried the same way and, after its last attempt, only logged."""
    outcome = outcome_of(status, attempt, max_attempts)
    if outcome == RETRY:
        return Decision(RETRY, delay=retry_delay(attempt, base_delay))
    if outcome == DELIVERED:
        return Decision(DELIVERED)
    if to_dead_letter:
        return Decision(REJECTED)
    return Decision(outcome, dead_letter=True)


@dataclass(frozen=True)
class Delivery:
    """One attempt to hand an event to a function."""

    event_id: str
    target: str
    attempt: int
    status: int
    outcome: str
    duration: float
    delivered_at: float
    detail: str = ""

    def public(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class LoggedEvent:
    """An event as the log keeps it, with its deliveries oldest first."""

    event: Event
    first_seen: float
    deliveries: tuple[Delivery, ...] = field(default=())

    def public(self) -> dict[str, Any]:
        return {
            "id": self.event.id,
            "type": self.event.type,
            "subject": self.event.subject,
            "source": self.event.source,
            "time": self.event.time,
            "first_seen": self.first_seen,
            "data": self.event.data,
            "deliveries": [d.public() for d in self.deliveries],
        }
