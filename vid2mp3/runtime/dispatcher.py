"""The local dispatcher: what Knative's RabbitMQ broker does in production, on one machine.

It consumes one durable queue per triggered function and delivers each message to the function
as a binary-mode CloudEvent over HTTP (``<invoke_url>/<function>``):

- 2xx: acknowledged, done;
- 5xx, 429, a timeout or no connection: parked in a delay queue whose TTL is the backoff
  (``retry_base * 2**(attempt-1)``), from where RabbitMQ returns it to the work queue;
- 4xx, or the last of ``max_attempts`` failed: moved to the function's dead-letter queue, and
  POSTed to ``<invoke_url>/dead-letter/<function>`` so its job ends ``failed``.

The HTTP call runs in a worker thread, never on pika's I/O thread, so a conversion that takes
an hour does not starve the connection's heartbeats; the worker hands the ack back with
``add_callback_threadsafe``. A message is acknowledged only after its outcome is settled, so a
dispatcher that dies mid-delivery leaves it to be redelivered. Every attempt is written to the
SQL event log.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from vid2mp3 import deliveries
from vid2mp3.bus.amqp import AmqpAddress, connection_errors, event_from_message, import_pika
from vid2mp3.bus.http import post_event
from vid2mp3.db.database import Database
from vid2mp3.deliveries import Delivery
from vid2mp3.errors import InvalidInput
from vid2mp3.event_log import record_delivery
from vid2mp3.events import Event
from vid2mp3.runtime.topology import ATTEMPT_HEADER, FUNCTION_HEADER, STATUS_HEADER, Topology
from vid2mp3.triggers import DEAD_LETTER_FUNCTION, TRIGGERS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Message:
    """One message taken from a function's work queue, with what settling it needs."""

    connection: Any
    publisher: Any
    channel: Any
    tag: int
    function: str
    headers: dict[str, Any]
    body: bytes


