"""Emails through a real SMTP server (aiosmtpd on 127.0.0.1), driven by the real pipeline."""

from __future__ import annotations

import html
import shutil
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, binary_event, make_config
from tests.fixtures.smtp import (  # noqa: F401 (fixtures)
    PASSWORD,
    USER,
    SmtpServer,
    TlsFiles,
    smtp_server_fixture,
    tls_files_fixture,
)
from vid2mp3 import bootstrap, display, events
from vid2mp3.bus.memory import MemoryBus
from vid2mp3.errors import ConfigError, PermanentError, TransientError
from vid2mp3.mail.smtp import SmtpMailer
from vid2mp3.services import Services

MAIL_FROM = "vid2mp3 <mail@vid2mp3.test>"


@pytest.fixture
def services(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Services]:
    """Embedded services whose mail goes to the test SMTP server (overrides conftest's)."""
    config = make_config(tmp_path / "home", SMTP_URL=smtp_server.url, MAIL_FROM=MAIL_FROM)
    svc = bootstrap.build(config)
    bootstrap.install(svc)
    yield svc
    bootstrap.install(None)
    svc.db.close()


def parts(message: EmailMessage) -> tuple[str, str]:
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None, message
    return plain.get_content(), rich.get_content()


def notify_events(bus: MemoryBus) -> list[events.Event]:
    return [e for e in bus.published if e.type in (events.AUDIO_CONVERTED, events.JOB_FAILED)]


