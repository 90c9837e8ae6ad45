"""Health endpoints in front of a function's WSGI app.

functions-framework hands every path of an HTTP function to the function (``jobs`` would answer
``/_/health`` with a 401) and routes only ``POST`` to a CloudEvent function (a ``GET`` probe gets
a 405), so the platform's probes are answered here, before the request reaches the function:

- ``/_/health`` and ``/healthz``: liveness; the process answers, nothing else is checked.
- ``/_/ready``: readiness; ``ready()`` returns ``None`` when the function can take work, else the
  reason it cannot (answered 503 so the platform keeps traffic away and shows the reason).

OpenFaaS probes ``/_/health`` and ``/_/ready`` on port 8080 (the paths of-watchdog answers); the
Knative Services in ``infra/knative/`` probe the same two paths.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from vid2mp3.runtime.wsgi import WsgiApp, json_response

LIVENESS_PATHS = frozenset({"/_/health", "/healthz"})
READINESS_PATH = "/_/ready"


def _answer(start_response: Callable[..., Any], status: str, body: dict[str, str]) -> list[bytes]:
    # A probe's answer is about this moment only.
    return json_response(start_response, status, body, [("Cache-Control", "no-store")])


class HealthEndpoints:
    """WSGI middleware answering the probe paths and passing everything else to ``app``.

    Args:
        app: the function's WSGI app.
        ready: called on each readiness probe; ``None`` means ready, a string is why not.
    """

    def __init__(self, app: WsgiApp, ready: Callable[[], str | None] = lambda: None) -> None:
        self.app = app
        self.ready = ready

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            if path in LIVENESS_PATHS:
                return _answer(start_response, "200 OK", {"status": "ok"})
            if path == READINESS_PATH:
                reason = self.ready()
                if reason is None:
                    return _answer(start_response, "200 OK", {"status": "ready"})
                return _answer(
                    start_response,
                    "503 Service Unavailable",
                    {"status": "not ready", "error": reason},
                )
        return self.app(environ, start_response)
