"""The in-process bus (``EVENTS_URL=memory://``): the broker of the embedded default.

It follows the same delivery rule as the local dispatcher (``vid2mp3.deliveries.decide``):
each subscriber gets its own delivery, a 5xx/429 is retried with exponential backoff, a 4xx is
not, an event that runs out of attempts goes to the dead-letter function so its job is settled,
and a delivery to the dead-letter function is itself retried before it is given up.
"""

from __future__ import annotations

import heapq
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vid2mp3.deliveries import DELIVERED, RETRY, Delivery, decide
from vid2mp3.events import Event
from vid2mp3.triggers import DEAD_LETTER_FUNCTION, subscribers

log = logging.getLogger(__name__)

#: Delivers ``event`` to the function named; returns the HTTP status it answered.
Deliver = Callable[[str, Event], int]

#: How many published events and dead letters are kept for inspection (tests, ``up``'s
#: lifetime); older ones are forgotten so a long-running ``vid2mp3 up`` does not grow.
KEEP = 1000


class AppDelivery:
    """Deliver to functions-framework apps in this process, as binary-mode CloudEvents over
    WSGI, the way a broker's HTTP delivery reaches a function."""

    def __init__(self, apps: Mapping[str, Any]) -> None:
        self.apps = apps

    def __call__(self, function: str, event: Event) -> int:
        name, _, subpath = function.partition("/")
        client = self.apps[name].test_client()
        response = client.post(
            f"/{subpath}", data=json.dumps(event.data), headers=event.binary_headers()
        )
        response.close()
        return response.status_code


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    function: str
    event: Event
    attempt: int = 1

    @property
    def to_dead_letter(self) -> bool:
        return self.function.startswith(f"{DEAD_LETTER_FUNCTION}/")


def _keep_last(items: list[object]) -> None:
    if len(items) > 2 * KEEP:
        del items[:-KEEP]


class MemoryBus:
    def __init__(self, *, max_attempts: int = 5, base_delay: float = 2.0) -> None:
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        #: The latest events published (at most ``2 * KEEP``), oldest first.
        self.published: list[Event] = []
        #: Called after every delivery attempt (the event log); must not raise. ``None``: no log.
        self.on_delivery: Callable[[Event, Delivery], None] | None = None
        #: (function, event, last status) of the latest events that ran out of attempts.
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
            _keep_last(self.published)  # type: ignore[arg-type]
            if self._deliver is None:
                return
            for function in subscribers(event.type):
                self._push(0.0, function, event, 1)
            self._cond.notify_all()

    def _push(self, delay: float, function: str, event: Event, attempt: int) -> None:
        heapq.heappush(
            self._heap,
            _Delivery(time.monotonic() + delay, next(self._seq), function, event, attempt),
        )

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
        decision = decide(
            status,
            item.attempt,
            self.max_attempts,
            self.base_delay,
            to_dead_letter=item.to_dead_letter,
        )
        self._log_delivery(item, status, decision.outcome, time.monotonic() - started)
        where = {
            "function": item.function,
            "event_id": item.event.id,
            "job_id": item.event.subject,
            "status": status,
            "attempt": item.attempt,
        }
        with self._cond:
            self._in_flight -= 1
            if decision.outcome == RETRY:
                log.warning("delivery failed, will retry", extra={**where, "delay": decision.delay})
                self._push(decision.delay, item.function, item.event, item.attempt + 1)
            elif decision.dead_letter:
                log.error("delivery dead-lettered", extra=where)
                self.dead_letters.append((item.function, item.event, status))
                _keep_last(self.dead_letters)  # type: ignore[arg-type]
                self._push(0.0, f"{DEAD_LETTER_FUNCTION}/{item.function}", item.event, 1)
            elif decision.outcome != DELIVERED:
                log.error("the dead-letter function gave up; the event is only logged", extra=where)
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
