"""The outbox relay and step takeovers on the embedded default: nothing committed is lost,
nothing abandoned stays stuck. (tests/test_reliability.py does the same on real servers.)"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from tests.conftest import Api
from vid2mp3 import events, steps
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.errors import TransientError
from vid2mp3.runtime.relay import OutboxRelay
from vid2mp3.services import Services


class Broker:
    """Stands between the services and the memory bus: down or up, and counts what went out."""

    def __init__(self, bus: MemoryBus) -> None:
        self.bus = bus
        self.down = False
        self.sent: Counter[str] = Counter()

    def publish(self, event: events.Event) -> None:
        if self.down:
            raise TransientError("the event broker is unreachable (test)")
        self.sent[event.id] += 1
        self.bus.publish(event)


@pytest.fixture
def broker(services: Services, bus: MemoryBus) -> Broker:
    wrapper = Broker(bus)
    services.sink = wrapper
    return wrapper


def _unsent(services: Services) -> list[str]:
    with services.uow() as uow:
        return [r[0] for r in uow.execute("SELECT id FROM outbox WHERE sent_at IS NULL")]


def _job(services: Services, job_id: str) -> Any:
    with services.uow() as uow:
        return uow.jobs.get(job_id)


def _expire_leases(services: Services, job_id: str) -> None:
    with services.uow() as uow:
        uow.execute("UPDATE step_leases SET lease_until = 0 WHERE job_id = ?", (job_id,))
        uow.commit()


def _taken_by_a_dead_worker(
    api: Api, services: Services, bus: MemoryBus, video: Any
) -> tuple[str, events.Event]:
    """An uploaded job that a worker took and died with: its lease is there, nobody renews it.
    Returns the job id and its ``video.uploaded`` event."""
    job_id = api.upload(api.token("dead-worker@example.com"), video)
    [uploaded] = [e for e in bus.published if e.type == events.VIDEO_UPLOADED]
    with services.uow() as uow:
        uow.leases.take(job_id, "convert", holder="dead", lease_seconds=60, event=uploaded)
        uow.jobs.start_converting(job_id)
        uow.commit()
    return job_id, uploaded


def test_complete_during_an_outage_answers_202_and_the_relay_publishes_once(
    api: Api, services: Services, bus: MemoryBus, broker: Broker, make_video: Any
) -> None:
    token = api.token("olga@example.com")
    broker.down = True
    job_id = api.upload(token, make_video("mp4"))  # asserts that complete answered 202
    assert _job(services, job_id).state == "uploaded"
    [kept] = _unsent(services)

    relay = OutboxRelay(services)
    assert relay.tick() == (0, 0)  # still down: kept, not lost
    assert _unsent(services) == [kept]

    broker.down = False
    assert relay.tick() == (0, 1)
    assert relay.tick() == (0, 0)
    bus.run_until_idle()
    relay.tick()
    assert _job(services, job_id).state == "completed"
    assert broker.sent[kept] == 1
    assert set(broker.sent.values()) == {1}  # every event of the job, once
    assert _unsent(services) == []


def test_a_dead_workers_step_is_announced_again_and_finished_once(
    api: Api, services: Services, bus: MemoryBus, broker: Broker, make_video: Any
) -> None:
    job_id, uploaded = _taken_by_a_dead_worker(api, services, bus, make_video("mp4"))
    bus.run_until_idle()  # the broker's delivery finds it held and leaves it to that worker
    assert _job(services, job_id).state == "converting"

    relay = OutboxRelay(services)
    assert relay.tick()[0] == 0  # the lease is still live
    _expire_leases(services, job_id)
    assert relay.tick()[0] == 1
    bus.run_until_idle()
    relay.tick()
    bus.run_until_idle()
    job = _job(services, job_id)
    assert job.state == "completed", job.error
    assert job.attempts == 2
    # Published by complete, then once more by the relay: the takeover, not a second outbox send.
    assert broker.sent[uploaded.id] == 2
    emails = list((services.config.home / "outbox").glob("*.eml"))
    assert len(emails) == 1


def test_a_job_whose_workers_keep_dying_fails_blaming_the_service(
    api: Api, services: Services, bus: MemoryBus, broker: Broker, make_video: Any
) -> None:
    job_id, _ = _taken_by_a_dead_worker(api, services, bus, make_video("mp4"))
    relay = OutboxRelay(services)
    for _ in range(services.config.max_takeovers + 1):
        _expire_leases(services, job_id)
        with services.uow() as uow:
            uow.execute("UPDATE step_leases SET is_free = 0 WHERE job_id = ?", (job_id,))
            uow.commit()
        relay.tick()
    job = _job(services, job_id)
    assert job.state == "failed"
    assert job.error == steps.KEPT_STOPPING.format(count=services.config.max_takeovers + 1)
    assert "not with your file" in job.error
    bus.run_until_idle()
    [email] = list((services.config.home / "outbox").glob("*.eml"))
    assert "could not convert" in email.read_text(errors="replace")
