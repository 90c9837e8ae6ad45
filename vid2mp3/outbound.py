"""HTTP requests to addresses a caller chose (webhooks, async-call callbacks): public only.

A target must be ``http(s)`` and reach only public addresses: the host is resolved and every
address it resolves to is checked, unless the private-target switch (``ALLOW_PRIVATE_WEBHOOKS``)
is on. An IPv6 address that embeds an IPv4 one (IPv4-mapped and -compatible, NAT64
``64:ff9b::/96`` and ``64:ff9b:1::/48``, 6to4 ``2002::/16``, Teredo ``2001::/32``) is judged by
the IPv4 inside it, since that is where a translating network delivers it. The request then
connects to an address that was checked (no second lookup), so a DNS answer that changes in
between cannot point it at an internal service, and redirects are never followed.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import IO, Any
from urllib.parse import urlsplit

from vid2mp3.errors import InvalidInput

MAX_URL_LENGTH = 2048  # the width of users.webhook_url
# The answer is not used; reading a little of it lets the connection close cleanly.
_MAX_ANSWER = 64 * 1024

_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


class TargetRefused(InvalidInput):
    """The URL is not one an outbound request may use (a 400 where it was given)."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str
    port: int
    path: str


def parse(url: Any, *, what: str) -> Target:
    """``url`` as a ``Target``; raises ``TargetRefused`` naming ``what`` (the field or header)."""
    if not isinstance(url, str) or not url.strip():
        raise TargetRefused(f"{what} must be an http(s) URL")
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(f"{what} must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise TargetRefused(f"{what} must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError:  # "Invalid IPv6 URL": an unclosed [
        raise TargetRefused(f"{what} is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise TargetRefused(f"{what} must start with http:// or https://")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused(
            f"{what} must not contain a user name or password; verify the signature instead"
        )
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise TargetRefused(f"{what} has an invalid port") from None
    if not parts.hostname:
        raise TargetRefused(f"{what} must name a host")
    try:
        # What getaddrinfo does with the name; an empty or over-long label fails there.
        parts.hostname.encode("idna")
    except UnicodeError:
        raise TargetRefused(f"{what} has an invalid host name") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # The fragment never reaches a server; keeping it would only mislead.
    return Target(url.split("#", 1)[0], scheme, parts.hostname, port, path)


def addresses(target: Target, *, allow_private: bool, what: str) -> list[str]:
    """The addresses ``target`` resolves to, to connect to (pinned); raises ``TargetRefused``
    if one is not public (``what`` names the target in the message) and ``socket.gaierror``
    if the name does not resolve.

    Every address is checked, not only the first: a name that resolves to both a public and
    a private address could otherwise be steered to the private one.
    """
    infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    found: list[str] = []
    for info in infos:
        address = str(info[4][0])
        if not allow_private and not is_public(address):
            raise TargetRefused(
                f"the {what} host {target.host!r} resolves to {address}, a private, loopback "
                f"or link-local address; a {what} must reach a public address"
            )
        if address not in found:
            found.append(address)
    if not found:
        raise TargetRefused(f"the {what} host {target.host!r} has no address")
    return found


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries and delivers to, if it is of a form that does."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]  # the client's address, de-obfuscated by ipaddress
    if any(ip in network for network in _NAT64):
        return ipaddress.IPv4Address(ip.packed[-4:])
    if ip in _IPV4_COMPATIBLE and int(ip) > 1:  # not :: or ::1, which are themselves
        return ipaddress.IPv4Address(ip.packed[-4:])
    return None


def is_public(address: str) -> bool:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(
        address.split("%", 1)[0]
    )
    if isinstance(ip, ipaddress.IPv6Address):
        inner = embedded_ipv4(ip)
        if inner is not None:
            # Judged by what it reaches; the IPv6 wrapper itself may count as global.
            return inner.is_global and not inner.is_multicast
    return ip.is_global and not ip.is_multicast


def post(
    target: Target,
    pinned: list[str],
    body: bytes | IO[bytes],
    headers: Mapping[str, str],
    *,
    timeout: float,
) -> int:
    """POST ``body`` to ``target`` at one of the ``pinned`` addresses; returns the status (a
    redirect is returned, never followed). Raises ``OSError``/``HTTPException`` when it
    cannot be reached."""
    cls = _PinnedHTTPSConnection if target.scheme == "https" else _PinnedHTTPConnection
    connection = cls(target.host, target.port, pinned, timeout)
    try:
        connection.request("POST", target.path, body=body, headers=dict(headers))
        response = connection.getresponse()
        response.read(_MAX_ANSWER)
        return response.status
    finally:
        connection.close()


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Talks to ``host`` (Host header, TLS name) at addresses resolved and checked earlier."""

    def __init__(self, host: str, port: int, pinned: list[str], timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._pinned = pinned

    def _open(self) -> socket.socket:
        error: OSError | None = None
        for address in self._pinned:
            try:
                return socket.create_connection((address, self.port), self.timeout)
            except OSError as exc:
                error = exc
        raise error or OSError("no address to connect to")

    def connect(self) -> None:
        self.sock = self._open()


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    default_port = http.client.HTTPS_PORT

    def __init__(self, host: str, port: int, pinned: list[str], timeout: float) -> None:
        super().__init__(host, port, pinned, timeout)
        self._tls = ssl.create_default_context()

    def connect(self) -> None:
        self.sock = self._tls.wrap_socket(self._open(), server_hostname=self.host)
