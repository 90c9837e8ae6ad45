"""The container image's entry: one function plus its health endpoints, for gunicorn.

``infra/Dockerfile`` runs ``gunicorn "vid2mp3.runtime.container:create_app()"``. The function is
loaded by functions-framework's ``create_app`` from ``functions/<FUNCTION>/main.py`` (exactly
what ``functions-framework --target <name> --source …`` does) and served by gunicorn, the server
``functions-framework`` itself runs in production; gunicorn listens on ``0.0.0.0:$PORT``. The
one addition is :class:`~vid2mp3.runtime.health.HealthEndpoints`, which the functions-framework
command line cannot put in front of the function.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

from vid2mp3.config import Config
from vid2mp3.errors import ConfigError
from vid2mp3.runtime import functions
from vid2mp3.runtime.health import HealthEndpoints
from vid2mp3.runtime.wsgi import WsgiApp


class ConfigReadiness:
    """Ready once the settings load and would not lose events; checked until it first passes.

    A deployment with a real database but no event sink (no ``K_SINK``, no ``EVENTS_URL``) would
    run with the in-process bus and drop every event it emits, so it is reported not ready.
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = env
        self._passed = False
        self._lock = threading.Lock()

    def __call__(self) -> str | None:
        if self._passed:
            return None
        try:
            config = Config.from_env(self.env)
        except ConfigError as exc:
            return str(exc)
        if config.events_url.startswith("memory:") and not config.embedded:
            return (
                "no event sink: set EVENTS_URL (or EVENTS_URL_FILE), or bind K_SINK; "
                "the in-process bus would lose events outside the embedded mode"
            )
        with self._lock:
            self._passed = True
        return None


def create_app(name: str | None = None) -> WsgiApp:
    """The WSGI app of function ``name`` (default: the ``FUNCTION`` environment variable).

    Raises:
        ConfigError: no function named.
        LookupError: no such function (the message lists the known ones).
    """
    name = name or os.environ.get("FUNCTION", "")
    if not name:
        raise ConfigError("FUNCTION is not set: name the function this container serves")
    return HealthEndpoints(functions.load(name), ready=ConfigReadiness())
