"""The CloudEvent functions: contract, content modes, idempotency, retries, dead letters."""

from __future__ import annotations

from email import message_from_bytes
from importlib import resources
from typing import Any

import pytest

from tests.conftest import Api, binary_event, structured_event
from vid2mp3 import events
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.errors import InvalidInput
from vid2mp3.services import Services


def uploaded_event(services: Services, job_id: str) -> events.Event:
    """The ``video.uploaded`` event that completing ``job_id`` published."""
    sink = services.sink
    assert isinstance(sink, MemoryBus)
    return next(
        e for e in sink.published if e.type == events.VIDEO_UPLOADED and e.subject == job_id
    )


def job_row(services: Services, job_id: str) -> Any:
    with services.uow() as uow:
        return uow.jobs.get(job_id)


@pytest.fixture
def uploaded(api: Api, services: Services, make_video: Any) -> tuple[str, str, events.Event]:
    """A completed upload whose event nobody has delivered yet: (token, job id, event)."""
    token = api.token("una@example.com")
    job_id = api.upload(token, make_video("mp4"))
    return token, job_id, uploaded_event(services, job_id)


def test_every_schema_is_valid_and_events_are_checked() -> None:
    folder = resources.files("vid2mp3.contract") / "schemas"
    names = sorted(
        p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json")
    )
    assert names == sorted(events.EVENT_TYPES)
    bad = events.Event(type=events.VIDEO_UPLOADED, subject="j", data={"job_id": "j"})
    with pytest.raises(InvalidInput, match="user_id"):
        events.validate(bad)
    with pytest.raises(InvalidInput, match="unknown event type"):
        events.validate(events.Event(type="io.vid2mp3.nope", subject="j", data={}))


@pytest.mark.parametrize("mode", [binary_event, structured_event])
def test_convert_accepts_binary_and_structured_cloudevents(
    mode: Any, apps: dict[str, Any], services: Services, uploaded: Any
) -> None:
    _, job_id, event = uploaded
    response = apps["convert"].test_client().post("/", **mode(event))
    assert response.status_code == 200
    job = job_row(services, job_id)
    assert job.state == "converted"
    assert job.progress == 100
    assert services.store.size(job.mp3_key) == job.mp3_size
    converted = [e for e in services.sink.published if e.type == events.AUDIO_CONVERTED]  # type: ignore[attr-defined]
    assert len(converted) == 1
    events.validate(converted[0])  # emitted events honour the contract


def test_duplicate_and_late_deliveries_convert_once(
    apps: dict[str, Any], services: Services, uploaded: Any
) -> None:
    _, job_id, event = uploaded
    client = apps["convert"].test_client()
    assert client.post("/", **binary_event(event)).status_code == 200
    mp3_key = job_row(services, job_id).mp3_key
    stored = services.store._path(mp3_key).stat()  # type: ignore[attr-defined]
    # The same event again, and the same upload announced under a new event id (a replay).
    replay = events.Event(type=event.type, subject=event.subject, data=event.data)
    assert client.post("/", **binary_event(event)).status_code == 200
    assert client.post("/", **structured_event(replay)).status_code == 200
    job = job_row(services, job_id)
    assert job.attempts == 1
    assert services.store._path(mp3_key).stat().st_mtime_ns == stored.st_mtime_ns  # type: ignore[attr-defined]
    converted = [e for e in services.sink.published if e.type == events.AUDIO_CONVERTED]  # type: ignore[attr-defined]
    assert len(converted) == 1


