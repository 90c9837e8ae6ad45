"""The queues the local dispatcher keeps on RabbitMQ, named from the exchange they serve.

For each triggered function ``F`` on exchange ``E``:

- ``E.F``: the durable work queue, bound to ``E`` once per event type ``F`` receives;
- ``E.F.retry.<ms>ms``: a delay queue per backoff step; a message waits there for its TTL, then
  RabbitMQ dead-letters it back to ``E.F`` through the default exchange. One queue per delay
  keeps every queue's messages expiring in order (RabbitMQ only expires at the queue head);
- ``E.F.dlq``: where a message lands after its last attempt, for ``vid2mp3 events replay``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vid2mp3.deliveries import retry_delay
from vid2mp3.triggers import TRIGGERS

#: Message header counting delivery attempts (``x-`` headers are never CloudEvent attributes).
ATTEMPT_HEADER = "x-vid2mp3-attempt"
#: On a dead letter: the function that kept failing, and its last HTTP status (0: no answer).
FUNCTION_HEADER = "x-vid2mp3-function"
STATUS_HEADER = "x-vid2mp3-status"


@dataclass(frozen=True)
class Topology:
    """Queue names and declarations for ``exchange``.

    Args:
        exchange: the topic exchange events are published to.
        retry_base: seconds before the first retry; each later one waits twice as long.
        max_attempts: deliveries per event and function before it is dead-lettered.
        triggers: function name → event types it receives (default: ``vid2mp3.triggers``).
    """

    exchange: str
    retry_base: float = 2.0
    max_attempts: int = 5
    triggers: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(TRIGGERS))

    def work_queue(self, function: str) -> str:
        return f"{self.exchange}.{function}"

    def dead_letter_queue(self, function: str) -> str:
        return f"{self.exchange}.{function}.dlq"

    def delay_ms(self, attempt: int) -> int:
        """How long to wait before attempt ``attempt + 1``, after attempt ``attempt`` failed."""
        return max(1, round(retry_delay(attempt, self.retry_base) * 1000))

    def delay_queue(self, function: str, attempt: int) -> str:
        return f"{self.exchange}.{function}.retry.{self.delay_ms(attempt)}ms"

    def declare(self, channel: Any) -> None:
        """Declare the exchange and every queue and binding (idempotent)."""
        channel.exchange_declare(self.exchange, exchange_type="topic", durable=True)
        for function, event_types in self.triggers.items():
            work = self.work_queue(function)
            channel.queue_declare(work, durable=True)
            for event_type in event_types:
                channel.queue_bind(work, self.exchange, routing_key=event_type)
            channel.queue_declare(self.dead_letter_queue(function), durable=True)
            for attempt in range(1, self.max_attempts):
                channel.queue_declare(
                    self.delay_queue(function, attempt),
                    durable=True,
                    arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": work},
                )
