"""A streaming reverse proxy to one function process (``vid2mp3 up --processes``).

Bodies pass through in chunks both ways, so a multi-gigabyte upload or download never sits in
the gateway's memory. A function that is down answers 502 (and a slow one 504), which a broker
treats as "try again later", as it would a restarting container.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from vid2mp3.runtime.wsgi import json_response

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
# Headers that describe one connection, not the message (RFC 9110 section 7.6.1).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:].replace("_", "-").title()
            if name.lower() not in _HOP_BY_HOP:
                headers[name] = value
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    if environ.get("CONTENT_LENGTH"):
        headers["Content-Length"] = environ["CONTENT_LENGTH"]
    # The function sees the Host the client used (it builds URLs from it), as behind a gateway.
    headers.setdefault("Host", environ.get("SERVER_NAME", "localhost"))
    headers["X-Forwarded-Prefix"] = environ.get("SCRIPT_NAME", "")
    headers["X-Forwarded-For"] = environ.get("REMOTE_ADDR", "")
    return headers


def _send_body(
    connection: http.client.HTTPConnection, environ: dict[str, Any], chunked: bool
) -> None:
    stream = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    while chunked or remaining > 0:
        chunk = stream.read(CHUNK if chunked else min(CHUNK, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
    if chunked:
        connection.send(b"0\r\n\r\n")


def _error(start_response: Callable[..., Any], status: str, message: str) -> list[bytes]:
    return json_response(start_response, status, {"error": message}, [("Retry-After", "2")])


class FunctionProxy:
    """WSGI app forwarding every request to ``http://host:port`` + the request's path.

    Args:
        name: the function's name (for errors and logs).
        host, port: where its functions-framework server listens.
        timeout: seconds to wait for the function to start answering.
    """

    def __init__(self, name: str, host: str, port: int, *, timeout: float = 3600.0) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.timeout = timeout

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        headers = _request_headers(environ)
        # A body of unknown length (chunked upload) is re-chunked; otherwise sent as counted.
        chunked = "Content-Length" not in headers and bool(environ.get("wsgi.input_terminated"))
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.putrequest(
                environ["REQUEST_METHOD"], path, skip_host=True, skip_accept_encoding=True
            )
            for key, value in headers.items():
                connection.putheader(key, value)
            connection.endheaders()
            _send_body(connection, environ, chunked)
            response = connection.getresponse()
        except TimeoutError:
            connection.close()
            return _error(start_response, "504 Gateway Timeout", f"function {self.name} timed out")
        except (OSError, http.client.HTTPException) as exc:
            connection.close()
            log.warning("function unreachable", extra={"function": self.name, "reason": repr(exc)})
            return _error(
                start_response,
                "502 Bad Gateway",
                f"function {self.name} is not reachable right now; try again",
            )
        reply_headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP]
        start_response(f"{response.status} {response.reason}", reply_headers)
        return self._body(connection, response)

    def _body(
        self, connection: http.client.HTTPConnection, response: http.client.HTTPResponse
    ) -> Iterator[bytes]:
        try:
            while chunk := response.read1(CHUNK):
                yield chunk
        finally:
            connection.close()
