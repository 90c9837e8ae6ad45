"""Email over SMTP (``SMTP_URL``).

``SMTP_URL`` forms (user and password are optional and percent-encoded):

- ``smtp://user:pass@host:port`` plain SMTP, no encryption (port 25 by default); for a relay on
  the same host or network only, since the password travels in clear text;
- ``smtp://user:pass@host:port?starttls=1`` upgraded with STARTTLS (port 587 by default);
- ``smtps://user:pass@host:port`` TLS from the first byte (port 465 by default).

``?timeout=<seconds>`` (default 30) bounds each network step; ``?helo=<name>`` sets the name this
client greets with (default: the machine's host name).

Failures are sorted for the event delivery: anything that may work later (server down, timeouts,
TLS or login trouble, 4xx answers) raises ``TransientError``, so the ``notify`` event is
delivered again; a 5xx refusal of the recipient, the sender or the message raises
``PermanentError``, because the same message will be refused every time: the caller logs it and
does not retry.
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
from email.utils import getaddresses, parseaddr
from urllib.parse import parse_qs, unquote, urlsplit

from vid2mp3.errors import ConfigError, PermanentError, TransientError
from vid2mp3.ports import EmailMessageLike

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 30.0
_TRUE = {"1", "true", "yes", "on"}


class SmtpMailer:
    """Send each message on its own SMTP connection.

    Args:
        url: the ``SMTP_URL`` (forms above).
        tls_context: how to verify the server's certificate; the system's trust store by
            default (tests pass one that trusts their own certificate).

    Raises:
        ConfigError: the URL is not one of the forms above (the message never shows the
            password).
    """

    def __init__(self, url: str, *, tls_context: ssl.SSLContext | None = None) -> None:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("smtp", "smtps"):
            raise ConfigError(f"SMTP_URL scheme {scheme!r} is not supported (smtp:, smtps:)")
        if not parts.hostname:
            raise ConfigError("SMTP_URL must name a host, like smtp://mail.example.com:587")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"starttls", "timeout", "helo"}
        if unknown:
            raise ConfigError(f"SMTP_URL has unknown options: {', '.join(sorted(unknown))}")
        self.implicit_tls = scheme == "smtps"
        self.starttls = not self.implicit_tls and query.get("starttls", "").lower() in _TRUE
        try:
            default_port = 465 if self.implicit_tls else 587 if self.starttls else 25
            self.port = parts.port or default_port
            self.timeout = float(query.get("timeout") or DEFAULT_TIMEOUT)
        except ValueError:
            raise ConfigError("SMTP_URL has an invalid port or timeout") from None
        self.host = parts.hostname
        self._user = unquote(parts.username or "")
        self._password = unquote(parts.password or "")
        self._helo = query.get("helo") or socket.gethostname()
        self._tls = tls_context

    def __repr__(self) -> str:
        mode = "smtps" if self.implicit_tls else "starttls" if self.starttls else "plain"
        return f"SmtpMailer({self.host}:{self.port}, {mode})"

    def send(self, message: EmailMessageLike) -> None:
        """Deliver ``message`` to its To/Cc/Bcc recipients.

        Raises:
            TransientError: try again later.
            PermanentError: the server refuses this message for good.
        """
        sender = parseaddr(message["From"] or "")[1]
        headers = [message[name] or "" for name in ("To", "Cc", "Bcc")]
        recipients = [address for _, address in getaddresses(headers) if address]
        if not recipients:
            raise PermanentError("the message has no recipient")
        # SMTP lines end in CRLF; EmailMessage writes LF, and smtplib fixes that only for str.
        data = message.as_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        where = {"smtp_host": self.host, "smtp_port": self.port}
        try:
            refused = self._deliver(sender, recipients, data)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = {code for code, _ in exc.recipients.values()}
            if all(code >= 500 for code in codes):
                raise PermanentError(
                    f"the mail server refused every recipient ({_codes(codes)})"
                ) from None
            raise TransientError(
                f"the mail server deferred the recipients ({_codes(codes)})"
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            # A wrong password is the operator's to fix; until then, let the event come back.
            raise TransientError(
                f"the mail server refused the login ({exc.smtp_code}); check SMTP_URL"
            ) from None
        except smtplib.SMTPResponseException as exc:
            text = _text(exc.smtp_error)
            if exc.smtp_code >= 500:
                raise PermanentError(
                    f"the mail server refused the message ({exc.smtp_code} {text})"
                ) from None
            raise TransientError(
                f"the mail server deferred the message ({exc.smtp_code} {text})"
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            # OSError covers refused connections, timeouts and TLS failures (ssl.SSLError).
            raise TransientError(
                f"the mail server {self.host}:{self.port} could not be used: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        if refused:
            log.warning(
                "some recipients were refused",
                extra={**where, "refused": sorted(refused), "to": recipients},
            )
        log.info("mail sent", extra={**where, "to": recipients})

    def _deliver(self, sender: str, recipients: list[str], data: bytes) -> dict[str, object]:
        smtp = self._connect()
        try:
            if self._user:
                smtp.login(self._user, self._password)
            return dict(smtp.sendmail(sender, recipients, data))
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                # The message was handed over (or the error above says why not); a dropped
                # QUIT must not turn a delivered message into a retry and a duplicate.
                smtp.close()

    def _connect(self) -> smtplib.SMTP:
        context = self._tls or ssl.create_default_context()
        if self.implicit_tls:
            return smtplib.SMTP_SSL(
                self.host,
                self.port,
                local_hostname=self._helo,
                timeout=self.timeout,
                context=context,
            )
        smtp = smtplib.SMTP(self.host, self.port, local_hostname=self._helo, timeout=self.timeout)
        if self.starttls:
            try:
                smtp.starttls(context=context)
            except BaseException:
                smtp.close()
                raise
        return smtp


def _codes(codes: set[int]) -> str:
    return ", ".join(str(code) for code in sorted(codes))


def _text(raw: bytes | str) -> str:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())[:200]
