"""What the local WSGI apps (gateway, web UI, health endpoints, proxy) share."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def json_response(
    start_response: Callable[..., Any],
    status: str,
    body: Any,
    headers: Iterable[tuple[str, str]] = (),
) -> list[bytes]:
    """Answer ``body`` as JSON with ``status``, adding ``headers`` after the content headers."""
    data = json.dumps(body).encode()
    start_response(
        status,
        [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            *headers,
        ],
    )
    return [data]
