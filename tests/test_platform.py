"""The local platform end to end: ``vid2mp3 up --processes`` on MariaDB and RabbitMQ.

One ``up`` runs for the module as a subprocess: every function in its own functions-framework
process behind the gateway, the dispatcher delivering from RabbitMQ, state in MariaDB and a
local blob folder. Tests go through HTTP like a client and read the database like an operator.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
import requests
from mutagen.mp3 import MP3

from tests.fixtures import platform as client
from tests.fixtures.fake_functions import wait_for
from tests.fixtures.net import free_port, stop
from vid2mp3 import deliveries, event_signatures
from vid2mp3.bus.amqp import AmqpEventSink
from vid2mp3.config import Config
from vid2mp3.db.mysql import MysqlDatabase
from vid2mp3.db.unit_of_work import UnitOfWork
from vid2mp3.deliveries import LoggedEvent
from vid2mp3.events import (
    AUDIO_CONVERTED,
    AUDIO_SUMMARIZED,
    AUDIO_TRANSCRIBED,
    VIDEO_UPLOADED,
    Event,
)
from vid2mp3.model import Job, JobState

pytest_plugins = ["tests.fixtures.services_real"]

LEASE_SECONDS = 3


@dataclass
class Platform:
    url: str
    env: dict[str, str]
    home: Path
    blobs: Path
    process: subprocess.Popen[bytes]
    db: MysqlDatabase
    log: Path

    # -- as a client -------------------------------------------------------------------------

    def token(self, email: str) -> str:
        return client.token(self.url, email)

    def upload(self, token: str, video: Path, *, complete: bool = True) -> str:
        return client.upload(self.url, token, video, complete=complete)

    # -- as an operator ----------------------------------------------------------------------

    def job(self, job_id: str) -> Job:
        return client.job(self.db, job_id)

    def wait_final(self, job_id: str, timeout: float = 90) -> Job:
        return client.wait_final(self.db, job_id, timeout)

    def logged(self, job_id: str) -> list[LoggedEvent]:
        with UnitOfWork(self.db) as uow:
            return [e for e in uow.event_log.recent(1000) if e.event.subject == job_id]

    def uploaded_event(self, job_id: str) -> Event:
        with UnitOfWork(self.db) as uow:
            rows = uow.execute("SELECT payload FROM outbox WHERE job_id = ?", (job_id,)).fetchall()
        found = [Event.from_json(r[0]) for r in rows]
        [event] = [e for e in found if e.type == VIDEO_UPLOADED]
        # As the publisher sent it: the outbox keeps events unsigned, a publish signs them.
        return event_signatures.sign(event, Config.from_env(self.env))

    def emails_to(self, address: str) -> list[Any]:
        mails = [message_from_bytes(p.read_bytes()) for p in (self.home / "outbox").glob("*.eml")]
        return [m for m in mails if m["To"] == address]

    def mp3_files(self, job_id: str) -> list[Path]:
        return sorted((self.blobs / "mp3" / job_id).glob("*")) if self.blobs.exists() else []

    def function_pid(self, name: str) -> int:
        """The pid of the server process of function ``name`` (a child of ``up``)."""
        pids = client.function_pids(self.process.pid, name)
        if not pids:
            raise LookupError(f"no process for function {name}")
        return pids[0]


@pytest.fixture(scope="module")
def platform(
    mysql_module_url: str, amqp_module_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    root = tmp_path_factory.mktemp("platform")
    port = free_port()
    env = client.backends_env(
        mysql_module_url,
        amqp_module_url,
        root,
        JWT_SECRET="platform-test-secret",
        PUBLIC_URL=f"http://127.0.0.1:{port}",
        RETRY_BASE_SECONDS="0.5",
        MAX_ATTEMPTS="6",
        JOB_LEASE_SECONDS=str(LEASE_SECONDS),
        VID2MP3_LOG_LEVEL="INFO",
    )
    log = root / "up.log"
    process = client.start_up(env, port, log)
    db = MysqlDatabase(mysql_module_url)
    try:
        yield Platform(
            f"http://127.0.0.1:{port}", env, root / "home", root / "blobs", process, db, log
        )
    finally:
        stop(process)
        db.close()


def _deliveries(logged: list[LoggedEvent], event_type: str) -> list[tuple[str, str]]:
    [entry] = [e for e in logged if e.event.type == event_type]
    return [(d.target, d.outcome) for d in entry.deliveries]


def test_upload_becomes_mp3_and_email_through_rabbitmq(platform: Platform, make_video: Any) -> None:
    video = make_video("mp4")
    token = platform.token("ada@example.com")
    job_id = platform.upload(token, video)
    job = platform.wait_final(job_id)
    assert job.state is JobState.COMPLETED, job.error
    assert job.summary_status == "skipped"

    download = requests.get(
        f"{platform.url}/function/jobs/{job_id}/download",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "audio/mpeg"
    assert len(download.content) == job.mp3_size

    wait_for("the email", lambda: platform.emails_to("ada@example.com"))
    [mail] = platform.emails_to("ada@example.com")
    assert mail["Subject"] == f"Your MP3 is ready: {video.name}"

    # The event log, read through the command line as an operator would.
    listed = subprocess.run(
        [sys.executable, "-m", "vid2mp3.cli", "events", "list", "--json"],
        env=platform.env,
        capture_output=True,
        text=True,
        check=True,
    )
    mine = [e for e in json.loads(listed.stdout) if e["subject"] == job_id]
    assert {e["type"] for e in mine} == {
        VIDEO_UPLOADED,
        AUDIO_CONVERTED,
        AUDIO_TRANSCRIBED,
        AUDIO_SUMMARIZED,
    }
    for entry in mine:
        assert set(entry) >= {"id", "type", "subject", "deliveries"}
        for delivery in entry["deliveries"]:
            assert delivery["duration"] >= 0 and delivery["delivered_at"] > 0
    logged = platform.logged(job_id)
    assert _deliveries(logged, VIDEO_UPLOADED)[-1] == ("convert", deliveries.DELIVERED)
    converted = _deliveries(logged, AUDIO_CONVERTED)
    assert {t for t, o in converted if o == deliveries.DELIVERED} == {"transcribe", "notify"}
    assert _deliveries(logged, AUDIO_TRANSCRIBED)[-1] == ("summarize", deliveries.DELIVERED)
    assert _deliveries(logged, AUDIO_SUMMARIZED)[-1] == ("notify", deliveries.DELIVERED)


def test_the_same_upload_event_twice_gives_one_mp3_and_one_email(
    platform: Platform, make_video: Any
) -> None:
    video = make_video("mp4")
    token = platform.token("bob@example.com")
    job_id = platform.upload(token, video)
    event = platform.uploaded_event(job_id)
    sink = AmqpEventSink(platform.env["EVENTS_URL"])
    # Two more copies, racing the first: a redelivering broker does no worse than this.
    publishers = [threading.Thread(target=sink.publish, args=(event,)) for _ in range(2)]
    for t in publishers:
        t.start()
    for t in publishers:
        t.join()
    sink.close()

    job = platform.wait_final(job_id)
    assert job.state is JobState.COMPLETED

    def three_settled() -> bool:
        logged = platform.logged(job_id)
        done = [o for t, o in _deliveries(logged, VIDEO_UPLOADED) if o == deliveries.DELIVERED]
        return len(done) == 3

    wait_for("all three copies to be answered", three_settled)
    wait_for("the email", lambda: platform.emails_to("bob@example.com"))
    time.sleep(1)  # a second email, were one coming, would be on its way by now
    assert len(platform.emails_to("bob@example.com")) == 1
    assert len(platform.mp3_files(job_id)) == 1
    assert len([e for e in platform.logged(job_id) if e.event.type == AUDIO_CONVERTED]) == 1
    assert job.attempts == 1


def test_killed_converter_is_redelivered_and_the_job_completes_once(
    platform: Platform, make_video: Any
) -> None:
    video = make_video("mp4", seconds=600)
    token = platform.token("cy@example.com")
    job_id = platform.upload(token, video)
    wait_for(
        "the conversion to be under way",
        lambda: (j := platform.job(job_id)).state is JobState.CONVERTING and j.progress >= 1,
        timeout=60,
    )
    victim = platform.function_pid("convert")
    os.killpg(victim, signal.SIGKILL)  # the whole container: server, worker and ffmpeg

    job = platform.wait_final(job_id, timeout=120)
    assert job.state is JobState.COMPLETED, job.error
    assert job.attempts == 2  # claimed by the killed worker, then once more
    assert platform.function_pid("convert") != victim  # the platform restarted it
    [mp3] = platform.mp3_files(job_id)
    assert MP3(mp3).info.length == pytest.approx(600, abs=1)
    wait_for("the email", lambda: platform.emails_to("cy@example.com"))
    assert len(platform.emails_to("cy@example.com")) == 1

    attempts = [
        (d.status, d.outcome)
        for e in platform.logged(job_id)
        if e.event.type == VIDEO_UPLOADED
        for d in e.deliveries
        if d.target == "convert"
    ]
    assert attempts[0][1] == deliveries.RETRY and attempts[0][0] in (0, 502)
    assert attempts[-1] == (200, deliveries.DELIVERED)
    # Between them: retries, or a redelivery answered 200 while the dead worker's lease still
    # ran (left to it; the relay then announced the step again). Never a dead letter.
    assert all(outcome in (deliveries.RETRY, deliveries.DELIVERED) for _, outcome in attempts[:-1])
