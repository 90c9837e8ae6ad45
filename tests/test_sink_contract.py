"""One contract for every ``EventSink``: the memory bus (not attached, so it only records),
AMQP against the real RabbitMQ (a queue bound to the test's exchange shows what arrived) and
HTTP against a local broker ingress.

What each must do: ``publish`` returns only once the broker holds the event, so what arrived is
read right after it returns, without waiting; the event arrives once, with its id, type,
source, subject, time and data as published. A broker that is unreachable or does not take the
event makes ``publish`` raise ``TransientError`` (the outbox keeps it for the next attempt), never
a pika or socket exception. The memory bus is in-process: it cannot be unreachable or refuse.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

import pytest

from tests.fixtures.net import free_port
from tests.test_amqp import _drain, bound_queue, ingress  # noqa: F401 (fixtures)
from vid2mp3.bus.amqp import AmqpEventSink, event_from_message
from vid2mp3.bus.http import HttpEventSink
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.errors import TransientError
from vid2mp3.events import AUDIO_CONVERTED, VIDEO_UPLOADED, Event
from vid2mp3.ports import EventSink

pytest_plugins = ["tests.fixtures.services_real"]

SINKS = ("memory", "amqp", "http")
FAILURES = ("amqp-unreachable", "amqp-unroutable", "http-unreachable", "http-refuses")


@dataclass
class Broker:
    """A sink, and how to read back what reached the broker behind it."""

    sink: EventSink
    arrived: Callable[[], list[Event]]


def _from_request(request: dict[str, Any]) -> Event:
    """The event a request to the ``ingress`` fixture carried (binary content mode)."""
    attributes = {
        key.removeprefix("HTTP_CE_").lower(): unquote(value)
        for key, value in request["headers"].items()
        if key.startswith("HTTP_CE_")
    }
    return Event.from_attributes(attributes, request["body"])


@pytest.fixture(params=SINKS)
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    if request.param == "memory":
        bus = MemoryBus()
        yield Broker(bus, lambda: list(bus.published))
    elif request.param == "amqp":
        url = request.getfixturevalue("amqp_url")
        queue = request.getfixturevalue("bound_queue")
        sink = AmqpEventSink(url)
        yield Broker(
            sink, lambda: [event_from_message(p.headers, body) for _, p, body in _drain(url, queue)]
        )
        sink.close()
    else:
        url, received, _ = request.getfixturevalue("ingress")
        yield Broker(HttpEventSink(url, timeout=5), lambda: [_from_request(r) for r in received])


@pytest.fixture(params=FAILURES)
def failing_sink(request: pytest.FixtureRequest) -> Iterator[EventSink]:
    """A sink whose broker will not take the event."""
    nobody = free_port()
    if request.param == "amqp-unreachable":
        yield AmqpEventSink(f"amqp://guest:guest@127.0.0.1:{nobody}/%2F")
    elif request.param == "amqp-unroutable":
        # The test's own exchange, with no queue bound: RabbitMQ would drop the event.
        sink = AmqpEventSink(request.getfixturevalue("amqp_url"))
        yield sink
        sink.close()
    elif request.param == "http-unreachable":
        yield HttpEventSink(f"http://127.0.0.1:{nobody}/", timeout=2)
    else:
        url, _, answer = request.getfixturevalue("ingress")
        answer(503)
        yield HttpEventSink(url, timeout=5)


def test_published_events_arrive_once_and_intact(broker: Broker) -> None:
    first = Event(
        AUDIO_CONVERTED,
        "job-7",
        {"job_id": "job-7", "filename": "Café del Mar.mp4", "size": 3, "parts": [1, {"a": None}]},
        source="/tests/contract",
    )
    second = Event(VIDEO_UPLOADED, "job-8", {"job_id": "job-8"})
    broker.sink.publish(first)
    broker.sink.publish(second)
    # No polling: once publish has returned, the broker holds the event.
    assert broker.arrived() == [first, second]


def test_a_broker_that_does_not_take_the_event_raises_transient_error(
    failing_sink: EventSink,
) -> None:
    with pytest.raises(TransientError) as caught:
        failing_sink.publish(Event(VIDEO_UPLOADED, "job-1", {"job_id": "job-1"}))
    assert caught.value.message