def test_a_job_held_by_a_live_worker_is_left_to_it_then_taken_over(
    apps: dict[str, Any], services: Services, uploaded: Any
) -> None:
    _, job_id, event = uploaded
    with services.uow() as uow:
        assert uow.leases.take(job_id, "convert", holder="other", lease_seconds=60, event=event)
        uow.commit()
    response = apps["convert"].test_client().post("/", **binary_event(event))
    # Answered as done: the live worker owns the work, and if it dies the relay re-announces.
    assert response.status_code == 200
    assert job_row(services, job_id).state == "uploaded"
    with services.uow() as uow:
        assert not uow.processed.seen("convert", event.id)
    # Once the lease has run out (its worker died), a redelivery takes the job over.
    with services.uow() as uow:
        uow.execute("UPDATE step_leases SET lease_until = 0 WHERE job_id = ?", (job_id,))
        uow.commit()
    assert apps["convert"].test_client().post("/", **binary_event(event)).status_code == 200
    job = job_row(services, job_id)
    assert job.state == "converted"
    assert job.attempts == 1
    with services.uow() as uow:
        assert not uow.leases.held(job_id, "convert")


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        (lambda: {"data": "{}", "headers": {"Content-Type": "text/plain"}}, ""),
        (
            # Signed, so it is the schema that refuses it, not the signature check.
            lambda: binary_event(
                events.Event(type=events.VIDEO_UPLOADED, subject="x", data={"job_id": "x"})
            ),
            "user_id",
        ),
        (
            lambda: binary_event(events.Event(type=events.JOB_FAILED, subject="x", data={})),
            "handles io.vid2mp3.video.uploaded",
        ),
    ],
)
def test_bad_events_are_refused_with_400(
    apps: dict[str, Any], services: Services, kwargs: Any, words: str
) -> None:
    response = apps["convert"].test_client().post("/", **kwargs())
    # A body that is no CloudEvent at all is turned away by functions-framework itself (415).
    assert response.status_code == (400 if words else 415)
    if words:
        assert words in response.get_json()["error"]


def test_notify_sends_one_email_per_job_and_kind(
    apps: dict[str, Any], services: Services, bus: MemoryBus, uploaded: Any
) -> None:
    _, job_id, _ = uploaded
    bus.run_until_idle()
    converted = next(e for e in bus.published if e.type == events.AUDIO_CONVERTED)
    client = apps["notify"].test_client()
    for _ in range(3):
        assert client.post("/", **binary_event(converted)).status_code == 200
    mails = sorted((services.config.home / "outbox").glob("*.eml"))
    assert len(mails) == 1
    message = message_from_bytes(mails[0].read_bytes())
    assert message["X-Vid2mp3-Job"] == job_id
    parts = {
        p.get_content_type(): p.get_payload(decode=True).decode()
        for p in message.walk()
        if not p.is_multipart()
    }
    assert set(parts) == {"text/plain", "text/html"}
    assert f"/function/jobs/{job_id}/download" in parts["text/plain"]


def test_failed_deliveries_are_retried_then_dead_lettered(
    apps: dict[str, Any],
    services: Services,
    bus: MemoryBus,
    uploaded: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, job_id, _ = uploaded
    calls: list[str] = []

    def broken(services: Services, event: events.Event) -> str:
        calls.append(event.id)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr("vid2mp3.conversion.handle_video_uploaded", broken)
    bus.run_until_idle()
    assert len(calls) == services.config.max_attempts
    assert [(f, s) for f, _, s in bus.dead_letters] == [("convert", 500)]
    job = job_row(services, job_id)
    assert job.state == "failed"
    assert "could not convert this file after repeated attempts" in job.error
    assert "not with your file" in job.error
    assert any(e.type == events.JOB_FAILED for e in bus.published)


def test_a_transient_failure_is_delivered_on_a_later_attempt(
    apps: dict[str, Any],
    services: Services,
    bus: MemoryBus,
    uploaded: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, job_id, _ = uploaded
    from vid2mp3 import conversion

    real = conversion.handle_video_uploaded
    attempts: list[int] = []

    def flaky(services: Services, event: events.Event) -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("database went away")
        return real(services, event)

    monkeypatch.setattr("vid2mp3.conversion.handle_video_uploaded", flaky)
    bus.run_until_idle()
    assert len(attempts) == 3
    assert not bus.dead_letters
    assert job_row(services, job_id).state == "completed"
    # Every attempt is in the event log that `vid2mp3 events list` reads.
    with services.uow() as uow:
        logged = uow.event_log.get(uploaded_event(services, job_id).id)
    assert logged is not None
    assert [(d.target, d.attempt, d.outcome) for d in logged.deliveries] == [
        ("convert", 1, "retry"),
        ("convert", 2, "retry"),
        ("convert", 3, "delivered"),
    ]
