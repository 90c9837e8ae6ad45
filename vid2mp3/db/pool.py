"""Connections kept between transactions, so a process holds as many as it runs at once.

A connection per thread, kept for the thread's life, made every request thread of a threaded
server (and every step's heartbeat) open a connection of its own; under load that ran MariaDB
out of connections (``Too many connections``), and SQLite out of file handles in a long
``vid2mp3 up``. A unit of work takes a connection for its transaction and gives it back.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

C = TypeVar("C")

#: Idle connections kept per process; more in use at once are closed when given back.
KEEP_IDLE = 4


class ConnectionPool(Generic[C]):
    """Lend connections made by ``connect``; an idle one is checked with ``alive`` before it
    is lent again, and closed with ``close`` when it is dead or not needed."""

    def __init__(
        self,
        connect: Callable[[], C],
        *,
        alive: Callable[[C], bool],
        close: Callable[[C], None],
        keep: int = KEEP_IDLE,
    ) -> None:
        self._connect = connect
        self._alive = alive
        self._close = close
        self._keep = keep
        self._idle: list[C] = []
        self._open: list[C] = []
        self._lock = threading.Lock()

    def take(self) -> C:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                conn = self._connect()
                with self._lock:
                    self._open.append(conn)
                return conn
            if self._alive(conn):
                return conn
            self._discard(conn)

    def give(self, conn: C) -> None:
        with self._lock:
            if len(self._idle) < self._keep:
                self._idle.append(conn)
                return
        self._discard(conn)

    def _discard(self, conn: C) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._open.remove(conn)
        with contextlib.suppress(Exception):  # already broken: nothing more to release
            self._close(conn)

    def close_all(self) -> None:
        """Close every connection this pool made, idle or lent."""
        with self._lock:
            every, self._open, self._idle = self._open, [], []
        for conn in every:
            with contextlib.suppress(Exception):
                self._close(conn)
