"""The local dispatcher against the real RabbitMQ, delivering to scripted fake functions."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import signed
from tests.fixtures.fake_functions import (  # noqa: F401 (fixture)
    FakeFunctions,
    fake_functions_fixture,
    wait_for,
)
from tests.fixtures.net import Served, free_port
from vid2mp3 import cli, deliveries
from vid2mp3.bus.amqp import AmqpAddress, AmqpEventSink
from vid2mp3.deliveries import LoggedEvent
from vid2mp3.events import AUDIO_CONVERTED, VIDEO_UPLOADED, Event
from vid2mp3.model import Job, JobState
from vid2mp3.runtime.dispatcher import Dispatcher
from vid2mp3.runtime.topology import Topology
from vid2mp3.services import Services

pytest_plugins = ["tests.fixtures.services_real"]

MAX_ATTEMPTS = 3
RETRY_BASE = 0.2

MakeDispatcher = Callable[..., Dispatcher]


@pytest.fixture
def make_dispatcher(amqp_url: str, services: Services) -> Iterator[MakeDispatcher]:
    """Start a dispatcher (event log in the test's SQLite) delivering to ``invoke_url``."""
    started: list[Dispatcher] = []

    def make(invoke_url: str, url: str = amqp_url, **options: Any) -> Dispatcher:
        settings: dict[str, Any] = {
            "db": services.db,
            "max_attempts": MAX_ATTEMPTS,
            "retry_base": RETRY_BASE,
            "timeout": 30,
            **options,
        }
        dispatcher = Dispatcher(url, invoke_url, **settings)
        dispatcher.declare()
        dispatcher.start()
        started.append(dispatcher)
        assert dispatcher.wait_ready(15), "the dispatcher did not connect"
        return dispatcher

    yield make
    for dispatcher in started:
        dispatcher.stop()


def _channel(amqp_url: str) -> tuple[Any, Any]:
    import pika

    connection = pika.BlockingConnection(AmqpAddress.parse(amqp_url).parameters())
    return connection, connection.channel()


def _count(amqp_url: str, queue: str) -> int:
    connection, channel = _channel(amqp_url)
    try:
        return int(channel.queue_declare(queue, passive=True).method.message_count)
    finally:
        connection.close()


def _topology(amqp_url: str) -> Topology:
    return Topology(AmqpAddress.parse(amqp_url).exchange, RETRY_BASE, MAX_ATTEMPTS)


def _logged(services: Services, event_id: str) -> LoggedEvent | None:
    with services.uow() as uow:
        return uow.event_log.get(event_id)


def _outcomes(services: Services, event_id: str, target: str) -> list[tuple[int, int, str]]:
    logged = _logged(services, event_id)
    if logged is None:
        return []
    return [(d.attempt, d.status, d.outcome) for d in logged.deliveries if d.target == target]


def _uploaded(job_id: str = "") -> Event:
    job_id = job_id or str(uuid.uuid4())
    return Event(
        type=VIDEO_UPLOADED,
        subject=job_id,
        data={
            "job_id": job_id,
            "user_id": "u1",
            "filename": "talk.mp4",
            "video_key": f"videos/{job_id}/talk.mp4",
            "size": 10,
            "content_type": "video/mp4",
            "options": {},
        },
    )


def test_delivers_a_binary_cloudevent_and_acks(
    amqp_url: str,
    fake_functions: FakeFunctions,
    make_dispatcher: MakeDispatcher,
    services: Services,
) -> None:
    dispatcher = make_dispatcher(fake_functions.url)
    event = _uploaded()
    AmqpEventSink(amqp_url).publish(event)

    wait_for("the delivery to be logged", lambda: _outcomes(services, event.id, "convert"))
    [call] = fake_functions.calls_to("/convert")
    assert (call.event_id, call.event_type, call.data) == (event.id, event.type, event.data)
    assert _outcomes(services, event.id, "convert") == [(1, 200, deliveries.DELIVERED)]
    dispatcher.stop()
    # Acknowledged: nothing comes back when the dispatcher's connection is gone.
    assert _count(amqp_url, _topology(amqp_url).work_queue("convert")) == 0
    assert fake_functions.calls_to("/notify") == []


def test_each_trigger_gets_its_own_copy(
    amqp_url: str,
    fake_functions: FakeFunctions,
    make_dispatcher: MakeDispatcher,
    services: Services,
) -> None:
    make_dispatcher(fake_functions.url)
    event = Event(type=AUDIO_CONVERTED, subject="j", data={"job_id": "j"})
    AmqpEventSink(amqp_url).publish(event)
    wait_for(
        "transcribe and notify deliveries",
        lambda: fake_functions.calls_to("/transcribe") and fake_functions.calls_to("/notify"),
    )
    assert fake_functions.calls_to("/convert") == []
    assert fake_functions.calls_to("/summarize") == []


def test_500_twice_then_200_is_delivered_on_the_third_attempt(
    amqp_url: str,
    fake_functions: FakeFunctions,
    make_dispatcher: MakeDispatcher,
    services: Services,
) -> None:
    fake_functions.answers["/convert"] = lambda n: 500 if n <= 2 else 200
    make_dispatcher(fake_functions.url)
    event = _uploaded()
    AmqpEventSink(amqp_url).publish(event)

    wait_for("three attempts", lambda: len(_outcomes(services, event.id, "convert")) == 3)
    assert _outcomes(services, event.id, "convert") == [
        (1, 500, deliveries.RETRY),
        (2, 500, deliveries.RETRY),
        (3, 200, deliveries.DELIVERED),
    ]
    calls = fake_functions.calls_to("/convert")
    assert [c.event_id for c in calls] == [event.id] * 3
    # The backoff doubles: the second wait is longer than the first (delay queues' TTLs).
    assert calls[2].at - calls[1].at > calls[1].at - calls[0].at
    assert fake_functions.calls_to("/dead-letter/convert") == []


def _add_job(services: Services) -> str:
    now = time.time()
    job_id = str(uuid.uuid4())
    job = Job(
        id=job_id,
        user_id="u1",
        filename="talk.mp4",
        content_type="video/mp4",
        size=10,
        video_key=f"videos/{job_id}/talk.mp4",
        state=JobState.UPLOADED,
        created_at=now,
        updated_at=now,
    )
    with services.uow() as uow:
        uow.jobs.add(job)
        uow.commit()
    return job_id


def _job_state(services: Services, job_id: str) -> JobState:
    with services.uow() as uow:
        job = uow.jobs.get(job_id)
    assert job is not None
    return job.state


def test_always_failing_event_is_dead_lettered_fails_the_job_and_replays_once_fixed(
    amqp_url: str,
    fake_functions: FakeFunctions,
    make_dispatcher: MakeDispatcher,
    services: Services,
    apps: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # convert is broken; the dead-letter function is the real one, on the test's database.
    fake_functions.answers["/convert"] = 503
    fake_functions.forward["/dead-letter"] = apps["dead-letter"]
    make_dispatcher(fake_functions.url)
    job_id = _add_job(services)
    # Signed as a publish of the platform signs it: the real dead-letter function checks.
    event = signed(_uploaded(job_id))
    AmqpEventSink(amqp_url).publish(event)

    topology = _topology(amqp_url)
    wait_for("the dead letter", lambda: _count(amqp_url, topology.dead_letter_queue("convert")))
    wait_for("the job to fail", lambda: _job_state(services, job_id) is JobState.FAILED)
    assert len(fake_functions.calls_to("/convert")) == MAX_ATTEMPTS
    assert _outcomes(services, event.id, "convert") == [
        (1, 503, deliveries.RETRY),
        (2, 503, deliveries.RETRY),
        (3, 503, deliveries.DEAD_LETTERED),
    ]
    assert _outcomes(services, event.id, "dead-letter/convert") == [(1, 200, deliveries.DELIVERED)]

    # Fixed: replaying the dead letters runs convert again, once, and empties the queue.
    fake_functions.answers["/convert"] = 200
    for key, value in {
        "EVENTS_URL": amqp_url,
        "JWT_SECRET": "test-secret",
        "VID2MP3_HOME": str(tmp_path / "cli"),
        "RETRY_BASE_SECONDS": str(RETRY_BASE),
        "MAX_ATTEMPTS": str(MAX_ATTEMPTS),
    }.items():
        monkeypatch.setenv(key, value)
    assert cli.main(["events", "replay", "--dead-letters"]) == 0
    assert f"replayed {event.id}" in capsys.readouterr().out
    wait_for("the replayed delivery", lambda: len(fake_functions.calls_to("/convert")) == 4)
    wait_for(
        "the replay in the event log",
        lambda: (1, 200, deliveries.DELIVERED) in _outcomes(services, event.id, "convert"),
    )
    assert _count(amqp_url, topology.dead_letter_queue("convert")) == 0
    assert cli.main(["events", "replay", "--dead-letters"]) == 0  # nothing left: no-op


def test_4xx_is_not_retried(
    amqp_url: str,
    fake_functions: FakeFunctions,
    make_dispatcher: MakeDispatcher,
    services: Services,
) -> None:
    fake_functions.answers["/convert"] = 422
    make_dispatcher(fake_functions.url)
    event = _uploaded()
    AmqpEventSink(amqp_url).publish(event)

    wait_for("the dead-letter call", lambda: fake_functions.calls_to("/dead-letter/convert"))
    assert len(fake_functions.calls_to("/convert")) == 1
    assert _outcomes(services, event.id, "convert") == [(1, 422, deliveries.REJECTED)]
    assert _count(amqp_url, _topology(amqp_url).dead_letter_queue("convert")) == 1


def test_429_and_no_answer_are_retried(
    amqp_url: str,
    fake_functions: FakeFunctions,
    make_dispatcher: MakeDispatcher,
    services: Services,
) -> None:
    # Nothing listens on ``port`` at first (a function still starting, or restarting).
    port = free_port()
    make_dispatcher(f"http://127.0.0.1:{port}")
    event = _uploaded()
    AmqpEventSink(amqp_url).publish(event)
    wait_for("a failed attempt", lambda: _outcomes(services, event.id, "convert"))
    assert _outcomes(services, event.id, "convert")[0] == (1, 0, deliveries.RETRY)

    fake_functions.answers["/convert"] = lambda n: 429 if n == 1 else 200
    server = Served(fake_functions, port)
    try:
        wait_for(
            "delivery once the function is up",
            lambda: _outcomes(services, event.id, "convert")[-1][2] == deliveries.DELIVERED,
        )
    finally:
        server.close()
    statuses = [status for _, status, _ in _outcomes(services, event.id, "convert")]
    assert statuses[0] == 0 and statuses[-2:] == [429, 200]


def test_long_delivery_keeps_the_connection_and_others_flowing(
    amqp_url: str,
    fake_functions: FakeFunctions,
    make_dispatcher: MakeDispatcher,
    services: Services,
) -> None:
    # A 1 s heartbeat: were the I/O thread blocked by the 4 s call, the broker would drop the
    # connection and redeliver the message (a second call), and the ack would fail.
    fake_functions.delays["/convert"] = 4.0
    make_dispatcher(fake_functions.url, url=amqp_url + "&heartbeat=1")
    slow = _uploaded()
    sink = AmqpEventSink(amqp_url)
    sink.publish(slow)
    wait_for("the slow call to start", lambda: fake_functions.calls_to("/convert"))
    quick = Event(type=AUDIO_CONVERTED, subject="j", data={"job_id": "j"})
    sink.publish(quick)

    wait_for("the slow delivery", lambda: _outcomes(services, slow.id, "convert"), timeout=30)
    notify = fake_functions.calls_to("/notify")
    assert notify and notify[0].at < fake_functions.calls_to("/convert")[0].at + 4.0
    time.sleep(1.5)  # room for a redelivery to show up, if the ack had been lost
    assert len(fake_functions.calls_to("/convert")) == 1
    assert _outcomes(services, slow.id, "convert") == [(1, 200, deliveries.DELIVERED)]


def test_prefetch_bounds_concurrent_deliveries(
    amqp_url: str,
    fake_functions: FakeFunctions,
    make_dispatcher: MakeDispatcher,
    services: Services,
) -> None:
    fake_functions.delays["/convert"] = 0.5
    make_dispatcher(fake_functions.url, prefetch=2)
    sink = AmqpEventSink(amqp_url)
    for _ in range(6):
        sink.publish(_uploaded())
    wait_for("six deliveries", lambda: len(fake_functions.calls_to("/convert")) == 6)
    assert fake_functions.max_in_flight == 2


def test_reconnects_after_the_broker_drops_it(
    amqp_url: str,
    fake_functions: FakeFunctions,
    make_dispatcher: MakeDispatcher,
    services: Services,
    drop_amqp_connections: Callable[[], None],
) -> None:
    dispatcher = make_dispatcher(fake_functions.url)
    drop_amqp_connections()
    wait_for("the dispatcher to notice", lambda: not dispatcher._ready.is_set(), timeout=10)
    assert dispatcher.wait_ready(30), "the dispatcher did not reconnect"
    event = _uploaded()
    AmqpEventSink(amqp_url).publish(event)
    wait_for("delivery after the reconnect", lambda: fake_functions.calls_to("/convert"))


def test_a_message_that_is_not_a_cloudevent_is_dead_lettered(
    amqp_url: str,
    fake_functions: FakeFunctions,
    make_dispatcher: MakeDispatcher,
) -> None:
    make_dispatcher(fake_functions.url)
    connection, channel = _channel(amqp_url)
    channel.basic_publish(AmqpAddress.parse(amqp_url).exchange, VIDEO_UPLOADED, b"hello")
    connection.close()
    dlq = _topology(amqp_url).dead_letter_queue("convert")
    wait_for("the dead letter", lambda: _count(amqp_url, dlq) == 1)
    assert fake_functions.calls == []


def test_dispatch_command_needs_amqp(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("VID2MP3_HOME", str(tmp_path))
    monkeypatch.setenv("EVENTS_URL", "memory://")
    assert cli.main(["dispatch"]) == 1
    assert "EVENTS_URL=amqp://" in capsys.readouterr().err


def test_delivery_threads_are_not_the_io_thread(
    amqp_url: str,
    fake_functions: FakeFunctions,
    make_dispatcher: MakeDispatcher,
    services: Services,
) -> None:
    seen: list[str] = []
    dispatcher = make_dispatcher(fake_functions.url)
    real_post = dispatcher._post

    def spy(url: str, event: Event) -> Any:
        seen.append(threading.current_thread().name)
        return real_post(url, event)

    dispatcher._post = spy  # type: ignore[method-assign]
    AmqpEventSink(amqp_url).publish(_uploaded())
    wait_for("the delivery", lambda: seen)
    assert all(name.startswith("delivery") for name in seen), seen
