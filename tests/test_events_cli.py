"""``vid2mp3 events``: list/show the event log, replay events; and the replayable samples."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.fake_functions import (  # noqa: F401 (fixture)
    FakeFunctions,
    fake_functions_fixture,
)
from tests.fixtures.net import Served
from vid2mp3 import cli, deliveries, events
from vid2mp3.bus.amqp import AmqpAddress
from vid2mp3.deliveries import Delivery
from vid2mp3.events import AUDIO_CONVERTED, EVENT_TYPES, VIDEO_UPLOADED, Event
from vid2mp3.local.gateway import Gateway
from vid2mp3.runtime.topology import Topology
from vid2mp3.services import Services
from vid2mp3.triggers import subscribers

pytest_plugins = ["tests.fixtures.services_real"]

SAMPLES = Path(__file__).resolve().parents[1] / "events" / "samples"


@pytest.fixture
def cli_env(services: Services, monkeypatch: pytest.MonkeyPatch) -> Services:
    """Point the command line at the test's embedded state (its SQLite event log)."""
    monkeypatch.setenv("VID2MP3_HOME", str(services.config.home))
    monkeypatch.setenv("DATABASE_URL", services.config.database_url)
    monkeypatch.delenv("EVENTS_URL", raising=False)
    monkeypatch.delenv("K_SINK", raising=False)
    return services


def _log(services: Services, event: Event, *attempts: tuple[str, int]) -> None:
    now = time.time()
    with services.uow() as uow:
        for n, (target, status) in enumerate(attempts, 1):
            outcome = deliveries.DELIVERED if status < 300 else deliveries.RETRY
            delivery = Delivery(event.id, target, n, status, outcome, 0.5, now + n)
            uow.event_log.record(event, delivery)
        uow.commit()


def _event(event_type: str = VIDEO_UPLOADED, job_id: str = "job-1") -> Event:
    return Event(type=event_type, subject=job_id, data={"job_id": job_id, "user_id": "u"})


def test_list_json_and_show(cli_env: Services, capsys: pytest.CaptureFixture[str]) -> None:
    first, second = _event(job_id="j1"), _event(AUDIO_CONVERTED, "j2")
    _log(cli_env, first, ("convert", 503), ("convert", 200))
    _log(cli_env, second, ("summarize", 200))

    assert cli.main(["events", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    by_id = {e["id"]: e for e in listed}
    assert set(by_id) == {first.id, second.id}
    assert by_id[first.id]["type"] == VIDEO_UPLOADED
    assert by_id[first.id]["subject"] == "j1"
    assert [(d["target"], d["attempt"], d["status"]) for d in by_id[first.id]["deliveries"]] == [
        ("convert", 1, 503),
        ("convert", 2, 200),
    ]

    assert cli.main(["events", "list"]) == 0
    text = capsys.readouterr().out
    assert first.id in text and "2 deliveries" in text

    assert cli.main(["events", "show", first.id]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["data"] == first.data
    assert len(shown["deliveries"]) == 2

    assert cli.main(["events", "show", "nope"]) == 1
    assert "no event nope" in capsys.readouterr().err


def test_replay_by_id_posts_the_same_event(
    cli_env: Services, fake_functions: FakeFunctions, capsys: pytest.CaptureFixture[str]
) -> None:
    event = _event()
    _log(cli_env, event, ("convert", 500))
    assert cli.main(["events", "replay", event.id, "--to", f"{fake_functions.url}/convert"]) == 0
    [call] = fake_functions.calls_to("/convert")
    assert (call.event_id, call.event_type, call.data) == (event.id, event.type, event.data)
    assert f"replayed {event.id}" in capsys.readouterr().out

    fake_functions.answers["/convert"] = 500
    assert cli.main(["events", "replay", event.id, "--to", f"{fake_functions.url}/convert"]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert cli.main(["events", "replay", "missing-id", "--to", fake_functions.url]) == 1


def test_replay_file_of_json_lines(
    cli_env: Services,
    fake_functions: FakeFunctions,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sent = [_event(job_id="a"), _event(job_id="b")]
    jsonl = tmp_path / "events.jsonl"
    jsonl.write_text("".join(e.to_json() + "\n" for e in sent) + "\n")
    assert (
        cli.main(["events", "replay", "--file", str(jsonl), "--to", f"{fake_functions.url}/x"]) == 0
    )
    assert [c.event_id for c in fake_functions.calls_to("/x")] == [e.id for e in sent]

    broken = tmp_path / "broken.jsonl"
    broken.write_text(sent[0].to_json() + "\n{not json\n")
    assert cli.main(["events", "replay", "--file", str(broken), "--to", fake_functions.url]) == 1
    assert "broken.jsonl:2" in capsys.readouterr().err


def test_replay_needs_one_source_and_a_broker(
    cli_env: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["events", "replay"]) == 1
    assert "one of them" in capsys.readouterr().err
    event = _event()
    _log(cli_env, event, ("convert", 500))
    assert cli.main(["events", "replay", event.id]) == 1  # memory:// has no broker to go back to
    assert "--to URL" in capsys.readouterr().err


def test_replay_through_the_broker(
    cli_env: Services,
    amqp_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import pika

    address = AmqpAddress.parse(amqp_url)
    topology = Topology(address.exchange)
    connection = pika.BlockingConnection(address.parameters())
    channel = connection.channel()
    topology.declare(channel)
    event = Event(
        type=VIDEO_UPLOADED,
        subject="j",
        data=json.loads((SAMPLES / f"{VIDEO_UPLOADED}.json").read_text())["data"],
    )
    _log(cli_env, event, ("convert", 500))
    monkeypatch.setenv("EVENTS_URL", amqp_url)
    monkeypatch.setenv("JWT_SECRET", "test-secret")
    assert cli.main(["events", "replay", event.id, "--broker"]) == 0
    method, properties, body = channel.basic_get(topology.work_queue("convert"), auto_ack=True)
    connection.close()
    assert method is not None
    assert properties.headers["id"] == event.id
    assert json.loads(body) == event.data


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_sample_is_a_valid_event(event_type: str) -> None:
    path = SAMPLES / f"{event_type}.json"
    raw = json.loads(path.read_text())
    assert raw["specversion"] == "1.0"
    assert raw["datacontenttype"] == "application/json"
    event = Event.from_json(path.read_text())
    assert event.type == event_type
    events.validate(event)


def test_every_sample_replays_against_its_functions(
    cli_env: Services, apps: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    server = Served(Gateway(apps))
    try:
        for event_type in EVENT_TYPES:
            sample = SAMPLES / f"{event_type}.json"
            for function in subscribers(event_type):
                target = f"{server.url}/function/{function}"
                assert cli.main(["events", "replay", "--file", str(sample), "--to", target]) == 0
                out = capsys.readouterr().out
                assert "replayed" in out and "answered 2" in out, (function, out)
    finally:
        server.close()
