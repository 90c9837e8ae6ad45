"""AMQP event sink (``EVENTS_URL=amqp://user:pass@host:port/vhost?exchange=vid2mp3.events``).

Each CloudEvent is published to a durable topic exchange with the event type as routing key, as
a persistent message, and ``publish`` returns only once the broker confirmed it. The CloudEvent
attributes travel as AMQP headers with bare names (``specversion``, ``id``, ``type``, ``source``,
``subject``, ``time``, ``content-type``) and the body is the event's data: the format Knative's
eventing-rabbitmq broker writes and reads, so its triggers can route what we publish.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from vid2mp3.errors import ConfigError, TransientError
from vid2mp3.events import SIGNATURE_ATTRIBUTE, SPEC_VERSION, Event

log = logging.getLogger(__name__)

DEFAULT_EXCHANGE = "vid2mp3.events"
#: Header names a broker adds for its own bookkeeping start with this; they are not attributes.
BROKER_HEADER_PREFIX = "x-"


@dataclass(frozen=True)
class AmqpAddress:
    """An ``amqp://`` URL split into what pika connects to and the exchange we publish to."""

    url: str
    exchange: str

    @classmethod
    def parse(cls, url: str) -> AmqpAddress:
        """Split ``?exchange=`` off ``url`` (pika refuses query options it does not know)."""
        parts = urlsplit(url)
        if parts.scheme not in ("amqp", "amqps"):
            raise ConfigError(f"EVENTS_URL must be amqp:// or amqps://, not {parts.scheme!r}")
        query = parse_qsl(parts.query, keep_blank_values=True)
        exchange = next((v for k, v in query if k == "exchange"), "") or DEFAULT_EXCHANGE
        rest = urlencode([(k, v) for k, v in query if k != "exchange"])
        return cls(urlunsplit(parts._replace(query=rest)), exchange)

    def parameters(self) -> Any:
        """``pika.URLParameters`` for this address; names pika when it is not installed."""
        pika = import_pika(self.url)
        params = pika.URLParameters(self.url)
        # Fail fast and let the caller's retry policy decide, rather than pika's silent waits.
        params.connection_attempts = 1
        params.socket_timeout = 5
        params.blocked_connection_timeout = 30
        return params


def import_pika(url: str) -> Any:
    try:
        import pika
    except ImportError:
        safe = url.split("@")[-1]
        raise ConfigError(f"EVENTS_URL={safe!r} needs pika: pip install 'vid2mp3[amqp]'") from None
    return pika


def message_headers(event: Event) -> dict[str, str]:
    """The AMQP headers carrying ``event``'s attributes (eventing-rabbitmq's binary format)."""
    headers = {
        "specversion": SPEC_VERSION,
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "subject": event.subject,
        "time": event.time,
        "content-type": "application/json",
    }
    if event.signature:
        headers[SIGNATURE_ATTRIBUTE] = event.signature
    return headers


def message_properties(event: Event) -> Any:
    import pika

    return pika.BasicProperties(
        content_type="application/json",
        delivery_mode=2,  # persistent: survives a broker restart in a durable queue
        message_id=event.id,
        headers=message_headers(event),
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def event_from_message(headers: Mapping[str, Any] | None, body: bytes) -> Event:
    """The ``Event`` of a received message; raises ``InvalidInput`` when it is not a CloudEvent.

    Accepts the bare attribute names we (and eventing-rabbitmq) write and the ``ce-`` /
    ``cloudEvents:`` prefixed forms other producers use; broker headers (``x-*``) are ignored.
    """
    attributes: dict[str, str] = {}
    for key, value in (headers or {}).items():
        name = key.lower()
        if name.startswith(BROKER_HEADER_PREFIX):
            continue
        for prefix in ("ce-", "ce_", "cloudevents:", "cloudevents_"):
            name = name.removeprefix(prefix)
        attributes[name] = _text(value)
    return Event.from_attributes(attributes, body, carrier="the message", body="the message body")


def connection_errors(pika: Any) -> tuple[type[BaseException], ...]:
    """Exceptions after which a fresh connection may succeed."""
    return (
        pika.exceptions.AMQPConnectionError,
        pika.exceptions.AMQPChannelError,
        pika.exceptions.StreamLostError,
        ConnectionError,
        OSError,
    )


class AmqpEventSink:
    """Publish CloudEvents to a topic exchange with publisher confirms.

    Args:
        url: ``amqp://user:pass@host:port/vhost``, optionally ``?exchange=NAME`` (default
            ``vid2mp3.events``); other query options are pika's (``heartbeat=`` ...).

    One connection serves every thread, one publish at a time (pika's ``BlockingConnection``
    is not thread-safe; a confirm takes about a millisecond). A dropped connection, for
    example after a broker restart or an idle timeout, is replaced once per publish before
    ``TransientError`` is raised.
    """

    def __init__(self, url: str) -> None:
        self.address = AmqpAddress.parse(url)
        self._pika = import_pika(url)
        self._lock = threading.Lock()
        self._connection: Any = None
        self._channel: Any = None

    def _open(self) -> Any:
        pika = self._pika
        connection = pika.BlockingConnection(self.address.parameters())
        try:
            channel = connection.channel()
            channel.exchange_declare(self.address.exchange, exchange_type="topic", durable=True)
            channel.confirm_delivery()
        except Exception:
            connection.close()
            raise
        self._connection, self._channel = connection, channel
        return channel

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            try:
                connection.close()
            except Exception:  # already broken; nothing more to release
                log.debug("closing a broken AMQP connection failed", exc_info=True)

    def publish(self, event: Event) -> None:
        """Publish ``event``; returns once the broker confirmed it, else ``TransientError``."""
        pika = self._pika
        body = json.dumps(event.data, separators=(",", ":")).encode()
        properties = message_properties(event)
        retryable = connection_errors(pika)
        with self._lock:
            for attempt in (1, 2):
                try:
                    channel = self._channel
                    if channel is None or not channel.is_open:
                        channel = self._open()
                    channel.basic_publish(
                        self.address.exchange,
                        event.type,
                        body,
                        properties=properties,
                        mandatory=True,
                    )
                    return
                except pika.exceptions.UnroutableError:
                    # No queue is bound for this type yet (no dispatcher or trigger has run):
                    # keep the event in the outbox rather than let the broker drop it.
                    raise TransientError(
                        f"no queue is bound to {event.type} on exchange "
                        f"{self.address.exchange!r}; is the dispatcher running?"
                    ) from None
                except pika.exceptions.NackError:
                    raise TransientError("the broker refused the event (nack)") from None
                except retryable as exc:
                    self._drop()
                    if attempt == 2:
                        raise TransientError(f"the event broker is unreachable: {exc!r}") from exc
                    log.warning(
                        "AMQP connection lost, reconnecting",
                        extra={"event_id": event.id, "reason": repr(exc)},
                    )
        raise AssertionError("unreachable")

    def close(self) -> None:
        with self._lock:
            self._drop()
