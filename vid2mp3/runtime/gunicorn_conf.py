"""gunicorn settings of the function images (``gunicorn -c python:vid2mp3.runtime.gunicorn_conf``).

gunicorn answers SIGTERM by letting requests in flight finish within ``graceful_timeout``. A
conversion can take longer than that, so the worker's SIGTERM also starts ``vid2mp3.shutdown``'s
grace period (``SHUTDOWN_GRACE_SECONDS``, below ``graceful_timeout``): whatever is still running
when it ends is handed back and answered 503, and the broker delivers it to another container.
"""

from __future__ import annotations

import signal
from typing import Any

from vid2mp3 import shutdown
from vid2mp3.config import Config


def post_worker_init(worker: Any) -> None:
    # Runs after gunicorn installed the worker's own signal handlers; ours goes first.
    grace = Config.from_env().shutdown_grace_seconds
    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum: int, frame: Any) -> None:
        shutdown.request(grace)
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
