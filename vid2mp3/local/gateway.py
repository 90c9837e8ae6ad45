"""A local gateway speaking the OpenFaaS gateway's paths: ``/function/<name>[/<path>]``.

Every function is served from this process (the embedded default) or proxied to its own
process; the routing and the answers are the same either way.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _json(start_response: Callable[..., Any], status: str, body: Any) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    )
    return [data]


class Gateway:
    """WSGI app routing ``/function/<name>/...`` to ``apps[name]`` with the prefix stripped."""

    def __init__(self, apps: dict[str, WsgiApp], *, index: WsgiApp | None = None) -> None:
        self.apps = apps
        self.index = index

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path == "/healthz":
            return _json(start_response, "200 OK", {"status": "ok"})
        if path == "/system/functions":
            return _json(start_response, "200 OK", self.describe())
        if path.startswith("/function/"):
            name, _, rest = path.removeprefix("/function/").partition("/")
            app = self.apps.get(name)
            if app is None:
                return _json(
                    start_response,
                    "404 Not Found",
                    {"error": f"no function {name!r}; deployed: {', '.join(sorted(self.apps))}"},
                )
            environ = {
                **environ,
                "SCRIPT_NAME": environ.get("SCRIPT_NAME", "") + f"/function/{name}",
                "PATH_INFO": "/" + rest,
            }
            return app(environ, start_response)
        if self.index is not None:
            return self.index(environ, start_response)
        return _json(start_response, "404 Not Found", {"error": f"nothing at {path}"})

    def describe(self) -> list[dict[str, Any]]:
        """The function list in the shape ``faas-cli list`` reads."""
        return [
            {
                "name": name,
                "image": f"vid2mp3-{name}:local",
                "namespace": "openfaas-fn",
                "invocationCount": 0,
                "replicas": 1,
                "availableReplicas": 1,
                "labels": {"com.vid2mp3.function": name},
                "annotations": {},
            }
            for name in sorted(self.apps)
        ]
