"""One function in a process of its own, as one container runs it (``vid2mp3 up --processes``).

``python -P -m vid2mp3.local.function_server --function NAME --host H --port P`` loads
``functions/<NAME>/main.py`` through functions-framework's ``create_app`` and serves it with
werkzeug, like ``functions-framework --target``, plus what a platform's container gets from
gunicorn: a graceful SIGTERM. Work in flight then has ``SHUTDOWN_GRACE_SECONDS`` to finish; what
is still running after that is handed back (``vid2mp3.shutdown``) and answered 503, so the
broker delivers it again; the server stops once no request is in flight.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from vid2mp3 import logs, shutdown
from vid2mp3.config import Config
from vid2mp3.errors import ConfigError
from vid2mp3.runtime import functions
from vid2mp3.runtime.wsgi import WsgiApp

log = logging.getLogger(__name__)

#: Seconds past the grace period to wait for handed-back requests to answer.
_DRAIN_MARGIN = 5.0


class InFlight:
    """WSGI middleware counting the requests being answered (a streamed body counts until it
    is closed)."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.count = 0
        self._lock = threading.Lock()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        from werkzeug.wsgi import ClosingIterator

        with self._lock:
            self.count += 1
        try:
            body = self.app(environ, start_response)
        except BaseException:
            self._done()
            raise
        return ClosingIterator(body, self._done)

    def _done(self) -> None:
        with self._lock:
            self.count -= 1


def _grace() -> float:
    try:
        return Config.from_env().shutdown_grace_seconds
    except ConfigError:
        return 0.0


def serve(name: str, host: str, port: int) -> int:
    from werkzeug.serving import make_server

    logs.configure()
    app = InFlight(functions.load(name))
    server = make_server(host, port, app, threaded=True)

    def drain_then_stop(grace: float) -> None:
        deadline = time.monotonic() + grace + _DRAIN_MARGIN
        while app.count > 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        server.shutdown()

    def on_signal(signum: int, _frame: Any) -> None:
        grace = _grace() if signum == signal.SIGTERM else 0.0
        log.info("stopping", extra={"function": name, "grace": grace, "in_flight": app.count})
        shutdown.request(grace)
        threading.Thread(target=drain_then_stop, args=(grace,), daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.serve_forever()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vid2mp3.local.function_server")
    parser.add_argument("--function", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    return serve(args.function, args.host, args.port)


if __name__ == "__main__":
    raise SystemExit(main())
