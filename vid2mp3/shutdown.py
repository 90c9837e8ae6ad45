"""Handing work back when the process stops: the one switch every running step listens to.

A worker that is told to stop (SIGTERM from the platform, Ctrl-C at the terminal) must not turn
its unfinished work into a failure of the user's file. ``request(grace)`` gives work in flight
``grace`` seconds to finish, then stops the child processes it runs (ffmpeg) through the
registry below; the step sees ``WorkInterrupted``, a ``TransientError``, releases its claim and
answers 503, so the broker delivers the event again to a worker that is not stopping.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
import time
from collections.abc import Iterator

from vid2mp3.errors import TransientError

log = logging.getLogger(__name__)

#: Seconds a child gets between SIGTERM and SIGKILL once its work is cancelled.
_KILL_AFTER = 2.0


class WorkInterrupted(TransientError):
    """The worker stopped before the work was done; it is handed back, never failed."""


_lock = threading.Lock()
_requested = threading.Event()
_cancelled = threading.Event()
_children: set[subprocess.Popen[bytes]] = set()
_stopped_by_us: set[int] = set()
_timer: threading.Timer | None = None


def request(grace: float = 0.0, *, reason: str = "shutting down") -> None:
    """Ask work in flight to stop: now (``grace`` 0) or after ``grace`` seconds.

    New work is refused at once (``check`` raises); work already running may finish within
    the grace period. Safe to call from a signal handler and more than once (the earliest
    deadline wins).
    """
    global _timer
    first = not _requested.is_set()
    _requested.set()
    if first:
        log.warning("stop requested; work in flight is handed back", extra={"grace": grace})
    if grace <= 0:
        cancel_running()
        return
    with _lock:
        if _timer is None:
            _timer = threading.Timer(grace, cancel_running)
            _timer.daemon = True
            _timer.start()


def requested() -> bool:
    """True once a stop was requested: do not start new work."""
    return _requested.is_set()


def check() -> None:
    """Raise ``WorkInterrupted`` when a stop was requested (call it before starting work)."""
    if _requested.is_set():
        raise WorkInterrupted("this worker is shutting down; the work is handed back")


def cancel_running() -> None:
    """Stop every tracked child process now (SIGTERM, then SIGKILL after a moment)."""
    _cancelled.set()
    with _lock:
        children = list(_children)
        _stopped_by_us.update(c.pid for c in children)
    for child in children:
        with contextlib.suppress(OSError):
            child.terminate()
    if children:
        threading.Thread(target=_kill_stragglers, args=(children,), daemon=True).start()


def _kill_stragglers(children: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + _KILL_AFTER
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                child.kill()


@contextlib.contextmanager
def tracked(child: subprocess.Popen[bytes]) -> Iterator[None]:
    """Register ``child`` while the block runs, so a stop request can end it."""
    with _lock:
        _children.add(child)
        late = _cancelled.is_set()
        if late:
            _stopped_by_us.add(child.pid)
    if late:
        with contextlib.suppress(OSError):
            child.terminate()
    try:
        yield
    finally:
        with _lock:
            _children.discard(child)


def stopped_by_us(child: subprocess.Popen[bytes]) -> bool:
    """True when ``child`` ended because this process asked it to (not because of its input)."""
    with _lock:
        return child.pid in _stopped_by_us


def reset() -> None:
    """Forget a previous stop request (tests, and a CLI that runs again in one process)."""
    global _timer
    with _lock:
        if _timer is not None:
            _timer.cancel()
        _timer = None
        _children.clear()
        _stopped_by_us.clear()
    _requested.clear()
    _cancelled.clear()