def test_ready_email_has_both_parts_and_escapes_the_name(
    make_video: Any,
    api: Api,
    bus: MemoryBus,
    services: Services,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    video = tmp_path / "<script>.mp4"
    shutil.copyfile(make_video("mp4"), video)
    token = api.token("ada@example.com")
    job_id = api.upload(token, video)
    bus.run_until_idle()

    assert len(smtp_server.received) == 1
    got = smtp_server.received[0]
    assert got.rcpt_tos == ["ada@example.com"]
    assert got.mail_from == "mail@vid2mp3.test"
    message = got.message
    assert message["Subject"] == "Your MP3 is ready: <script>.mp4"
    assert message["To"] == "ada@example.com"
    assert message.get_content_type() == "multipart/alternative"
    text, page = parts(message)
    assert "<script>.mp4" in text
    assert "&lt;script&gt;.mp4" in page
    assert "<script>" not in page
    job = api.job(token, job_id)
    link = f"http://testserver/function/jobs/{job_id}/download"
    duration = display.duration(job["mp3"]["duration"])
    size = display.size(job["mp3"]["size"])
    for body in (text, page):
        assert link in body
        assert duration in body and duration != "unknown"
        assert size in body and size != "unknown"
        # No AI is configured, so no summary is promised.
        assert "summary" not in body.lower()


def test_failed_email_gives_the_reason(
    make_video: Any, api: Api, bus: MemoryBus, services: Services, smtp_server: SmtpServer
) -> None:
    token = api.token("bob@example.com")
    job_id = api.upload(token, make_video("text_as_mp4"))
    bus.run_until_idle()

    reason = api.job(token, job_id)["error"]
    assert reason
    [got] = smtp_server.received
    assert got.rcpt_tos == ["bob@example.com"]
    assert got.message["Subject"] == "We could not convert text_as_mp4_4s.mp4"
    text, page = parts(got.message)
    assert reason in text
    assert html.escape(reason) in page


def test_redelivery_sends_each_email_once(
    make_video: Any,
    api: Api,
    apps: dict[str, Any],
    bus: MemoryBus,
    services: Services,
    smtp_server: SmtpServer,
) -> None:
    token = api.token("cy@example.com")
    api.upload(token, make_video("mp4"))
    bus.run_until_idle()
    [converted] = notify_events(bus)
    assert len(smtp_server.received) == 1

    # The same event again, and a copy under a new id (a producer that re-emitted it).
    copy = events.Event(converted.type, converted.subject, converted.data, converted.source)
    for event in (converted, converted, copy):
        response = apps["notify"].test_client().post("/", **binary_event(event))
        assert response.status_code == 200, response.get_data(as_text=True)
    assert len(smtp_server.received) == 1


def test_smtp_down_is_retried_by_redelivery(
    make_video: Any,
    api: Api,
    apps: dict[str, Any],
    bus: MemoryBus,
    services: Services,
    smtp_server: SmtpServer,
) -> None:
    smtp_server.stop()
    bus.max_attempts = 1  # the first failure goes straight to the dead-letter function
    token = api.token("dee@example.com")
    job_id = api.upload(token, make_video("mp4"))
    bus.run_until_idle()

    [converted] = notify_events(bus)
    assert [(f, e.id, status) for f, e, status in bus.dead_letters] == [
        ("notify", converted.id, 503)
    ]
    assert api.job(token, job_id)["state"] == "completed"  # a lost email never fails the job
    with services.uow() as uow:
        assert uow.notifications.status(job_id, "ready") is None  # released for the next try

    smtp_server.start()
    for _ in range(2):
        response = apps["notify"].test_client().post("/", **binary_event(converted))
        assert response.status_code == 200
    assert len(smtp_server.received) == 1
    assert smtp_server.received[0].rcpt_tos == ["dee@example.com"]


def test_recipient_refused_for_good_is_not_retried(
    make_video: Any, api: Api, bus: MemoryBus, services: Services, smtp_server: SmtpServer
) -> None:
    smtp_server.refuse.add("nobody@example.com")
    token = api.token("nobody@example.com")
    job_id = api.upload(token, make_video("mp4"))
    bus.run_until_idle()

    assert smtp_server.received == []
    assert bus.dead_letters == []  # answered 2xx: retrying a 550 would only repeat it
    assert api.job(token, job_id)["state"] == "completed"


def _message(to: str = "eve@example.com") -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "hello"
    message["From"] = MAIL_FROM
    message["To"] = to
    message.set_content("plain")
    message.add_alternative("<p>rich</p>", subtype="html")
    return message


@pytest.mark.parametrize("mode", ["starttls", "smtps"])
def test_tls_modes_encrypt_and_log_in(mode: str, tls_files: TlsFiles) -> None:
    server = SmtpServer(mode, tls_files)
    server.start()
    try:
        SmtpMailer(server.url, tls_context=tls_files.client_context()).send(_message())
        # The system trust store does not know the test certificate: verification is on.
        with pytest.raises(TransientError):
            SmtpMailer(server.url).send(_message())
        wrong = server.url.replace(PASSWORD.replace(" ", "%20"), "wrong")
        with pytest.raises(TransientError, match="login"):
            SmtpMailer(wrong, tls_context=tls_files.client_context()).send(_message())
    finally:
        server.stop()
    [got] = server.received
    assert got.tls
    assert got.login == USER
    assert got.rcpt_tos == ["eve@example.com"]


def test_refused_recipient_raises_permanent_error(smtp_server: SmtpServer) -> None:
    smtp_server.refuse.add("gone@example.com")
    with pytest.raises(PermanentError, match="550"):
        SmtpMailer(smtp_server.url).send(_message("gone@example.com"))


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://mail.example.com", "scheme"),
        ("smtp://", "host"),
        ("smtp://mail.example.com?tls=1", "unknown options"),
        ("smtp://mail.example.com:99999", "port"),
    ],
)
def test_bad_smtp_url_names_the_problem(url: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        SmtpMailer(url)


def test_mailer_repr_hides_the_password() -> None:
    mailer = SmtpMailer("smtps://user:hunter2@mail.example.com")
    assert "hunter2" not in repr(mailer)
    assert (mailer.port, mailer.implicit_tls) == (465, True)
    assert SmtpMailer("smtp://mail.example.com?starttls=1").port == 587
