"""HTTP event sink (``EVENTS_URL=http(s)://...``, or Knative's ``K_SINK``, which wins).

Each CloudEvent is POSTed in binary content mode (``ce-*`` headers, the data as the JSON body) to
a broker ingress, such as a Knative Broker's URL or whatever a SinkBinding injects.
"""

from __future__ import annotations

import http.client
import json
import logging
from urllib.parse import urlsplit

from vid2mp3.errors import ConfigError, TransientError
from vid2mp3.events import Event

log = logging.getLogger(__name__)


def post_event(url: str, event: Event, *, timeout: float) -> tuple[int, bytes]:
    """POST ``event`` in binary mode to ``url``; returns the status and the body (capped at
    64 KiB). Raises ``OSError`` (``TimeoutError``, ``ConnectionError`` ...) on no answer."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{url!r} is not an http(s) URL")
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    body = json.dumps(event.data, separators=(",", ":")).encode()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", path, body=body, headers=event.binary_headers())
        response = connection.getresponse()
        return response.status, response.read(65536)
    except http.client.HTTPException as exc:
        raise ConnectionError(f"bad HTTP answer from {url}: {exc!r}") from exc
    finally:
        connection.close()


class HttpEventSink:
    """POST each event to a broker ingress.

    Args:
        url: the ingress URL, e.g. ``http://broker-ingress.knative-eventing.svc/ns/default``.
        timeout: seconds to wait for the ingress to answer.

    ``publish`` raises ``TransientError`` on a non-2xx answer or no answer, so the event stays
    in the outbox and goes out on the next attempt.
    """

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"EVENTS_URL / K_SINK {url!r} is not an http(s) URL")
        self.url = url
        self.timeout = timeout

    def publish(self, event: Event) -> None:
        try:
            status, body = post_event(self.url, event, timeout=self.timeout)
        except OSError as exc:
            raise TransientError(f"the event broker at {self.url} did not answer: {exc}") from exc
        if not 200 <= status < 300:
            detail = body[:200].decode(errors="replace")
            raise TransientError(f"the event broker answered {status}: {detail}")