class Dispatcher:
    """Deliver events from RabbitMQ to functions over HTTP.

    Args:
        amqp_url: the broker, as ``EVENTS_URL`` (``?exchange=`` names the exchange).
        invoke_url: base URL of the functions; function ``F`` is ``<invoke_url>/F``
            (``http://127.0.0.1:8080/function`` for ``vid2mp3 up`` or an OpenFaaS gateway).
        db: where the event log is written (migrated already); ``None`` keeps no log.
        max_attempts: deliveries per event and function before it is dead-lettered.
        retry_base: seconds before the first retry; doubles with each attempt.
        prefetch: unacknowledged messages per function at a time (bounds memory and load).
        timeout: seconds to wait for a function to answer (a conversion can take long).
        triggers: function → event types (default ``vid2mp3.triggers.TRIGGERS``).
    """

    def __init__(
        self,
        amqp_url: str,
        invoke_url: str,
        *,
        db: Database | None = None,
        max_attempts: int = 5,
        retry_base: float = 2.0,
        prefetch: int = 4,
        timeout: float = 3600.0,
        triggers: Mapping[str, tuple[str, ...]] = TRIGGERS,
    ) -> None:
        self.address = AmqpAddress.parse(amqp_url)
        self.invoke_url = invoke_url.rstrip("/")
        self.topology = Topology(self.address.exchange, retry_base, max_attempts, triggers)
        self.db = db
        self.prefetch = prefetch
        self.timeout = timeout
        self._pika = import_pika(amqp_url)
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=prefetch * len(triggers), thread_name_prefix="delivery"
        )
        self._thread: threading.Thread | None = None
        self._futures: set[futures.Future[None]] = set()
        self._futures_lock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------

    def declare(self) -> None:
        """Declare the exchange and queues now, so events published before the first consume
        are routed (raises the broker's error when it is unreachable)."""
        connection = self._pika.BlockingConnection(self.address.parameters())
        try:
            self.topology.declare(connection.channel())
        finally:
            connection.close()

    def start(self) -> threading.Thread:
        """Run in a background thread; returns it."""
        self._thread = threading.Thread(target=self.run, name="dispatcher", daemon=True)
        self._thread.start()
        return self._thread

    def wait_ready(self, timeout: float) -> bool:
        """True once consuming (after the first successful connect)."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop consuming; give deliveries in flight up to ``timeout`` seconds to finish (an
        unfinished one is redelivered later: its message was never acknowledged)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        with self._futures_lock:
            pending = list(self._futures)
        futures.wait(pending, timeout=timeout)

    def run(self) -> None:
        """Consume until ``stop()``; reconnects with backoff when the broker goes away."""
        delay = 0.5
        retryable = connection_errors(self._pika)
        while not self._stopping.is_set():
            try:
                self._consume()
            except retryable as exc:
                log.warning(
                    "broker connection lost; reconnecting",
                    extra={"reason": repr(exc), "delay": delay},
                )
            except Exception:
                log.exception("dispatcher crashed; restarting it", extra={"delay": delay})
            else:
                continue
            if self._ready.is_set():  # it had been working: start the backoff afresh
                delay = 0.5
            self._ready.clear()
            self._stopping.wait(delay)
            delay = min(delay * 2, 10.0)

    def _consume(self) -> None:
        connection = self._pika.BlockingConnection(self.address.parameters())
        try:
            channel = connection.channel()
            self.topology.declare(channel)
            # Per consumer: each function has its own bound on unacknowledged messages.
            channel.basic_qos(prefetch_count=self.prefetch)
            publisher = connection.channel()
            publisher.confirm_delivery()
            for function in self.topology.triggers:
                channel.basic_consume(
                    self.topology.work_queue(function),
                    on_message_callback=functools.partial(
                        self._on_message, connection, publisher, function
                    ),
                )
            self._ready.set()
            log.info(
                "dispatcher consuming",
                extra={"exchange": self.address.exchange, "invoke_url": self.invoke_url},
            )
            while not self._stopping.is_set():
                connection.process_data_events(time_limit=0.5)
        finally:
            if connection.is_open:
                try:
                    connection.close()
                except Exception:
                    log.debug("closing the dispatcher connection failed", exc_info=True)

    # -- one message -------------------------------------------------------------------------

    def _on_message(
        self,
        connection: Any,
        publisher: Any,
        function: str,
        channel: Any,
        method: Any,
        properties: Any,
        body: bytes,
    ) -> None:
        # Runs on pika's I/O thread: hand off at once.
        message = _Message(
            connection=connection,
            publisher=publisher,
            channel=channel,
            tag=method.delivery_tag,
            function=function,
            headers=dict(properties.headers or {}),
            body=body,
        )
        future = self._pool.submit(self._deliver, message)
        with self._futures_lock:
            self._futures.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: futures.Future[None]) -> None:
        with self._futures_lock:
            self._futures.discard(future)

    def _deliver(self, message: _Message) -> None:
        function = message.function
        attempt = int(message.headers.get(ATTEMPT_HEADER, 1))
        try:
            event = event_from_message(message.headers, message.body)
        except InvalidInput as exc:
            log.error(
                "message is not a CloudEvent; dead-lettered",
                extra={"function": function, "reason": exc.message},
            )
            self._settle(message, functools.partial(self._dead_letter_message, message, 0))
            return
        status, detail, duration = self._post(f"{self.invoke_url}/{function}", event)
        decision = self._decide(status, attempt, to_dead_letter=False)
        outcome = decision.outcome
        action: Callable[[], None]
        if outcome == deliveries.DELIVERED:
            action = functools.partial(message.channel.basic_ack, message.tag)
        elif outcome == deliveries.RETRY:
            action = functools.partial(self._retry_later, message, attempt)
        else:
            action = functools.partial(self._dead_letter_message, message, status)
        where = {
            "event_id": event.id,
            "event_type": event.type,
            "job_id": event.subject,
            "function": function,
            "attempt": attempt,
            "status": status,
            "outcome": outcome,
            "duration": round(duration, 3),
        }
        log.log(
            logging.INFO if outcome == deliveries.DELIVERED else logging.WARNING,
            "delivery",
            extra=where,
        )
        self._record(
            event,
            Delivery(event.id, function, attempt, status, outcome, duration, time.time(), detail),
        )
        if decision.dead_letter:
            self._notify_dead_letter(function, event)
        self._settle(message, action)

    def _decide(self, status: int, attempt: int, *, to_dead_letter: bool) -> deliveries.Decision:
        return deliveries.decide(
            status,
            attempt,
            self.topology.max_attempts,
            self.topology.retry_base,
            to_dead_letter=to_dead_letter,
        )

    def _post(self, url: str, event: Event) -> tuple[int, str, float]:
        """Deliver once; returns (status, detail, seconds). Status 0 means no answer."""
        started = time.monotonic()
        try:
            status, body = post_event(url, event, timeout=self.timeout)
            detail = "" if 200 <= status < 300 else body[:500].decode(errors="replace")
        except OSError as exc:
            status, detail = 0, f"no answer: {exc!r}"
        return status, detail, time.monotonic() - started

    def _notify_dead_letter(self, function: str, event: Event) -> None:
        """Tell the dead-letter function, so the job is settled. A 5xx (it is down, or a worker
        still holds the job) is retried on the usual schedule, from this worker thread; after
        that the event is only in the dead-letter queue, for a replay."""
        target = f"{DEAD_LETTER_FUNCTION}/{function}"
        ok = False
        for attempt in range(1, self.topology.max_attempts + 1):
            status, detail, duration = self._post(f"{self.invoke_url}/{target}", event)
            decision = self._decide(status, attempt, to_dead_letter=True)
            self._record(
                event,
                Delivery(
                    event.id,
                    target,
                    attempt,
                    status,
                    decision.outcome,
                    duration,
                    time.time(),
                    detail,
                ),
            )
            ok = decision.outcome == deliveries.DELIVERED
            if decision.outcome != deliveries.RETRY:
                break
            self._stopping.wait(decision.delay)
        if ok:
            return
        log.error(
            "dead-letter function unreachable; the event stays in the dead-letter queue",
            extra={"event_id": event.id, "function": function},
        )

    def _record(self, event: Event, delivery: Delivery) -> None:
        if self.db is not None:
            record_delivery(self.db, event, delivery)

    def _settle(self, message: _Message, action: Callable[[], None]) -> None:
        """Run ``action`` (which acks or nacks the message) on pika's I/O thread."""
        try:
            message.connection.add_callback_threadsafe(action)
        except Exception as exc:
            # The connection this message came on is gone; the broker redelivers it.
            log.warning(
                "connection closed before ack; message will be redelivered",
                extra={"reason": repr(exc)},
            )

    # -- on pika's I/O thread ------------------------------------------------------------------

    def _move(
        self,
        message: _Message,
        queue: str,
        headers: dict[str, Any],
        *,
        expiration: str | None = None,
        failure: str,
    ) -> None:
        """Publish the message to ``queue`` with ``headers``, then ack it; when that publish
        fails, log ``failure`` and nack it back onto its work queue instead."""
        properties = self._pika.BasicProperties(
            content_type="application/json",
            delivery_mode=2,
            message_id=str(headers.get("id", "")) or None,
            headers=headers,
            expiration=expiration,
        )
        try:
            message.publisher.basic_publish("", queue, message.body, properties=properties)
        except Exception:
            log.exception(failure, extra={"function": message.function})
            message.channel.basic_nack(message.tag, requeue=True)
            return
        message.channel.basic_ack(message.tag)

    def _retry_later(self, message: _Message, attempt: int) -> None:
        self._move(
            message,
            self.topology.delay_queue(message.function, attempt),
            {**message.headers, ATTEMPT_HEADER: attempt + 1},
            expiration=str(self.topology.delay_ms(attempt)),
            failure="could not park a message for retry; it is requeued",
        )

    def _dead_letter_message(self, message: _Message, status: int) -> None:
        self._move(
            message,
            self.topology.dead_letter_queue(message.function),
            {**message.headers, FUNCTION_HEADER: message.function, STATUS_HEADER: status},
            failure="could not dead-letter a message; it is requeued",
        )
