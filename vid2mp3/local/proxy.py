"""A streaming reverse proxy to one function process (``vid2mp3 up --processes``).

Bodies pass through in chunks both ways, so a multi-gigabyte upload or download never sits in
the gateway's memory. A function that is down answers 502 (and a slow one 504), which a broker
treats as "try again later", as it would a restarting container.

The request target goes on as the client sent it (the raw path, not werkzeug's decoded
``PATH_INFO``, which may hold bytes no request line can carry), so ``%00`` or ``%ff`` reach the
function as they would in one process and get its 404. A body has a limit per function
(``body_limit``): a larger ``Content-Length`` is refused (413) before the function is called,
and a chunked body is cut off once past it, so the function's partial copy is discarded.
"""

from __future__ import annotations

import http.client
import logging
import select
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from vid2mp3 import bodies, triggers
from vid2mp3.config import Config
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
    # Overwritten, never appended to: the function trusts it as the client's address
    # (TRUSTED_PROXY_HEADER), so what the client sent as X-Forwarded-For is dropped.
    headers["X-Forwarded-For"] = environ.get("REMOTE_ADDR", "")
    return headers


# What a request line may carry as it is; anything else (controls, spaces, non-ASCII) is
# percent-encoded on the way through, as the function would decode it the same.
_REQUEST_TARGET_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in "#")
# For a decoded path: "%" must be encoded again, or the function would decode it twice.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"


def body_limit(name: str, config: Config) -> tuple[int | None, str]:
    """The most bytes a request body to function ``name`` may have at the proxy, and what the
    413 says: an upload's is ``MAX_UPLOAD_BYTES`` (the function holds it to the job's declared
    size), the other HTTP functions take a JSON body at most; ``None`` for event functions,
    whose bodies the gateway reads and checks before they get here."""
    if name == "jobs":
        most = config.max_upload_bytes
        return most, f"an upload may be at most {most} bytes (MAX_UPLOAD_BYTES)"
    if name in triggers.HTTP_FUNCTIONS:
        most = bodies.MAX_JSON_BYTES
        return most, f"a request body to {name} may be at most {most} bytes"
    return None, ""


def forward_target(environ: dict[str, Any]) -> str:
    """The path and query to ask the function for: the client's raw request target less the
    gateway's prefix (``SCRIPT_NAME``), made safe for a request line."""
    script = environ.get("SCRIPT_NAME", "")
    raw = str(environ.get("REQUEST_URI") or environ.get("RAW_URI") or "")
    raw_path = raw.split("?", 1)[0]
    if "://" in raw_path:  # an absolute-form target: http://host/path
        raw_path = urlsplit(raw_path).path
    segments = raw_path.split("/")
    prefix = script.split("/")
    # The raw path is used when its first segments decode to SCRIPT_NAME; otherwise (an encoded
    # slash in the function's name, or an environ without the raw URI) the decoded path is
    # encoded again, which the function decodes to the same PATH_INFO.
    if raw_path.startswith("/") and [_decoded(p) for p in segments[: len(prefix)]] == prefix:
        path = quote("/" + "/".join(segments[len(prefix) :]), safe=_REQUEST_TARGET_SAFE)
    else:
        decoded = (environ.get("PATH_INFO") or "/").encode("latin-1")
        path = quote(decoded, safe=_PATH_SAFE)
    query = environ.get("QUERY_STRING") or ""
    return path + ("?" + quote(query, safe=_REQUEST_TARGET_SAFE) if query else "")


def _decoded(segment: str) -> str:
    # The way werkzeug's server decodes a path into PATH_INFO (and so into SCRIPT_NAME).
    return unquote(segment).encode().decode("latin-1")


class _BodyTooLarge(Exception):
    pass


class _BodyBroken(Exception):
    """The client's body ended before its Content-Length, or its chunks were malformed."""


def _read(stream: Any, size: int) -> bytes:
    try:
        data: bytes = stream.read(size)
    except OSError as exc:  # werkzeug's server: "Invalid chunk header"
        raise _BodyBroken(str(exc)) from None
    return data


def _answered(connection: http.client.HTTPConnection) -> bool:
    """True when the function has already answered (or hung up) while the body is being sent:
    it refused the request without reading all of it (401, 413 ...)."""
    sock = connection.sock
    return sock is not None and bool(select.select([sock], [], [], 0)[0])


