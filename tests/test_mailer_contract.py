"""One contract for every ``Mailer``: the outbox folder (the embedded default) and SMTP against
a real SMTP server on 127.0.0.1 (aiosmtpd, tests/fixtures/smtp.py).

What each must do: a message sent arrives once, with its subject, recipient and body as sent
(non-ASCII included); a mail server that cannot be reached raises ``TransientError``, so the
``notify`` event is delivered again, never an ``OSError`` or ``smtplib`` exception. For the
outbox, "unreachable" is a folder it cannot write to.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.fixtures.net import free_port
from tests.fixtures.smtp import SmtpServer, smtp_server_fixture  # noqa: F401 (fixture)
from vid2mp3.errors import TransientError
from vid2mp3.mail.outbox import OutboxMailer
from vid2mp3.mail.smtp import SmtpMailer
from vid2mp3.ports import Mailer

MAILERS = ("outbox", "smtp")


@dataclass
class Delivery:
    """A mailer, and how to read back the messages that reached their destination."""

    mailer: Mailer
    arrived: Callable[[], list[EmailMessage]]


def _parse(data: bytes) -> EmailMessage:
    parsed = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def _outbox_messages(folder: Path) -> list[EmailMessage]:
    # Dot-files are messages still being written; a reader never picks those up.
    return [_parse(path.read_bytes()) for path in sorted(folder.glob("[!.]*.eml"))]


@pytest.fixture(params=MAILERS)
def delivery(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Delivery]:
    if request.param == "outbox":
        folder = tmp_path / "outbox"
        yield Delivery(OutboxMailer(folder), lambda: _outbox_messages(folder))
    else:
        server: SmtpServer = request.getfixturevalue("smtp_server")
        yield Delivery(SmtpMailer(server.url), lambda: [r.message for r in server.received])


@pytest.fixture(params=MAILERS)
def unreachable(request: pytest.FixtureRequest, tmp_path: Path) -> Mailer:
    """A mailer whose destination cannot be reached."""
    if request.param == "outbox":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("a file where the outbox folder should be")
        return OutboxMailer(blocker / "outbox")
    return SmtpMailer(f"smtp://127.0.0.1:{free_port()}?timeout=2")


def _message(to: str = "eve@example.com") -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = "Your MP3 is ready: Café del Mar"
    message["From"] = "vid2mp3 <mail@vid2mp3.test>"
    message["To"] = to
    message.set_content("Download it: http://testserver/function/jobs/j-1/download\nÀ bientôt.\n")
    return message


def test_a_sent_message_arrives_once_as_sent(delivery: Delivery) -> None:
    delivery.mailer.send(_message("ada@example.com"))
    [got] = delivery.arrived()
    assert got["Subject"] == "Your MP3 is ready: Café del Mar"
    assert got["To"] == "ada@example.com"
    body = got.get_body(("plain",))
    assert body is not None
    # Lines, not bytes: SMTP carries CRLF line ends, a file keeps the message's LF.
    assert body.get_content().splitlines() == [
        "Download it: http://testserver/function/jobs/j-1/download",
        "À bientôt.",
    ]


def test_an_unreachable_destination_raises_transient_error(unreachable: Mailer) -> None:
    with pytest.raises(TransientError) as caught:
        unreachable.send(_message())
    assert caught.value.message
