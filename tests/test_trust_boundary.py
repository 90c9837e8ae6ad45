"""Only the platform talks to event functions (issue 10, point 1), tried as an attacker would.

``vid2mp3 up`` runs as a subprocess in both modes: the embedded default (every function in the
gateway's process, the in-process bus) and ``--processes`` on MariaDB and RabbitMQ. A victim
converts a video with a webhook set; then an outsider posts what the issue's attacker posted:
``ce-*`` headers and structured mode, to ``notify`` and to ``dead-letter/convert``, sync and
async, unsigned and with a made-up signature. Every request is refused, and the effects are
counted afterwards: no email, no webhook call, no job changed. An operator's replay of the same
``job.failed`` is signed and reaches notify, which still sends nothing: what a message says
comes from the job's row.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.fixtures import platform as client
from tests.fixtures.fake_functions import wait_for
from tests.fixtures.net import free_port, stop
from tests.fixtures.receiver import Receiver
from vid2mp3 import events

pytest_plugins = ["tests.fixtures.services_real", "tests.fixtures.receiver"]

SECRET = "trust-boundary-test-secret-at-least-32-bytes"


@dataclass
class Stack:
    url: str
    env: dict[str, str]
    home: Path
    receiver: Receiver

    def emails_to(self, address: str) -> list[Any]:
        mails = [message_from_bytes(p.read_bytes()) for p in (self.home / "outbox").glob("*.eml")]
        return [m for m in mails if m["To"] == address]

    def job(self, token: str, job_id: str) -> dict[str, Any]:
        r = requests.get(
            f"{self.url}/function/jobs/{job_id}", headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture(params=["embedded", "processes"])
def stack(request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver) -> Iterator[Stack]:
    port = free_port()
    settings = {
        "JWT_SECRET": SECRET,
        "ALLOW_PRIVATE_WEBHOOKS": "1",  # the receiver is on 127.0.0.1
        "RETRY_BASE_SECONDS": "0.2",
        "VID2MP3_LOG_LEVEL": "INFO",
    }
    if request.param == "processes":
        database_url = request.getfixturevalue("mysql_url")
        events_url = request.getfixturevalue("amqp_url")
        env = client.backends_env(database_url, events_url, tmp_path, **settings)
    else:
        env = {
            k: v
            for k, v in client.backends_env("", "", tmp_path, **settings).items()
            if k not in ("DATABASE_URL", "EVENTS_URL", "STORAGE_URL")
        }
    process = client.start_up(
        env, port, tmp_path / "up.log", processes=request.param == "processes"
    )
    try:
        yield Stack(f"http://127.0.0.1:{port}", env, Path(env["VID2MP3_HOME"]), receiver)
    finally:
        stop(process)


def _forgeries(job_id: str, user_id: str, pending_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(path, requests kwargs) of every forged delivery the attacker tries."""
    failed = events.Event(
        type=events.JOB_FAILED,
        subject=job_id,
        data={
            "job_id": job_id,
            "user_id": user_id,
            "filename": "talk.mp4",
            "stage": "convert",
            "reason": "Your account is suspended: pay at http://evil.example/",
        },
    )
    uploaded = events.Event(
        type=events.VIDEO_UPLOADED,
        subject=pending_id,
        data={
            "job_id": pending_id,
            "user_id": user_id,
            "filename": "talk.mp4",
            "video_key": f"videos/{pending_id}/talk.mp4",
            "size": 1000,
            "content_type": "video/mp4",
            "options": {},
        },
    )
    made_up = dataclasses.replace(failed, signature="v1=" + "ab" * 32)

    def binary(event: events.Event) -> dict[str, Any]:
        return {"data": json.dumps(event.data), "headers": event.binary_headers()}

    def structured(event: events.Event) -> dict[str, Any]:
        return {
            "data": event.to_json(),
            "headers": {"Content-Type": "application/cloudevents+json"},
        }

    tries = []
    for prefix in ("function", "async-function"):
        tries += [
            (f"/{prefix}/notify", binary(failed)),
            (f"/{prefix}/notify", structured(failed)),
            (f"/{prefix}/notify", binary(made_up)),
            (f"/{prefix}/notify.openfaas-fn", structured(made_up)),
            (f"/{prefix}/dead-letter/convert", binary(uploaded)),
            (f"/{prefix}/dead-letter/notify", binary(failed)),
            (f"/{prefix}/convert", structured(uploaded)),
        ]
    return tries