def _send_body(
    connection: http.client.HTTPConnection,
    environ: dict[str, Any],
    chunked: bool,
    limit: int | None,
) -> None:
    """Copy the client's body to the function, stopping early when the function has answered.
    Raises ``_BodyTooLarge`` once more than ``limit`` bytes came (never sending them), and
    ``_BodyBroken`` for a body that ends early or is malformed."""
    stream = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    sent = 0
    while chunked or remaining > 0:
        if _answered(connection):
            return
        want = CHUNK if chunked else min(CHUNK, remaining)
        if limit is not None:
            want = min(want, limit + 1 - sent)
        chunk = _read(stream, want)
        if not chunk:
            if not chunked:
                raise _BodyBroken("the body ended before its Content-Length")
            break
        sent += len(chunk)
        if limit is not None and sent > limit:
            raise _BodyTooLarge
        remaining -= len(chunk)
        try:
            connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
        except OSError:
            # The function hung up mid-body; its answer, if it sent one, is still to be read.
            return
    if chunked:
        try:
            connection.send(b"0\r\n\r\n")
        except OSError:
            return


def _error(start_response: Callable[..., Any], status: str, message: str) -> list[bytes]:
    return json_response(start_response, status, {"error": message}, [("Retry-After", "2")])


def _refuse(start_response: Callable[..., Any], status: str, message: str) -> list[bytes]:
    """A 4xx of the proxy's own: the request is at fault, so no Retry-After."""
    return json_response(start_response, status, {"error": message})


class FunctionProxy:
    """WSGI app forwarding every request to ``http://host:port`` + the request's raw path.

    Args:
        name: the function's name (for errors and logs).
        host, port: where its functions-framework server listens.
        timeout: seconds to wait for the function to start answering.
        max_body_bytes: the most bytes a request body may have (``body_limit``); ``None``
            for no limit.
        too_large: what the 413 for a larger body says.
    """

    def __init__(
        self,
        name: str,
        host: str,
        port: int,
        *,
        timeout: float = 3600.0,
        max_body_bytes: int | None = None,
        too_large: str = "",
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.timeout = timeout
        self.max_body_bytes = max_body_bytes
        self.too_large = too_large or f"the request body to {name} is too large"

    @classmethod
    def for_function(cls, name: str, host: str, port: int, config: Config) -> FunctionProxy:
        """The proxy ``vid2mp3 up --processes`` puts before function ``name``, with its body
        limit (``body_limit``)."""
        most, too_large = body_limit(name, config)
        return cls(name, host, port, max_body_bytes=most, too_large=too_large)

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        headers = _request_headers(environ)
        declared = headers.get("Content-Length")
        if declared is not None and not declared.isdigit():
            return _refuse(start_response, "400 Bad Request", "Content-Length must be a number")
        if self.max_body_bytes is not None and int(declared or 0) > self.max_body_bytes:
            return _refuse(start_response, "413 Content Too Large", self.too_large)
        # A body of unknown length (chunked upload) is re-chunked; otherwise sent as counted.
        chunked = declared is None and bool(environ.get("wsgi.input_terminated"))
        if chunked:
            headers["Transfer-Encoding"] = "chunked"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            connection.putrequest(
                environ["REQUEST_METHOD"],
                forward_target(environ),
                skip_host=True,
                skip_accept_encoding=True,
            )
            for key, value in headers.items():
                connection.putheader(key, value)
            connection.endheaders()
            _send_body(connection, environ, chunked, self.max_body_bytes)
            response = connection.getresponse()
        except _BodyTooLarge:
            # Closed mid-body: the function sees a broken upload and drops what it stored.
            connection.close()
            return _refuse(start_response, "413 Content Too Large", self.too_large)
        except _BodyBroken as exc:
            connection.close()
            return _refuse(
                start_response,
                "400 Bad Request",
                f"the request body could not be read ({exc}); send it again",
            )
        except ValueError as exc:
            # http.client refuses a header it cannot put on the wire (a name with a space).
            connection.close()
            return _refuse(start_response, "400 Bad Request", f"bad request header: {exc}")
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
