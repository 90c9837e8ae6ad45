"""The in-process bus (``EVENTS_URL=memory://``): the broker of the embedded default.

It behaves like the production brokers where it matters: each subscriber gets its own
delivery, a 5xx/429 is retried with exponential backoff, a 4xx is not, and an event that runs
out of attempts goes to the dead-letter function so its job ends ``failed``.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from vid2mp3.deliveries import DELIVERED, RETRY, Delivery, outcome_of
from vid2mp3.events import Event
from vid2mp3.triggers import DEAD_LETTER_FUNCTION, subscribers

log = logging.getLogger(__name__)

#: Delivers ``event`` to the function named; returns the HTTP status it answered.
Deliver = Callable[[str, Event], int]


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    function: str
    event: Event
    attempt: int = 1
    last_status: int = 0


class MemoryBus:
    def __init__(self, *, max_attempts: int = 5, base_delay: float = 2.0) -> None:
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.published: list[Event] = []
        #: Called after every delivery attempt (the event log); must not raise. ``None``: no log.
        self.on_delivery: Callable[[Event, Delivery], None] | None = None
        self.dead_letters: list[tuple[str, Event, int]] = []
        self._deliver: Deliver | None = None
        self._heap: list[_Delivery] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._in_flight = 0
        self._workers: list[threading.Thread] = []
        self._stopping = False

    def attach(self, deliver: Deliver) -> None:
        """Route deliveries through ``deliver`` (the functions' apps); until then, only record."""
        self._deliver = deliver

    def publish(self, event: Event) -> None:
        with self._cond:
            self.published.append(event)
            if self._deliver is None:
                return
            for function in subscribers(event.type):
                heapq.heappush(
                    self._heap, _Delivery(time.monotonic(), next(self._seq), function, event)
                )
            self._cond.notify_all()

    def _next(self, block: bool) -> _Delivery | None:
        with self._cond:
            while True:
                if self._stopping:
                    return None
                now = time.monotonic()
                if self._heap and self._heap[0].due <= now:
                    self._in_flight += 1
                    return heapq.heappop(self._heap)
                if not block and not self._heap and self._in_flight == 0:
                    return None
                wait = self._heap[0].due - now if self._heap else None
                self._cond.wait(timeout=wait if wait is not None else (None if block else 0.05))

    def _run_one(self, item: _Delivery) -> None:
        assert self._deliver is not None
        started = time.monotonic()
        try:
            status = self._deliver(item.function, item.event)
        except Exception:
            log.exception(
                "delivery crashed", extra={"function": item.function, "event_id": item.event.id}
            )
            status = 500
        outcome = outcome_of(status, item.attempt, self.max_attempts)
        self._log_delivery(item, status, outcome, time.monotonic() - started)
        with self._cond:
            self._in_flight -= 1
            if outcome == DELIVERED or item.function.startswith(DEAD_LETTER_FUNCTION):
                pass
            elif outcome == RETRY:
                delay = self.base_delay * 2 ** (item.attempt - 1)
                log.warning(
                    "delivery failed, will retry",
                    extra={
                        "function": item.function,
                        "event_id": item.event.id,
                        "status": status,
                        "attempt": item.attempt,
                        "delay": delay,
                    },
                )
                heapq.heappush(
                    self._heap,
                    _Delivery(
                        time.monotonic() + delay,
                        next(self._seq),
                        item.function,
                        item.event,
                        item.attempt + 1,
                        status,
                    ),
                )
            else:
                log.error(
                    "delivery dead-lettered",
                    extra={
                        "function": item.function,
                        "event_id": item.event.id,
                        "status": status,
                        "attempt": item.attempt,
                    },
                )
                self.dead_letters.append((item.function, item.event, status))
                heapq.heappush(
                    self._heap,
                    _Delivery(
                        time.monotonic(),
                        next(self._seq),
                        f"{DEAD_LETTER_FUNCTION}/{item.function}",
                        item.event,
                    ),
                )
            self._cond.notify_all()

    def _log_delivery(self, item: _Delivery, status: int, outcome: str, duration: float) -> None:
        if self.on_delivery is None:
            return
        delivery = Delivery(
            event_id=item.event.id,
            target=item.function,
            attempt=item.attempt,
            status=status,
            outcome=outcome,
            duration=round(duration, 3),
            delivered_at=time.time(),
        )
        self.on_delivery(item.event, delivery)

    def run_until_idle(self) -> None:
        """Deliver in the calling thread until nothing is queued, due later, or in flight."""
        while (item := self._next(block=False)) is not None:
            self._run_one(item)

    def start(self, workers: int = 2) -> None:
        """Deliver from background threads (``vid2mp3 up``)."""

        def loop() -> None:
            while (item := self._next(block=True)) is not None:
                self._run_one(item)

        for i in range(workers):
            t = threading.Thread(target=loop, name=f"memory-bus-{i}", daemon=True)
            t.start()
            self._workers.append(t)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
