"""Per-user webhooks: where one may point, and delivering a signed CloudEvent to it.

The request is the CloudEvent in binary content mode: ``ce-*`` headers and the event's data as
the JSON body. The body is signed with HMAC-SHA256 under the user's webhook secret and the
signature sent as ``X-Vid2mp3-Signature: sha256=<hex>``. Each user's secret is derived from the
app's ``JWT_SECRET`` and the user id (see ``secret_for``), so it needs no storage and differs per
user; the ``settings`` function shows it to its owner. Changing ``JWT_SECRET`` changes every
webhook secret.

A webhook must be ``http(s)`` and reach only public addresses: the host is resolved and every
address it resolves to is checked, when the URL is set and again on each delivery, unless
``ALLOW_PRIVATE_WEBHOOKS=1``. A delivery connects to an address that was checked (no second
lookup), so a DNS answer that changes in between cannot point it at an internal service, and
redirects are not followed.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import ipaddress
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from vid2mp3.config import Config
from vid2mp3.errors import InvalidInput, PermanentError, TransientError
from vid2mp3.events import Event

SIGNATURE_HEADER = "X-Vid2mp3-Signature"
USER_AGENT = "vid2mp3-webhook/1"
TIMEOUT = 10.0
MAX_URL_LENGTH = 2048  # the width of users.webhook_url
# The answer is not used; reading a little of it lets the connection close cleanly.
_MAX_ANSWER = 64 * 1024


class WebhookRefused(InvalidInput):
    """The URL is not one a webhook may use (a 400 when it is set)."""


@dataclass(frozen=True)
class _Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str


def secret_for(config: Config, user_id: str) -> str:
    """The user's webhook signing secret: HMAC-SHA256 of the user id under ``JWT_SECRET``."""
    message = b"vid2mp3 webhook secret\x00" + user_id.encode()
    return hmac.new(config.jwt_secret.encode(), message, hashlib.sha256).hexdigest()


def signature(secret: str, body: bytes) -> str:
    """The ``X-Vid2mp3-Signature`` value of ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_url(url: Any, *, allow_private: bool) -> str:
    """``url`` when a webhook may use it; raises ``WebhookRefused`` saying why not.

    The host must resolve, and (unless ``allow_private``) only to public addresses.
    """
    target = _parse(url)
    try:
        _addresses(target, allow_private=allow_private)
    except socket.gaierror:
        raise WebhookRefused(f"the webhook host {target.host!r} cannot be resolved") from None
    return target.url


def _parse(url: Any) -> _Target:
    if not isinstance(url, str) or not url.strip():
        raise WebhookRefused("webhook_url must be an http(s) URL, or null to remove it")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise WebhookRefused(f"webhook_url must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise WebhookRefused("webhook_url must not contain spaces or control characters")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookRefused("webhook_url must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise WebhookRefused(
            "webhook_url must not contain a user name or password; verify the signature instead"
        )
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused("webhook_url has an invalid port") from None
    if not parts.hostname:
        raise WebhookRefused("webhook_url must name a host")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # The fragment never reaches a server; keeping it would only mislead.
    return _Target(url.split("#", 1)[0], scheme, parts.hostname, port, path)


def _addresses(target: _Target, *, allow_private: bool) -> list[str]:
    """The addresses ``target`` resolves to; raises ``WebhookRefused`` if one is not public.

    Every address is checked, not only the first: a name that resolves to both a public and
    a private address could otherwise be steered to the private one.
    """
    infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    addresses: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if not allow_private and not _is_public(address):
            raise WebhookRefused(
                f"the webhook host {target.host!r} resolves to {address}, a private, loopback "
                "or link-local address; webhooks must reach a public address"
            )
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise WebhookRefused(f"the webhook host {target.host!r} has no address")
    return addresses


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def deliver(config: Config, user_id: str, url: str, event: Event) -> None:
    """POST ``event`` to ``url``, signed with the user's secret.

    Raises:
        TransientError: the target is unreachable, slow, or answered 408/429/5xx (try again).
        PermanentError: the URL is not allowed (any more), or the target answered another
            non-2xx status; retrying cannot help.
    """
    body = json.dumps(event.data, separators=(",", ":")).encode()
    headers = {
        **event.binary_headers(),
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: signature(secret_for(config, user_id), body),
    }
    try:
        target = _parse(url)
        addresses = _addresses(target, allow_private=config.allow_private_webhooks)
    except WebhookRefused as exc:
        raise PermanentError(exc.message) from None
    except socket.gaierror as exc:
        raise TransientError(f"the webhook host cannot be resolved right now: {exc}") from None
    connection = _connection(target, addresses)
    try:
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read(_MAX_ANSWER)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        raise TransientError(f"the webhook could not be reached: {exc}") from None
    finally:
        connection.close()
    if 200 <= status < 300:
        return
    if status in (408, 429) or status >= 500:
        raise TransientError(f"the webhook answered HTTP {status}")
    if 300 <= status < 400:
        raise PermanentError(
            f"the webhook answered a redirect (HTTP {status}); redirects are not followed"
        )
    raise PermanentError(f"the webhook refused the event (HTTP {status})")


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Talks to ``host`` (Host header, TLS name) at addresses resolved and checked earlier."""

    def __init__(self, host: str, port: int, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def _open(self) -> socket.socket:
        error: OSError | None = None
        for address in self._addresses:
            try:
                return socket.create_connection((address, self.port), self.timeout)
            except OSError as exc:
                error = exc
        raise error or OSError("no address to connect to")

    def connect(self) -> None:
        self.sock = self._open()


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = http.client.HTTPS_PORT

    def __init__(self, host: str, port: int, addresses: list[str], timeout: float) -> None:
        super().__init__(host, port, addresses, timeout)
        self._tls = ssl.create_default_context()

    def connect(self) -> None:
        self.sock = self._tls.wrap_socket(self._open(), server_hostname=self.host)


def _connection(target: _Target, addresses: list[str]) -> http.client.HTTPConnection:
    cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    return cls(target.host, target.port, addresses, TIMEOUT)
