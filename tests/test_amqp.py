"""The AMQP event sink against the real RabbitMQ, and the HTTP sink against a local server."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote

import pytest

from tests.fixtures.net import Served
from vid2mp3.bus.amqp import AmqpAddress, AmqpEventSink, event_from_message, message_headers
from vid2mp3.bus.http import HttpEventSink
from vid2mp3.errors import ConfigError, InvalidInput, TransientError
from vid2mp3.events import AUDIO_CONVERTED, VIDEO_UPLOADED, Event

pytest_plugins = ["tests.fixtures.services_real"]


def _event(event_type: str = VIDEO_UPLOADED, job_id: str = "job-1") -> Event:
    return Event(type=event_type, subject=job_id, data={"job_id": job_id, "size": 3})


def _connect(amqp_url: str) -> Any:
    import pika

    return pika.BlockingConnection(AmqpAddress.parse(amqp_url).parameters())


@pytest.fixture
def bound_queue(amqp_url: str) -> Iterator[str]:
    """A durable queue bound to the test exchange for every event type (it outlives a
    dropped connection, as a dispatcher's queue does)."""
    address = AmqpAddress.parse(amqp_url)
    queue = f"{address.exchange}.probe"
    connection = _connect(amqp_url)
    channel = connection.channel()
    channel.exchange_declare(address.exchange, exchange_type="topic", durable=True)
    channel.queue_declare(queue, durable=True)
    channel.queue_bind(queue, address.exchange, routing_key="io.vid2mp3.#")
    connection.close()
    yield queue
    connection = _connect(amqp_url)
    connection.channel().queue_delete(queue)
    connection.close()


def _drain(amqp_url: str, queue: str) -> list[tuple[Any, Any, bytes]]:
    """Every message in ``queue``, read through a fresh connection."""
    connection = _connect(amqp_url)
    channel = connection.channel()
    taken = []
    while True:
        method, properties, body = channel.basic_get(queue, auto_ack=True)
        if method is None:
            break
        taken.append((method, properties, body))
    connection.close()
    return taken


def test_address_takes_the_exchange_from_the_url() -> None:
    address = AmqpAddress.parse("amqp://u:p@h:5672/v?exchange=ex&heartbeat=5")
    assert address.exchange == "ex"
    assert "exchange" not in address.url and "heartbeat=5" in address.url
    assert AmqpAddress.parse("amqp://h/").exchange == "vid2mp3.events"
    with pytest.raises(ConfigError):
        AmqpAddress.parse("http://h/")


def test_publish_writes_a_persistent_message_in_knative_format(
    amqp_url: str, bound_queue: str
) -> None:
    sink = AmqpEventSink(amqp_url)
    event = _event(AUDIO_CONVERTED)
    sink.publish(event)
    sink.close()
    [(method, properties, body)] = _drain(amqp_url, bound_queue)

    assert method.exchange == AmqpAddress.parse(amqp_url).exchange
    assert method.routing_key == AUDIO_CONVERTED
    assert properties.delivery_mode == 2
    assert properties.message_id == event.id
    assert properties.content_type == "application/json"
    assert properties.headers == {
        "specversion": "1.0",
        "id": event.id,
        "type": event.type,
        "source": event.source,
        "subject": event.subject,
        "time": event.time,
        "content-type": "application/json",
    }
    assert json.loads(body) == event.data
    assert event_from_message(properties.headers, body) == event


def test_exchange_is_durable_topic(amqp_url: str) -> None:
    sink = AmqpEventSink(amqp_url)
    with pytest.raises(TransientError):
        sink.publish(_event())  # declares the exchange; nothing is bound yet
    sink.close()
    connection = _connect(amqp_url)
    # A passive declare with other properties would fail: this checks it exists as declared.
    connection.channel().exchange_declare(
        AmqpAddress.parse(amqp_url).exchange, exchange_type="topic", durable=True, passive=True
    )
    connection.close()


def test_unroutable_event_stays_unsent(amqp_url: str) -> None:
    sink = AmqpEventSink(amqp_url)
    with pytest.raises(TransientError, match="no queue is bound"):
        sink.publish(_event())
    sink.close()


def test_publish_reconnects_after_the_broker_drops_the_connection(
    amqp_url: str, drop_amqp_connections: Callable[[], None], bound_queue: str
) -> None:
    sink = AmqpEventSink(amqp_url)
    sink.publish(_event(job_id="before"))
    drop_amqp_connections()  # as a broker restart would
    sink.publish(_event(job_id="after"))
    sink.close()
    subjects = [p.headers["subject"] for _, p, _ in _drain(amqp_url, bound_queue)]
    assert subjects == ["before", "after"]


def test_concurrent_publishers_share_one_sink(amqp_url: str, bound_queue: str) -> None:
    sink = AmqpEventSink(amqp_url)
    errors: list[BaseException] = []

    def publish_many(worker: int) -> None:
        try:
            for n in range(25):
                sink.publish(_event(job_id=f"{worker}-{n}"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publish_many, args=(w,)) for w in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    sink.close()
    assert not errors
    received = {p.headers["subject"] for _, p, _ in _drain(amqp_url, bound_queue)}
    assert received == {f"{w}-{n}" for w in range(6) for n in range(25)}


def test_unreachable_broker_is_a_transient_error() -> None:
    sink = AmqpEventSink("amqp://guest:guest@127.0.0.1:9/%2F")
    with pytest.raises(TransientError, match="unreachable"):
        sink.publish(_event())


def test_messages_from_other_producers_are_read() -> None:
    headers = {"ce-id": "1", "ce-type": VIDEO_UPLOADED, "ce-source": "/x", "x-death": [{}]}
    event = event_from_message(headers, b'{"job_id": "j"}')
    assert (event.id, event.subject, event.source) == ("1", "j", "/x")
    with pytest.raises(InvalidInput, match="id"):
        event_from_message({"type": VIDEO_UPLOADED, "source": "/x"}, b"{}")
    with pytest.raises(InvalidInput, match="JSON"):
        event_from_message({"id": "1", "type": "t", "source": "/x"}, b"not json")


def test_a_message_and_an_http_cloudevent_become_the_same_event() -> None:
    from cloudevents.http import from_http

    from vid2mp3.entrypoints import to_event

    event = _event()
    body = json.dumps(event.data).encode()
    assert event_from_message(message_headers(event), body) == event
    assert to_event(from_http(event.binary_headers(), body)) == event
    with pytest.raises(InvalidInput, match="the message body must be a JSON object"):
        event_from_message(message_headers(event), b"[1]")
    with pytest.raises(InvalidInput, match="CloudEvent data must be a JSON object"):
        to_event(from_http(event.binary_headers(), b"[1]"))


# -- the HTTP sink (Knative broker ingress / K_SINK) -------------------------------------------


@pytest.fixture
def ingress() -> Iterator[tuple[str, list[dict[str, Any]], Callable[[int], None]]]:
    """A tiny broker ingress: records each request; answers the status set by ``answer``."""
    received: list[dict[str, Any]] = []
    status = [202]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        received.append(
            {
                "path": environ["PATH_INFO"],
                "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
                "content_type": environ.get("CONTENT_TYPE"),
                "body": environ["wsgi.input"].read(length),
            }
        )
        start_response(f"{status[0]} X", [("Content-Type", "text/plain")])
        return [b"nope" if status[0] >= 300 else b""]

    server = Served(app)

    def answer(code: int) -> None:
        status[0] = code

    yield f"{server.url}/ns/default", received, answer
    server.close()


def test_http_sink_posts_binary_mode(ingress: Any) -> None:
    url, received, _ = ingress
    event = _event()
    HttpEventSink(url).publish(event)
    [request] = received
    assert request["path"] == "/ns/default"
    assert request["content_type"] == "application/json"
    assert json.loads(request["body"]) == event.data
    headers = request["headers"]
    assert headers["HTTP_CE_ID"] == event.id
    assert headers["HTTP_CE_TYPE"] == event.type
    assert headers["HTTP_CE_SPECVERSION"] == "1.0"
    assert unquote(headers["HTTP_CE_SUBJECT"]) == event.subject


@pytest.mark.parametrize("status", [400, 500, 503])
def test_http_sink_non_2xx_is_transient(ingress: Any, status: int) -> None:
    url, _, answer = ingress
    answer(status)
    with pytest.raises(TransientError, match=str(status)):
        HttpEventSink(url).publish(_event())


def test_http_sink_unreachable_is_transient() -> None:
    with pytest.raises(TransientError, match="did not answer"):
        HttpEventSink("http://127.0.0.1:9/", timeout=2).publish(_event())
    with pytest.raises(ConfigError):
        HttpEventSink("ftp://x/")