def test_forged_events_change_nothing_and_send_nothing(
    stack: Stack, make_video: Any, tmp_path: Path
) -> None:
    victim = "victim@example.com"
    token = client.token(stack.url, victim)
    auth = {"Authorization": f"Bearer {token}"}
    r = requests.put(
        f"{stack.url}/function/settings", json={"webhook_url": stack.receiver.url}, headers=auth
    )
    assert r.status_code == 200, r.text
    job_id = client.upload(stack.url, token, make_video("mp4"))
    pending_id = client.upload(stack.url, token, make_video("mp4"), complete=False)
    wait_for("the job to complete", lambda: stack.job(token, job_id)["state"] == "completed", 90)
    # Ready email, and a webhook call for audio.converted and audio.summarized (skipped).
    wait_for("the ready email", lambda: len(stack.emails_to(victim)) == 1, 30)
    wait_for("both webhook calls", lambda: len(stack.receiver.hits) == 2, 30)
    time.sleep(1)  # anything still on its way from the real run lands before the count
    emails, hits = len(stack.emails_to(victim)), len(stack.receiver.hits)
    before = stack.job(token, job_id), stack.job(token, pending_id)
    user_id = before[0].get("user_id") or _user_id(stack, token)

    answers = []
    for path, kwargs in _forgeries(job_id, user_id, pending_id):
        response = requests.post(stack.url + path, **kwargs)
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        error = response.json().get("error", "") if is_json else response.text
        answers.append((path, response.status_code, error))
    assert all(status == 403 for _, status, _ in answers), answers
    assert all("vid2mp3signature" in error for _, _, error in answers), answers

    # An operator replays the same failure notice: it is signed, so notify takes it, and
    # sends nothing because the job's row says the job completed.
    forged_file = tmp_path / "failed.json"
    forged_file.write_text(_forgeries(job_id, user_id, pending_id)[1][1]["data"])
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "vid2mp3.cli",
            "events",
            "replay",
            "--file",
            str(forged_file),
            "--to",
            f"{stack.url}/function/notify",
        ],
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "answered 200" in replay.stdout

    time.sleep(2)  # an async call or a retry, were one to send anything, would have by now
    assert len(stack.emails_to(victim)) == emails
    assert len(stack.receiver.hits) == hits
    assert not any(b"evil.example" in hit.body for hit in stack.receiver.hits)
    after = stack.job(token, job_id), stack.job(token, pending_id)
    assert after == before
    assert after[0]["state"] == "completed" and after[0]["error"] is None
    assert after[1]["state"] == "awaiting_upload"


def _user_id(stack: Stack, token: str) -> str:
    import jwt

    return str(jwt.decode(token, SECRET, algorithms=["HS256"])["sub"])


# -- each event function on its own, reached directly (no gateway in front) -------------------


@pytest.mark.parametrize(
    ("path", "event_type"),
    [
        ("convert", events.VIDEO_UPLOADED),
        ("transcribe", events.AUDIO_CONVERTED),
        ("summarize", events.AUDIO_TRANSCRIBED),
        ("notify", events.JOB_FAILED),
        ("dead-letter/convert", events.VIDEO_UPLOADED),
        ("dead-letter/notify", events.JOB_FAILED),
    ],
)
@pytest.mark.parametrize("signature", ["", "v1=" + "0" * 64])
def test_every_event_function_refuses_an_unsigned_event_itself(
    apps: dict[str, Any], services: Any, path: str, event_type: str, signature: str
) -> None:
    event = events.Event(
        type=event_type, subject="victim", data={"job_id": "victim"}, signature=signature
    )
    name, _, rest = path.partition("/")
    client = apps[name].test_client()
    response = client.post(f"/{rest}", data=json.dumps(event.data), headers=event.binary_headers())
    assert response.status_code == 403, response.get_data()
    assert "vid2mp3signature" in response.get_json()["error"]
